//! `file_write`: writes a text file in the calling agent's workspace:
//! replace, append, or create only if absent. Replacing is atomic: the new
//! content goes to a temporary file that is renamed over the old one, so a
//! failed call never leaves a half-written file.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use talon_sdk::{ToolError, Tools, workspace};

/// The most bytes one call writes.
const MAX_BYTES: usize = 4 * 1024 * 1024;

/// How to treat an existing file.
#[talon_sdk::args]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// Replace the file's content (create it if absent).
    #[default]
    Overwrite,
    /// Add to the end of the file (create it if absent).
    Append,
    /// Create the file; fail if it exists.
    Create,
}

/// Arguments of `file_write`.
#[talon_sdk::args]
struct WriteArgs {
    /// Path of the file, relative to the workspace root.
    path: String,
    /// The text to write (at most 4 MiB).
    content: String,
    /// `overwrite` (default), `append`, or `create` (fails if the file exists).
    #[serde(default)]
    mode: Mode,
    /// Create missing parent directories (default true).
    #[serde(default = "yes")]
    create_dirs: bool,
}

fn yes() -> bool {
    true
}

/// What `file_write` returns.
#[talon_sdk::output]
struct WriteResult {
    /// The path as resolved in the workspace.
    path: String,
    /// Bytes written by this call.
    bytes_written: usize,
    /// Size of the file afterwards.
    size: u64,
    /// Whether the file did not exist before.
    created: bool,
}

fn file_write(args: WriteArgs) -> Result<WriteResult, ToolError> {
    let path = workspace::resolve(&args.path)?;
    let shown = workspace::display(&path);
    if path == Path::new("/") {
        return Err(ToolError::invalid_arguments(
            "the path names the workspace root, not a file",
        ));
    }
    if args.content.len() > MAX_BYTES {
        return Err(ToolError::invalid_arguments(format!(
            "content is {} bytes; file_write takes at most {MAX_BYTES}",
            args.content.len()
        )));
    }
    let existed = match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => {
            return Err(ToolError::invalid_arguments(format!(
                "`{shown}` is a directory"
            )));
        }
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(workspace::io_error(&path, e)),
    };
    if existed && args.mode == Mode::Create {
        return Err(ToolError::invalid_arguments(format!(
            "`{shown}` already exists; use mode `overwrite` or `append`"
        )));
    }
    if let Some(parent) = path.parent() {
        if args.create_dirs {
            fs::create_dir_all(parent).map_err(|e| workspace::io_error(parent, e))?;
        } else if !parent.is_dir() {
            return Err(ToolError::not_found(format!(
                "the directory `{}` does not exist; set create_dirs to create it",
                workspace::display(parent)
            )));
        }
    }
    match args.mode {
        Mode::Append => {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| workspace::io_error(&path, e))?;
            file.write_all(args.content.as_bytes())
                .map_err(|e| workspace::io_error(&path, e))?;
        }
        Mode::Create => {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| workspace::io_error(&path, e))?;
            file.write_all(args.content.as_bytes())
                .map_err(|e| workspace::io_error(&path, e))?;
        }
        Mode::Overwrite => replace(&path, args.content.as_bytes())?,
    }
    let size = fs::metadata(&path)
        .map_err(|e| workspace::io_error(&path, e))?
        .len();
    talon_sdk::log::debug(format!("wrote {} bytes to {shown}", args.content.len()));
    Ok(WriteResult {
        path: shown,
        bytes_written: args.content.len(),
        size,
        created: !existed,
    })
}

/// Writes `content` to a temporary file beside `path`, then renames it
/// over `path`.
fn replace(path: &Path, content: &[u8]) -> Result<(), ToolError> {
    let temporary = temporary_path(path);
    let written = fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(content)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&temporary, path)) {
        // Best effort: the temporary file is ours and useless now.
        let _ = fs::remove_file(&temporary);
        return Err(workspace::io_error(path, e));
    }
    Ok(())
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.talon-write"))
}

fn tools() -> Tools {
    Tools::new().tool(
        "file_write",
        "Writes a UTF-8 text file in the agent's workspace. `mode` is `overwrite` (default; \
         replaces the file atomically), `append`, or `create` (fails if the file exists). \
         Missing parent directories are created.",
        file_write,
    )
}

talon_sdk::export_plugin!(tools);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_file_is_hidden_beside_the_target() {
        assert_eq!(
            temporary_path(Path::new("/notes/today.md")),
            Path::new("/notes/.today.md.talon-write")
        );
    }

    #[test]
    fn mode_names_are_snake_case() {
        let args: WriteArgs =
            talon_sdk::serde_json::from_str(r#"{"path": "a", "content": "b", "mode": "append"}"#)
                .unwrap();
        assert_eq!(args.mode, Mode::Append);
        assert!(args.create_dirs);
        let schema = talon_sdk::parameters_schema::<WriteArgs>();
        assert_eq!(schema["required"], talon_sdk::json!(["path", "content"]));
    }
}
