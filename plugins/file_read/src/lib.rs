//! `file_read`: reads a text file from the calling agent's workspace, a range
//! of lines at a time so that large files do not flood the model's context.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};

use talon_sdk::{ToolError, Tools, workspace};

/// Lines returned when the caller does not say.
const DEFAULT_MAX_LINES: u32 = 2000;
/// The most lines one call returns.
const MAX_LINES: u32 = 20_000;
/// The most bytes of content one call returns, whatever the line count.
const MAX_BYTES: usize = 256 * 1024;
/// Lines longer than this are cut, so one minified file cannot use the budget.
const MAX_LINE_BYTES: usize = 4096;

/// Arguments of `file_read`.
#[talon_sdk::args]
struct ReadArgs {
    /// Path of the file, relative to the workspace root.
    path: String,
    /// First line to return, counting from 1 (default 1).
    #[serde(default)]
    start_line: Option<u32>,
    /// How many lines to return (default 2000, at most 20000).
    #[serde(default)]
    max_lines: Option<u32>,
}

/// What `file_read` returns.
#[talon_sdk::output]
struct ReadResult {
    /// The path as resolved in the workspace.
    path: String,
    /// Size of the whole file in bytes.
    size: u64,
    /// Line number of the first returned line.
    start_line: u32,
    /// Line number of the last returned line (start_line - 1 if none).
    end_line: u32,
    /// The lines, joined with `\n`.
    content: String,
    /// Whether the file goes on after `end_line`.
    truncated: bool,
}

fn file_read(args: ReadArgs) -> Result<ReadResult, ToolError> {
    let path = workspace::resolve(&args.path)?;
    let shown = workspace::display(&path);
    let start_line = args.start_line.unwrap_or(1);
    if start_line == 0 {
        return Err(ToolError::invalid_arguments("start_line counts from 1"));
    }
    let max_lines = args.max_lines.unwrap_or(DEFAULT_MAX_LINES);
    if max_lines == 0 || max_lines > MAX_LINES {
        return Err(ToolError::invalid_arguments(format!(
            "max_lines must be between 1 and {MAX_LINES}"
        )));
    }
    let metadata = std::fs::metadata(&path).map_err(|e| workspace::io_error(&path, e))?;
    if metadata.is_dir() {
        return Err(ToolError::invalid_arguments(format!(
            "`{shown}` is a directory; use file_list to see what it holds"
        )));
    }
    let file = File::open(&path).map_err(|e| workspace::io_error(&path, e))?;
    let mut reader = BufReader::new(file);
    let window =
        read_lines(&mut reader, start_line, max_lines).map_err(|e| read_error(&shown, e))?;
    Ok(ReadResult {
        path: shown,
        size: metadata.len(),
        start_line,
        end_line: start_line + window.lines - 1,
        content: window.content,
        truncated: window.more,
    })
}

/// Lines read from a file.
#[derive(Debug, PartialEq, Eq)]
struct Window {
    content: String,
    lines: u32,
    more: bool,
}

/// Why reading failed: I/O, or content that is not text.
enum ReadError {
    Io(std::io::Error),
    Binary,
}

fn read_error(shown: &str, error: ReadError) -> ToolError {
    match error {
        ReadError::Io(e) => ToolError::failed(format!("reading `{shown}`: {e}")),
        ReadError::Binary => ToolError::invalid_arguments(format!(
            "`{shown}` is not a UTF-8 text file; file_read returns text only"
        )),
    }
}

/// Reads up to `max_lines` lines starting at line `start` (1-based), within
/// the byte budget. Line endings are normalized to `\n`.
fn read_lines(reader: &mut impl BufRead, start: u32, max_lines: u32) -> Result<Window, ReadError> {
    let mut content = String::new();
    let mut lines = 0;
    let mut number = 0;
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        // Cap each line's read so a file with no newlines cannot exhaust
        // memory; the rest of an overlong line is skipped below.
        let read = reader
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buffer)
            .map_err(ReadError::Io)?;
        if read == 0 {
            return Ok(Window {
                content,
                lines,
                more: false,
            });
        }
        let complete = buffer.ends_with(b"\n");
        if !complete && buffer.len() > MAX_LINE_BYTES {
            skip_rest_of_line(reader).map_err(ReadError::Io)?;
        }
        number += 1;
        if number < start {
            continue;
        }
        if lines == max_lines {
            return Ok(Window {
                content,
                lines,
                more: true,
            });
        }
        if buffer.contains(&0) {
            return Err(ReadError::Binary);
        }
        let line = line_text(&buffer)?;
        if content.len() + line.len() + 1 > MAX_BYTES && lines > 0 {
            return Ok(Window {
                content,
                lines,
                more: true,
            });
        }
        if lines > 0 {
            content.push('\n');
        }
        content.push_str(&line);
        lines += 1;
    }
}

