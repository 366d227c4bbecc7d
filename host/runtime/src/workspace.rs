//! The per-agent workspace quota: a guest's writes into the agent's
//! workspace (the `wasi:filesystem` preopen) that would take it past
//! [`Ceilings::workspace_bytes`](crate::Ceilings::workspace_bytes) fail with
//! `insufficient-space` (ENOSPC), and the call ends as
//! [`GuardError::WorkspaceQuota`](crate::GuardError::WorkspaceQuota).
//!
//! wasmtime-wasi offers no hook for this, so the four `wasi:filesystem`
//! functions that make files grow (`write`, `write-via-stream`,
//! `append-via-stream`, `set-size`) are shadowed in the linker by wrappers
//! that reserve the growth first and then run wasmtime-wasi's own
//! implementation; the streams are wrapped in a [`QuotaStream`] that reserves
//! before each write, so `splice` and `write-zeroes` are counted too.
//!
//! What counts is the apparent size of the regular files in the workspace
//! (a sparse file counts whole). It is measured (walked) on the first write
//! of a call when no other call is writing to the same workspace, then
//! counted up by every write of the calls sharing it. Space a call frees
//! (truncating, deleting) counts again only from the next measurement, so
//! the count errs towards refusing.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    Descriptor, ErrorCode, Filesize, Host, HostDescriptor,
};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};

use crate::host::CallState;

/// The `wasi:filesystem/types` instance wasmtime-wasi defines; the shadows
/// must replace functions of this exact name (guests importing any 0.2.x
/// version are served by it). A runtime test writes past the quota, so a
/// new wasmtime-wasi defining another version is noticed.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// The total apparent size of the regular files under `root`, not following
/// symbolic links. A missing `root` is empty.
pub fn usage(root: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    Ok(total)
}

/// The workspaces calls are writing to now, each with its count, so that
/// concurrent calls for one agent share one count.
#[derive(Default)]
pub(crate) struct Workspaces {
    live: Mutex<HashMap<PathBuf, Weak<Usage>>>,
}

impl Workspaces {
    /// The quota of one call writing to `root` with a limit of `limit` bytes.
    pub fn call(&self, root: &Path, limit: u64) -> Arc<CallQuota> {
        let usage = match self.live.lock() {
            Ok(mut live) => {
                live.retain(|_, usage| usage.strong_count() > 0);
                match live.get(root).and_then(Weak::upgrade) {
                    Some(usage) => usage,
                    None => {
                        let usage = Arc::new(Usage::new(root));
                        live.insert(root.to_path_buf(), Arc::downgrade(&usage));
                        usage
                    }
                }
            }
            // A poisoned map only loses sharing between concurrent calls.
            Err(_) => Arc::new(Usage::new(root)),
        };
        Arc::new(CallQuota {
            usage,
            limit,
            refused: AtomicBool::new(false),
        })
    }
}

/// One workspace's count, shared by the calls writing to it.
pub(crate) struct Usage {
    root: PathBuf,
    /// Bytes used, once measured.
    used: Mutex<Option<u64>>,
}

impl Usage {
    fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            used: Mutex::new(None),
        }
    }
}

/// The quota as one call sees it.
pub(crate) struct CallQuota {
    usage: Arc<Usage>,
    /// Bytes the workspace may hold, from the call's ceilings.
    pub limit: u64,
    /// Whether a write of this call was refused.
    refused: AtomicBool,
}

/// A write refused by the quota, as the guest sees it: ENOSPC.
fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

impl CallQuota {
    /// Measures the workspace if no call has yet (off the async threads).
    async fn measure(&self) -> io::Result<()> {
        if self.usage.used.lock().map(|u| u.is_some()).unwrap_or(false) {
            return Ok(());
        }
        let root = self.usage.root.clone();
        let measured = tokio::task::spawn_blocking(move || usage(&root))
            .await
            .map_err(io::Error::other)??;
        if let Ok(mut used) = self.usage.used.lock() {
            // Another call may have measured meanwhile and counted writes since.
            used.get_or_insert(measured);
        }
        Ok(())
    }

