//! `file_list`: lists the files and directories of the calling agent's
//! workspace, optionally recursively and filtered by a name pattern.

use std::fs;
use std::path::{Path, PathBuf};

use talon_sdk::{ToolError, Tools, workspace};

/// Entries returned when the caller does not say.
const DEFAULT_MAX_ENTRIES: u32 = 500;
/// The most entries one call returns.
const MAX_ENTRIES: u32 = 5000;
/// The deepest a recursive listing goes.
const MAX_DEPTH: u32 = 20;

/// Arguments of `file_list`.
#[talon_sdk::args]
struct ListArgs {
    /// Directory to list, relative to the workspace root (default: the root).
    #[serde(default)]
    path: Option<String>,
    /// Also list the contents of subdirectories (default false).
    #[serde(default)]
    recursive: bool,
    /// How many levels a recursive listing descends (default 5, at most 20).
    #[serde(default)]
    max_depth: Option<u32>,
    /// Only list files whose name matches this pattern, with `*` for any run
    /// of characters and `?` for one character (for example `*.md`).
    #[serde(default)]
    pattern: Option<String>,
    /// Include names starting with `.` (default false).
    #[serde(default)]
    include_hidden: bool,
    /// The most entries to return (default 500, at most 5000).
    #[serde(default)]
    max_entries: Option<u32>,
}

/// One file or directory.
#[talon_sdk::output]
struct Entry {
    /// Path relative to the workspace root.
    path: String,
    /// `file`, `dir`, `symlink` or `other`.
    kind: &'static str,
    /// Size in bytes, for files.
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

/// What `file_list` returns.
#[talon_sdk::output]
struct ListResult {
    /// The directory listed, relative to the workspace root.
    path: String,
    /// Entries in path order; a directory comes before what it holds.
    entries: Vec<Entry>,
    /// Whether entries were left out because of `max_entries`.
    truncated: bool,
}

struct Listing<'a> {
    pattern: Option<&'a str>,
    include_hidden: bool,
    max_depth: u32,
    max_entries: usize,
    entries: Vec<Entry>,
    truncated: bool,
}

fn file_list(args: ListArgs) -> Result<ListResult, ToolError> {
    let root = workspace::resolve(args.path.as_deref().unwrap_or("."))?;
    let max_entries = args.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    if max_entries == 0 || max_entries > MAX_ENTRIES {
        return Err(ToolError::invalid_arguments(format!(
            "max_entries must be between 1 and {MAX_ENTRIES}"
        )));
    }
    let max_depth = match (args.recursive, args.max_depth) {
        (false, _) => 1,
        (true, None) => 5,
        (true, Some(depth)) if (1..=MAX_DEPTH).contains(&depth) => depth,
        (true, Some(_)) => {
            return Err(ToolError::invalid_arguments(format!(
                "max_depth must be between 1 and {MAX_DEPTH}"
            )));
        }
    };
    let metadata = fs::metadata(&root).map_err(|e| workspace::io_error(&root, e))?;
    if !metadata.is_dir() {
        return Err(ToolError::invalid_arguments(format!(
            "`{}` is a file, not a directory; use file_read to read it",
            workspace::display(&root)
        )));
    }
    let mut listing = Listing {
        pattern: args.pattern.as_deref().filter(|p| !p.is_empty()),
        include_hidden: args.include_hidden,
        max_depth,
        max_entries: max_entries as usize,
        entries: Vec::new(),
        truncated: false,
    };
    listing.walk(&root, 1)?;
    Ok(ListResult {
        path: workspace::display(&root),
        entries: listing.entries,
        truncated: listing.truncated,
    })
}

impl Listing<'_> {
    fn walk(&mut self, dir: &Path, depth: u32) -> Result<(), ToolError> {
        let mut children: Vec<(String, PathBuf, fs::FileType)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| workspace::io_error(dir, e))? {
            let entry = entry.map_err(|e| workspace::io_error(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !self.include_hidden && name.starts_with('.') {
                continue;
            }
            let kind = entry
                .file_type()
                .map_err(|e| workspace::io_error(&entry.path(), e))?;
            children.push((name, entry.path(), kind));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, path, kind) in children {
            if self.entries.len() == self.max_entries {
                self.truncated = true;
                return Ok(());
            }
            let matches = self.pattern.is_none_or(|p| glob_match(p, &name));
            if matches {
                let size = if kind.is_file() {
                    fs::metadata(&path).ok().map(|m| m.len())
                } else {
                    None
                };
                self.entries.push(Entry {
                    path: workspace::display(&path),
                    kind: kind_name(&kind),
                    size,
                });
            }
            // Symlinks are listed, never followed: they may point anywhere.
            if kind.is_dir() && depth < self.max_depth {
                self.walk(&path, depth + 1)?;
                if self.truncated {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

fn kind_name(kind: &fs::FileType) -> &'static str {
    if kind.is_symlink() {
        "symlink"
    } else if kind.is_dir() {
        "dir"
    } else if kind.is_file() {
        "file"
    } else {
        "other"
    }
}

/// Matches `name` against a pattern where `*` is any run of characters and
/// `?` one character; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // Where to resume after the last `*`: (pattern index, name index).
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p + 1, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((bp, bn)) => {
                    p = bp;
                    n = bn + 1;
                    backtrack = Some((bp, bn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

fn tools() -> Tools {
    Tools::new().tool(
        "file_list",
        "Lists the files and directories in the agent's workspace (the root unless `path` says \
         otherwise), with sizes. Set `recursive` to descend into subdirectories and `pattern` \
         (like `*.md`) to filter by file name.",
        file_list,
    )
}

talon_sdk::export_plugin!(tools);

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_patterns() {
        assert!(glob_match("*.md", "README.md"));
        assert!(!glob_match("*.md", "README.mdx"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(!glob_match("*a*b*", "xxbxxaxx"));
        assert!(glob_match("report-*-2024.csv", "report-q1-2024.csv"));
        assert!(glob_match("été*", "été.txt"));
        assert!(!glob_match("abc", "abcd"));
    }
}
