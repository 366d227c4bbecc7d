//! The JSON body of a package install, read as it streams.
//!
//! A package arrives base64 in JSON: up to [`MAX_PACKAGE_BODY_BYTES`]. Read
//! whole into memory, as axum's `Json` does, four chunked 1 GiB uploads
//! held ~600 MiB before their 413s (issue 19). This extractor instead
//! counts the body as it arrives and answers 413 the moment it passes the
//! limit (a declared `Content-Length` over it is refused before any of it
//! by [`crate::middleware::body_limit`]), keeps a small body in memory and
//! writes a larger one to a temporary file under the data directory
//! (`<home>/data/spool/`, removed when the request ends, whatever its
//! outcome), and lets [`MAX_CONCURRENT_INSTALLS`] requests read and install
//! at once; the others wait their turn with their bodies unread.

use std::io::BufReader;
use std::sync::{Arc, OnceLock};

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::objects;
use crate::error::ApiError;
use crate::state::AppState;

/// The largest body a package route reads: a component of
/// [`talon_runtime::package::MAX_COMPONENT_BYTES`] in base64, and 1 MiB
/// for the rest of the JSON.
pub const MAX_PACKAGE_BODY_BYTES: usize =
    talon_runtime::package::MAX_COMPONENT_BYTES / 3 * 4 + (1 << 20);

/// Installs whose bodies are read and packages installed at once.
pub const MAX_CONCURRENT_INSTALLS: usize = 2;

/// Bodies up to this size stay in memory; larger ones go to a file.
const IN_MEMORY_BYTES: usize = 1 << 20;

/// One of the [`MAX_CONCURRENT_INSTALLS`] turns, held until the install is done.
#[derive(Debug)]
pub struct InstallSlot(#[allow(dead_code)] OwnedSemaphorePermit);

fn slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS
        .get_or_init(|| Arc::new(Semaphore::new(MAX_CONCURRENT_INSTALLS)))
        .clone()
}

/// A JSON object body of a package route, with its install slot: keep the
/// slot bound (`PackageJson(body, _slot)`) until the install is done.
#[derive(Debug)]
pub struct PackageJson<T>(pub T, pub InstallSlot);

/// Where the body is being read to.
enum Spool {
    Memory(Vec<u8>),
    File(tempfile::NamedTempFile, tokio::fs::File),
}

impl<T> FromRequest<AppState> for PackageJson<T>
where
    T: DeserializeOwned + Send + 'static,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let json_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|m| {
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json_type {
            return Err(ApiError::BadRequest(
                "Expected request with `Content-Type: application/json`".into(),
            ));
        }
        let slot = InstallSlot(
            slots()
                .acquire_owned()
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        );
        let spool_dir = spool_dir(state.kernel.home());
        let mut body = request.into_body();
        let mut spool = Spool::Memory(Vec::new());
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total += data.len();
            if total > MAX_PACKAGE_BODY_BYTES {
                // The spool file, if any, is removed as `spool` drops.
                return Err(ApiError::PayloadTooLarge(format!(
                    "length limit exceeded: the request body is larger than the \
                     {MAX_PACKAGE_BODY_BYTES} bytes this route accepts"
                )));
            }
            spool = match spool {
                Spool::Memory(mut buf) if buf.len() + data.len() <= IN_MEMORY_BYTES => {
                    buf.extend_from_slice(&data);
                    Spool::Memory(buf)
                }
                Spool::Memory(buf) => {
                    let (temp, mut file) = spool_file(&spool_dir).await?;
                    write(&mut file, &buf).await?;
                    write(&mut file, &data).await?;
                    Spool::File(temp, file)
                }
                Spool::File(temp, mut file) => {
                    write(&mut file, &data).await?;
                    Spool::File(temp, file)
                }
            };
        }
        let parsed = match spool {
            Spool::Memory(buf) => serde_json::from_slice::<serde_json::Value>(&buf),
            Spool::File(temp, mut file) => {
                file.flush().await.map_err(spool_error)?;
                drop(file);
                tokio::task::spawn_blocking(move || {
                    let reader = temp.reopen()?;
                    Ok::<_, std::io::Error>(serde_json::from_reader::<_, serde_json::Value>(
                        BufReader::with_capacity(1 << 16, reader),
                    ))
                })
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_err(spool_error)?
            }
        };
        let value = parsed.map_err(|e| {
            ApiError::BadRequest(format!("Failed to parse the request body as JSON: {e}"))
        })?;
        objects::read(value)
            .map(|body| PackageJson(body, slot))
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "Failed to deserialize the JSON body into the target type: {e}"
                ))
            })
    }
}

fn spool_dir(home: &talon_kernel::home::Home) -> std::path::PathBuf {
    home.data_dir().join("spool")
}

/// Removes what a daemon killed during an upload left in the spool: at
/// start, no request owns any of it.
pub fn clear_spool(home: &talon_kernel::home::Home) {
    let dir = spool_dir(home);
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot clear the upload spool");
    }
}

async fn spool_file(
    dir: &std::path::Path,
) -> Result<(tempfile::NamedTempFile, tokio::fs::File), ApiError> {
    tokio::fs::create_dir_all(dir).await.map_err(spool_error)?;
    let temp = tempfile::Builder::new()
        .prefix("package-")
        .tempfile_in(dir)
        .map_err(spool_error)?;
    let file = tokio::fs::File::from_std(temp.reopen().map_err(spool_error)?);
    Ok((temp, file))
}

async fn write(file: &mut tokio::fs::File, bytes: &[u8]) -> Result<(), ApiError> {
    file.write_all(bytes).await.map_err(spool_error)
}

/// A spool file that cannot be written: a full disk is the client's to retry.
fn spool_error(e: std::io::Error) -> ApiError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        ApiError::InsufficientStorage(format!("cannot hold the package while it uploads: {e}"))
    } else {
        ApiError::Internal(format!("cannot hold the package while it uploads: {e}"))
    }
}