    /// Counts `bytes` more, or refuses (and remembers the refusal) if that
    /// would take the workspace past the limit.
    fn reserve(&self, bytes: u64) -> io::Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let mut used = self
            .usage
            .used
            .lock()
            .map_err(|_| io::Error::other("workspace count poisoned"))?;
        let now = used.unwrap_or(0);
        match now.checked_add(bytes) {
            Some(total) if total <= self.limit => {
                *used = Some(total);
                Ok(())
            }
            _ => {
                self.refused.store(true, Ordering::Relaxed);
                tracing::debug!(
                    workspace = %self.usage.root.display(),
                    used = now,
                    asked = bytes,
                    limit = self.limit,
                    "plugin write refused: workspace quota"
                );
                Err(no_space())
            }
        }
    }

    /// Gives back bytes reserved for a write that did not happen.
    fn release(&self, bytes: u64) {
        if let Ok(mut used) = self.usage.used.lock()
            && let Some(used) = used.as_mut()
        {
            *used = used.saturating_sub(bytes);
        }
    }

    /// Whether a write of this call was refused.
    pub fn was_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The file size behind a descriptor, through wasmtime-wasi's own `stat`.
async fn file_size(
    state: &mut CallState,
    fd: &Resource<Descriptor>,
) -> wasmtime::Result<Result<u64, ErrorCode>> {
    let mut view = state.filesystem();
    let borrowed = Resource::<Descriptor>::new_borrow(fd.rep());
    match HostDescriptor::stat(&mut view, borrowed).await {
        Ok(stat) => Ok(Ok(stat.size)),
        Err(e) => Ok(Err(view.convert_error_code(e)?)),
    }
}

/// The guest-visible error for an I/O error of the quota's own.
fn error_code(e: &io::Error) -> ErrorCode {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => ErrorCode::InsufficientSpace,
        _ => ErrorCode::Io,
    }
}

/// Replaces the `wasi:filesystem` functions that make files grow with
/// wrappers that count against the workspace quota first.
pub(crate) fn shadow_writes(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;

    types.func_wrap_async(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, CallState>,
         (fd, buf, offset): (Resource<Descriptor>, Vec<u8>, Filesize)| {
            Box::new(async move {
                let state = store.data_mut();
                let quota = state.workspace.clone();
                let mut growth = 0;
                if let Some(quota) = &quota {
                    let size = match file_size(state, &fd).await? {
                        Ok(size) => size,
                        Err(code) => return Ok((Err(code),)),
                    };
                    let end = offset.saturating_add(buf.len() as u64);
                    growth = end.saturating_sub(size);
                    if let Err(e) = quota.measure().await.and_then(|()| quota.reserve(growth)) {
                        return Ok((Err(error_code(&e)),));
                    }
                }
                let len = buf.len() as u64;
                let mut view = state.filesystem();
                let result = match HostDescriptor::write(&mut view, fd, buf, offset).await {
                    Ok(written) => Ok(written),
                    Err(e) => Err(view.convert_error_code(e)?),
                };
                if let Some(quota) = &quota {
                    // Whatever was not written was not grown.
                    let unwritten = len - result.as_ref().map_or(0, |w| (*w).min(len));
                    quota.release(unwritten.min(growth));
                }
                Ok((result,))
            })
        },
    )?;

    types.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, CallState>,
         (fd, size): (Resource<Descriptor>, Filesize)| {
            Box::new(async move {
                let state = store.data_mut();
                let quota = state.workspace.clone();
                let mut growth = 0;
                if let Some(quota) = &quota {
                    let current = match file_size(state, &fd).await? {
                        Ok(current) => current,
                        Err(code) => return Ok((Err(code),)),
                    };
                    growth = size.saturating_sub(current);
                    if let Err(e) = quota.measure().await.and_then(|()| quota.reserve(growth)) {
                        return Ok((Err(error_code(&e)),));
                    }
                }
                let mut view = state.filesystem();
                let result = match HostDescriptor::set_size(&mut view, fd, size).await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(view.convert_error_code(e)?),
                };
                if let (Some(quota), Err(_)) = (&quota, &result) {
                    quota.release(growth);
                }
                Ok((result,))
            })
        },
    )?;

    types.func_wrap_async(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, CallState>,
         (fd, offset): (Resource<Descriptor>, Filesize)| {
            Box::new(async move {
                let state = store.data_mut();
                let at = match &state.workspace {
                    Some(_) => match file_size(state, &fd).await? {
                        Ok(size) => Some(Position::At { offset, end: size }),
                        Err(code) => return Ok((Err(code),)),
                    },
                    None => None,
                };
                let mut view = state.filesystem();
                let stream = match HostDescriptor::write_via_stream(&mut view, fd, offset) {
                    Ok(stream) => stream,
                    Err(e) => return Ok((Err(view.convert_error_code(e)?),)),
                };
                Ok((wrap_stream(state, stream, at).await?,))
            })
        },
    )?;

    types.func_wrap_async(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, CallState>, (fd,): (Resource<Descriptor>,)| {
            Box::new(async move {
                let state = store.data_mut();
                let mut view = state.filesystem();
                let stream = match HostDescriptor::append_via_stream(&mut view, fd) {
                    Ok(stream) => stream,
                    Err(e) => return Ok((Err(view.convert_error_code(e)?),)),
                };
                Ok((wrap_stream(state, stream, Some(Position::Append)).await?,))
            })
        },
    )?;

    linker.allow_shadowing(false);
    Ok(())
}

