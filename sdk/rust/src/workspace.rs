//! Paths in the calling agent's workspace.
//!
//! The host preopens the calling agent's workspace as the guest's `/` (when
//! the operator granted the plugin `filesystem`), so `std::fs` works on it
//! directly. The helpers here turn the paths a model writes (`notes.md`,
//! `./src/../README.md`, `/data/x.csv`) into one canonical form, refuse the
//! ones that climb out of the workspace before the host has to, and word I/O
//! errors so that the agent can act on them.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::ToolError;

/// Resolves `path`, relative to the workspace root, into the absolute guest
/// path to open (`/` is the workspace root).
///
/// `.` and `..` are applied lexically; a path that would leave the
/// workspace is [`ToolError::InvalidArguments`]. A leading `/` is accepted
/// and means the workspace root, because models often write one.
///
/// ```
/// use std::path::Path;
/// use talon_sdk::workspace::resolve;
///
/// assert_eq!(resolve("notes/../todo.md").unwrap(), Path::new("/todo.md"));
/// assert_eq!(resolve("").unwrap(), Path::new("/"));
/// assert!(resolve("../etc/passwd").is_err());
/// ```
pub fn resolve(path: &str) -> Result<PathBuf, ToolError> {
    if path.contains('\0') {
        return Err(ToolError::InvalidArguments(
            "the path contains a NUL character".into(),
        ));
    }
    let mut resolved = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::ParentDir => {
                if !resolved.pop() {
                    return Err(ToolError::InvalidArguments(format!(
                        "`{path}` leads outside the workspace; paths are relative to the workspace root"
                    )));
                }
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok(resolved)
}

/// How to show a resolved path to the agent: relative to the workspace root,
/// `.` for the root itself.
///
/// ```
/// use std::path::Path;
/// use talon_sdk::workspace::display;
///
/// assert_eq!(display(Path::new("/src/main.rs")), "src/main.rs");
/// assert_eq!(display(Path::new("/")), ".");
/// ```
pub fn display(path: &Path) -> String {
    let relative = path.strip_prefix("/").unwrap_or(path);
    if relative.as_os_str().is_empty() {
        ".".to_string()
    } else {
        relative.to_string_lossy().into_owned()
    }
}

/// Turns an I/O error on `path` into a tool error an agent can act on.
///
/// A missing file is [`ToolError::NotFound`]; if the workspace itself is not
/// reachable, the error says that the operator has to grant the plugin
/// filesystem access, instead of the misleading "not found" the guest sees.
pub fn io_error(path: &Path, error: io::Error) -> ToolError {
    if !has_access() {
        return ToolError::PermissionDenied(
            "this plugin has no access to the agent's workspace: the operator must grant it \
             the `filesystem` permission"
                .into(),
        );
    }
    let shown = display(path);
    match error.kind() {
        io::ErrorKind::NotFound => ToolError::NotFound(format!("`{shown}` does not exist")),
        io::ErrorKind::PermissionDenied => {
            ToolError::PermissionDenied(format!("access to `{shown}` was refused"))
        }
        io::ErrorKind::IsADirectory => {
            ToolError::InvalidArguments(format!("`{shown}` is a directory"))
        }
        io::ErrorKind::NotADirectory => {
            ToolError::InvalidArguments(format!("a parent of `{shown}` is not a directory"))
        }
        io::ErrorKind::AlreadyExists => {
            ToolError::InvalidArguments(format!("`{shown}` already exists"))
        }
        _ => ToolError::Failed(format!("`{shown}`: {error}")),
    }
}

/// Whether the workspace root is reachable from this call.
pub fn has_access() -> bool {
    std::fs::metadata("/").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_inside_the_workspace() {
        assert_eq!(resolve("a/b.txt").unwrap(), Path::new("/a/b.txt"));
        assert_eq!(resolve("/a/./b/../c").unwrap(), Path::new("/a/c"));
        assert_eq!(resolve(".").unwrap(), Path::new("/"));
        assert_eq!(resolve("a/..").unwrap(), Path::new("/"));
        assert_eq!(resolve("//x//y/").unwrap(), Path::new("/x/y"));
    }

    #[test]
    fn refuses_escapes_and_nul() {
        for path in ["..", "../x", "a/../../x", "/.."] {
            let Err(ToolError::InvalidArguments(message)) = resolve(path) else {
                panic!("{path} should be refused");
            };
            assert!(message.contains("outside the workspace"), "{message}");
        }
        assert!(resolve("a\0b").is_err());
    }

    #[test]
    fn displays_relative_paths() {
        assert_eq!(display(Path::new("/a/b")), "a/b");
        assert_eq!(display(Path::new("/")), ".");
    }
}