/// The text of one raw line without its line ending; an overlong line is cut
/// (on a character boundary) and marked.
fn line_text(raw: &[u8]) -> Result<String, ReadError> {
    let mut bytes = raw.strip_suffix(b"\n").unwrap_or(raw);
    bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let cut = bytes.len() > MAX_LINE_BYTES;
    let bytes = &bytes[..bytes.len().min(MAX_LINE_BYTES)];
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        // The cut may split a character; keep the valid prefix.
        Err(e) if cut && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).map_err(|_| ReadError::Binary)?
        }
        Err(_) => return Err(ReadError::Binary),
    };
    if cut {
        Ok(format!("{text} [… line cut at {MAX_LINE_BYTES} bytes]"))
    } else {
        Ok(text.to_string())
    }
}

fn skip_rest_of_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(());
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

fn tools() -> Tools {
    Tools::new().tool(
        "file_read",
        "Reads a UTF-8 text file from the agent's workspace and returns a range of its lines \
         (2000 from the start unless start_line/max_lines say otherwise). `truncated` tells \
         whether the file goes on; read further with a larger start_line.",
        file_read,
    )
}

talon_sdk::export_plugin!(tools);

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn window(text: &[u8], start: u32, max: u32) -> Window {
        match read_lines(&mut Cursor::new(text.to_vec()), start, max) {
            Ok(w) => w,
            Err(ReadError::Binary) => panic!("binary"),
            Err(ReadError::Io(e)) => panic!("{e}"),
        }
    }

    #[test]
    fn reads_a_window_of_lines() {
        let text = b"one\ntwo\r\nthree\nfour";
        assert_eq!(
            window(text, 1, 10),
            Window {
                content: "one\ntwo\nthree\nfour".into(),
                lines: 4,
                more: false
            }
        );
        assert_eq!(
            window(text, 2, 2),
            Window {
                content: "two\nthree".into(),
                lines: 2,
                more: true
            }
        );
        assert_eq!(
            window(text, 9, 2),
            Window {
                content: String::new(),
                lines: 0,
                more: false
            }
        );
    }

    #[test]
    fn cuts_overlong_lines_and_goes_on() {
        let mut text = vec![b'x'; MAX_LINE_BYTES * 3];
        text.extend_from_slice(b"\nnext");
        let w = window(&text, 1, 10);
        assert_eq!(w.lines, 2);
        assert!(w.content.contains("line cut at"));
        assert!(w.content.ends_with("\nnext"));
    }

    #[test]
    fn keeps_within_the_byte_budget() {
        let line = "y".repeat(1000);
        let text = vec![line.as_str(); 1000].join("\n");
        let w = window(text.as_bytes(), 1, 1000);
        assert!(w.more);
        assert!(w.content.len() <= MAX_BYTES);
    }

    #[test]
    fn refuses_binary_content() {
        let result = read_lines(&mut Cursor::new(b"ab\0cd".to_vec()), 1, 10);
        assert!(matches!(result, Err(ReadError::Binary)));
        let result = read_lines(&mut Cursor::new(vec![0xff, 0xfe, b'a']), 1, 10);
        assert!(matches!(result, Err(ReadError::Binary)));
    }

    #[test]
    fn cut_may_split_a_multibyte_character() {
        let mut text = "é".repeat(MAX_LINE_BYTES).into_bytes();
        text.push(b'\n');
        let w = window(&text, 1, 1);
        assert!(w.content.starts_with("ééé"));
    }
}