/// Puts wasmtime-wasi's file stream behind a [`QuotaStream`] when the call
/// has a quota.
async fn wrap_stream(
    state: &mut CallState,
    stream: Resource<DynOutputStream>,
    position: Option<Position>,
) -> wasmtime::Result<Result<Resource<DynOutputStream>, ErrorCode>> {
    let (Some(quota), Some(position)) = (state.workspace.clone(), position) else {
        return Ok(Ok(stream));
    };
    if let Err(e) = quota.measure().await {
        state.table.delete(stream)?;
        return Ok(Err(error_code(&e)));
    }
    let inner = state.table.delete(stream)?;
    let wrapped: DynOutputStream = Box::new(QuotaStream {
        inner,
        quota,
        position,
    });
    Ok(Ok(state.table.push(wrapped)?))
}

/// Where a stream writes, to know how much each write grows the file.
#[derive(Clone, Copy)]
enum Position {
    /// At `offset`, in a file whose end (as far as this stream knows) is `end`.
    At { offset: u64, end: u64 },
    /// At the end: every byte grows the file.
    Append,
}

impl Position {
    /// Bytes a write of `len` grows the file by; advances the position.
    fn advance(&mut self, len: u64) -> u64 {
        match self {
            Self::Append => len,
            Self::At { offset, end } => {
                let new_end = offset.saturating_add(len);
                let growth = new_end.saturating_sub(*end);
                *offset = new_end;
                *end = (*end).max(new_end);
                growth
            }
        }
    }
}

/// A file output stream that reserves each write's growth against the
/// workspace quota before passing it on; a refused write fails the stream
/// with ENOSPC (the guest reads `insufficient-space` from
/// `filesystem-error-code`).
struct QuotaStream {
    inner: DynOutputStream,
    quota: Arc<CallQuota>,
    position: Position,
}

impl QuotaStream {
    fn reserve(&mut self, len: u64) -> StreamResult<()> {
        let mut next = self.position;
        let growth = next.advance(len);
        self.quota
            .reserve(growth)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))?;
        self.position = next;
        Ok(())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for QuotaStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for QuotaStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.reserve(bytes.len() as u64)?;
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.reserve(bytes.len() as u64)?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn write_zeroes(&mut self, nelem: usize) -> StreamResult<()> {
        self.reserve(nelem as u64)?;
        self.inner.write_zeroes(nelem)
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_sums_regular_files_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0; 24]).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![0; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        assert_eq!(usage(dir.path()).unwrap(), 1024);
        assert_eq!(usage(&dir.path().join("missing")).unwrap(), 0);
    }

    #[test]
    fn a_stream_counts_only_what_grows_the_file() {
        let mut at = Position::At {
            offset: 0,
            end: 100,
        };
        assert_eq!(at.advance(60), 0);
        assert_eq!(at.advance(60), 20);
        assert_eq!(at.advance(10), 10);
        let mut gap = Position::At {
            offset: 200,
            end: 100,
        };
        assert_eq!(gap.advance(1), 101);
        assert_eq!(Position::Append.advance(7), 7);
    }

    #[test]
    fn concurrent_calls_share_one_count_and_refusals_are_remembered() {
        let workspaces = Workspaces::default();
        let root = Path::new("/nonexistent/ws");
        let a = workspaces.call(root, 100);
        let b = workspaces.call(root, 100);
        *a.usage.used.lock().unwrap() = Some(0);
        a.reserve(70).unwrap();
        let err = b.reserve(40).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert!(b.was_refused() && !a.was_refused());
        a.release(70);
        b.reserve(40).unwrap();
        drop((a, b));
        let c = workspaces.call(root, 100);
        assert!(c.usage.used.lock().unwrap().is_none(), "measured afresh");
    }
}
