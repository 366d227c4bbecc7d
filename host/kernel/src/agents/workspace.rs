//! Agent workspaces: a directory of files per agent, reached only through
//! cap-std so that no name, `..` or symlink can lead outside it.

use std::io::Write;
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::KernelError;

/// Largest file accepted through the API, in bytes.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;

/// One entry of a workspace listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileInfo {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `file` or `dir`.
    pub kind: &'static str,
    /// Last modification.
    pub modified: Option<DateTime<Utc>>,
}

/// Checks a file name from a request: one path segment, nothing clever.
pub fn validate_name(name: &str) -> Result<(), KernelError> {
    let bad = |why: &str| {
        Err(KernelError::Invalid(format!(
            "invalid file name `{name}`: {why}"
        )))
    };
    if name.is_empty() || name.len() > 255 {
        return bad("it must be 1-255 bytes");
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\\') {
        return bad("it must be a plain name inside the workspace, without `/` or `..`");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("it must not contain control characters");
    }
    Ok(())
}

fn io_error(name: &str, e: std::io::Error) -> KernelError {
    match e.kind() {
        std::io::ErrorKind::NotFound => KernelError::NotFound(format!("file `{name}` not found")),
        // cap-std answers an escape attempt (a symlink leading out) with PermissionDenied.
        std::io::ErrorKind::PermissionDenied => {
            KernelError::Invalid(format!("file `{name}` is outside the workspace"))
        }
        _ => KernelError::Invalid(format!("file `{name}`: {e}")),
    }
}

/// Opens (creating if needed) the workspace at `root` as a capability.
pub fn open(root: &Path) -> Result<Dir, KernelError> {
    std::fs::create_dir_all(root).map_err(|e| {
        KernelError::Invalid(format!("cannot create workspace {}: {e}", root.display()))
    })?;
    Dir::open_ambient_dir(root, ambient_authority())
        .map_err(|e| KernelError::Invalid(format!("cannot open workspace {}: {e}", root.display())))
}

/// Every entry at the top of the workspace, by name.
pub fn list(root: &Path) -> Result<Vec<FileInfo>, KernelError> {
    let dir = open(root)?;
    let mut out = Vec::new();
    for entry in dir.entries().map_err(|e| io_error(".", e))? {
        let entry = entry.map_err(|e| io_error(".", e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(".talon-tmp-") {
            continue;
        }
        let meta = entry.metadata().map_err(|e| io_error(&name, e))?;
        out.push(FileInfo {
            name,
            size: meta.len(),
            kind: if meta.is_dir() { "dir" } else { "file" },
            modified: meta
                .modified()
                .ok()
                .map(|t| DateTime::<Utc>::from(t.into_std())),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Reads one file.
pub fn read(root: &Path, name: &str) -> Result<Vec<u8>, KernelError> {
    validate_name(name)?;
    let dir = open(root)?;
    let meta = dir.metadata(name).map_err(|e| io_error(name, e))?;
    if !meta.is_file() {
        return Err(KernelError::Invalid(format!("`{name}` is not a file")));
    }
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(KernelError::Invalid(format!(
            "`{name}` is {} bytes; the limit is {MAX_FILE_BYTES}",
            meta.len()
        )));
    }
    dir.read(name).map_err(|e| io_error(name, e))
}

/// Writes one file atomically and durably: a temporary sibling is written,
/// synced and renamed over the target, so readers see the old or the new
/// content, never a torn one.
pub fn write(root: &Path, name: &str, bytes: &[u8]) -> Result<(), KernelError> {
    validate_name(name)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(KernelError::Invalid(format!(
            "file is {} bytes; the limit is {MAX_FILE_BYTES}",
            bytes.len()
        )));
    }
    let dir = open(root)?;
    let tmp = format!(".talon-tmp-{}", uuid::Uuid::new_v4());
    let result = (|| {
        let mut file = dir.create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        dir.rename(&tmp, &dir, name)?;
        std::fs::File::open(root)?.sync_all()
    })();
    if result.is_err() {
        let _ = dir.remove_file(&tmp);
    }
    result.map_err(|e| io_error(name, e))
}

/// Checks that writing `len` bytes as `name` keeps the workspace within
/// `quota` bytes (`[plugins] max_workspace_mib_per_agent`, the quota plugin
/// writes are held to): the file it replaces no longer counts.
pub fn check_quota(root: &Path, name: &str, len: usize, quota: u64) -> Result<(), KernelError> {
    let used = talon_runtime::workspace::usage(root)
        .map_err(|e| KernelError::Invalid(format!("cannot measure the workspace: {e}")))?;
    let replaced = match root.join(name).symlink_metadata() {
        Ok(meta) if meta.is_file() => meta.len(),
        _ => 0,
    };
    let after = (used - replaced.min(used)).saturating_add(len as u64);
    if after > quota {
        return Err(KernelError::TooLarge(format!(
            "workspace quota exceeded: the agent's workspace may hold at most {quota} bytes \
             ([plugins] max_workspace_mib_per_agent); it holds {used}, and writing `{name}` \
             would take it to {after}"
        )));
    }
    Ok(())
}

/// Deletes one file.
pub fn delete(root: &Path, name: &str) -> Result<(), KernelError> {
    validate_name(name)?;
    open(root)?.remove_file(name).map_err(|e| io_error(name, e))
}

/// Copies every top-level file of one workspace into another.
pub fn copy_all(from: &Path, to: &Path) -> Result<usize, KernelError> {
    let mut copied = 0;
    for info in list(from)?.into_iter().filter(|i| i.kind == "file") {
        let bytes = read(from, &info.name)?;
        write(to, &info.name, &bytes)?;
        copied += 1;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_escapes() {
        let home = tempfile::tempdir().unwrap();
        let ws = home.path().join("ws");
        write(&ws, "notes.md", b"hello").unwrap();
        assert_eq!(read(&ws, "notes.md").unwrap(), b"hello");
        assert_eq!(list(&ws).unwrap()[0].name, "notes.md");
        for bad in ["../x", "..", "a/b", "", "/etc/passwd"] {
            assert!(read(&ws, bad).is_err(), "{bad}");
        }
        std::fs::write(home.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(home.path().join("secret"), ws.join("link")).unwrap();
        let err = read(&ws, "link").unwrap_err().to_string();
        assert!(err.contains("outside the workspace"), "{err}");
        check_quota(&ws, "notes.md", 100, 100).unwrap();
        let err = check_quota(&ws, "other.md", 96, 100).unwrap_err();
        assert!(matches!(err, KernelError::TooLarge(_)), "{err}");
        assert!(
            err.to_string().contains("max_workspace_mib_per_agent"),
            "{err}"
        );
        delete(&ws, "notes.md").unwrap();
        assert!(matches!(
            read(&ws, "notes.md"),
            Err(KernelError::NotFound(_))
        ));
    }
}
