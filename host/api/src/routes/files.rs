//! Agent workspace files and uploaded attachments.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Lists the files of an agent's workspace.
#[utoipa::path(get, path = "/api/agents/{id}/files", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{files: [{name, size, kind, modified}], total}`", body = Object)))]
pub async fn list_files(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let files = state.kernel.agents().list_files(id).await?;
    Ok(Json(
        serde_json::json!({ "total": files.len(), "files": files }),
    ))
}

/// Query of `GET /api/agents/{id}/files/{filename}`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ReadQuery {
    /// Answer with the raw bytes instead of JSON.
    #[serde(default)]
    pub raw: bool,
}

/// Reads a workspace file: JSON `{name, size, content}` for text, or raw bytes with `?raw=true`.
#[utoipa::path(get, path = "/api/agents/{id}/files/{filename}", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id"), ("filename" = String, Path, description = "File name"), ReadQuery),
    responses((status = 200, description = "The file: JSON for text, its bytes with `?raw=true`",
                  content((FileText = "application/json"), (Vec<u8> = "application/octet-stream"))),
              (status = 400, description = "Bad name, or a binary file without ?raw=true"),
              (status = 404, description = "No such agent or file")))]
pub async fn get_file(
    State(state): State<AppState>,
    Path((id, name)): Path<(Uuid, String)>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    let bytes = state.kernel.agents().read_file(id, name.clone()).await?;
    if query.raw {
        let mut response = bytes.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return Ok(response);
    }
    let size = bytes.len();
    let content = String::from_utf8(bytes).map_err(|_| {
        ApiError::BadRequest(format!(
            "`{name}` is not UTF-8 text; fetch it with ?raw=true"
        ))
    })?;
    Ok(Json(FileText {
        name,
        size,
        content,
    })
    .into_response())
}

/// A text file of the workspace.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct FileText {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: usize,
    /// Its text.
    pub content: String,
}

/// Body of `PUT /api/agents/{id}/files/{filename}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFile {
    /// The new content.
    pub content: String,
}

/// Creates or replaces a workspace file; the answer means it is on disk.
#[utoipa::path(put, path = "/api/agents/{id}/files/{filename}", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id"), ("filename" = String, Path, description = "File name")),
    request_body = SetFile,
    responses((status = 200, description = "`{status: saved, name, size}`", body = Object),
              (status = 400, description = "Bad name or too large")))]
pub async fn put_file(
    State(state): State<AppState>,
    Path((id, name)): Path<(Uuid, String)>,
    Json(body): Json<SetFile>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let size = body.content.len();
    state
        .kernel
        .agents()
        .write_file(id, name.clone(), body.content.into_bytes())
        .await?;
    Ok(Json(
        serde_json::json!({ "status": "saved", "name": name, "size": size }),
    ))
}

/// Deletes a workspace file.
#[utoipa::path(delete, path = "/api/agents/{id}/files/{filename}", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id"), ("filename" = String, Path, description = "File name")),
    responses((status = 200, description = "`{status: deleted, name}`", body = Object),
              (status = 404, description = "No such agent or file")))]
pub async fn delete_file(
    State(state): State<AppState>,
    Path((id, name)): Path<(Uuid, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.kernel.agents().delete_file(id, name.clone()).await?;
    Ok(Json(
        serde_json::json!({ "status": "deleted", "name": name }),
    ))
}

/// The name of an upload that came without one (LibreFang's default).
const DEFAULT_UPLOAD_NAME: &str = "upload";

/// Uploads an attachment: a raw body with `Content-Type` and `X-Filename`,
/// or `multipart/form-data` with one file field. Without a name the file is
/// called `upload`, as in LibreFang.
#[utoipa::path(post, path = "/api/agents/{id}/upload", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id")),
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream",
        description = "The file's bytes (none makes an empty file)"),
    responses((status = 201, description = "`{file_id, filename, content_type, size}`", body = Object),
              (status = 400, description = "Bad multipart body or file type"),
              (status = 404, description = "No such agent"), (status = 413, description = "Too large")))]
pub async fn upload(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    request: Request,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let headers = request.headers().clone();
    let content_type =
        header_str(&headers, header::CONTENT_TYPE.as_str()).unwrap_or("application/octet-stream");
    let (filename, content_type, bytes) = if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?
            .ok_or_else(|| ApiError::BadRequest("the multipart body has no file field".into()))?;
        let filename = field
            .file_name()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_UPLOAD_NAME)
            .to_string();
        let kind = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        (filename, kind, bytes)
    } else {
        let filename = header_str(&headers, "x-filename")
            .unwrap_or(DEFAULT_UPLOAD_NAME)
            .to_string();
        let kind = content_type.to_string();
        let bytes = Bytes::from_request(request, &state)
            .await
            .map_err(|e| ApiError::PayloadTooLarge(e.body_text()))?;
        (filename, kind, bytes)
    };
    let upload = state
        .kernel
        .agents()
        .upload(id, filename, content_type, bytes.to_vec())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "file_id": upload.id,
            "filename": upload.filename,
            "content_type": upload.content_type,
            "size": upload.size,
        })),
    ))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
}

/// Serves an uploaded file with its content type.
#[utoipa::path(get, path = "/api/uploads/{file_id}", tag = "agents",
    params(("file_id" = Uuid, Path, description = "Upload id")),
    responses((status = 200, description = "The bytes"), (status = 404, description = "No such upload")))]
pub async fn get_upload(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let (upload, bytes) = state.kernel.agents().get_upload(id).await?;
    let mut response = bytes.into_response();
    let inline_image = matches!(
        upload.content_type.as_str(),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    );
    // Anything but a plain image is served as a download, so an uploaded page
    // can never run as this origin.
    let kind = if inline_image {
        upload.content_type.as_str()
    } else {
        "application/octet-stream"
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(kind).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if !inline_image {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    Ok(response)
}
