//! How the CLI writes: colour only where a person reads it, JSON for
//! scripts, and quiet death on a closed pipe.
//!
//! Colour goes through `anstream`, which drops the escape codes when the
//! stream is not a terminal or `NO_COLOR` is set, so no command has to ask.

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};

/// Plain emphasis (names, headings).
pub const BOLD: Style = Style::new().bold();
/// Secondary text (ids, costs, hints).
pub const DIM: Style = Style::new().dimmed();
/// Tool calls in a chat.
pub const TOOL: Style = AnsiColor::Cyan.on_default();
/// A check or turn that went well.
pub const OK: Style = AnsiColor::Green.on_default().bold();
/// Something to look at.
pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
/// A failure.
pub const FAIL: Style = AnsiColor::Red.on_default().bold();

/// Lets the CLI die of SIGPIPE like other Unix tools when its reader goes
/// away (`talon agent list --json | head -c 10`) instead of panicking in
/// `println!` on EPIPE. Not for the daemon: a client that hangs up on it
/// must not kill it.
///
/// Only a closed stdout or stderr ends the CLI: a socket the daemon closed
/// while a request body was being written (hyper writes bodies with
/// `writev`, which raises SIGPIPE) must surface as that request's error,
/// not as a silent death.
pub fn die_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: installs a handler before any thread starts; the handler
    // only calls async-signal-safe functions (poll, sigaction, raise).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigpipe as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGPIPE, &action, std::ptr::null_mut());
    }
}

/// SIGPIPE's handler: dies of it when stdout or stderr is a pipe whose
/// reader is gone (poll reports POLLERR on such a pipe), and otherwise
/// returns, so the write that raised it fails with EPIPE.
#[cfg(unix)]
extern "C" fn on_sigpipe(_: libc::c_int) {
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        let mut watched = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one pollfd on the stack, no timeout.
        let ready = unsafe { libc::poll(&mut watched, 1, 0) };
        if ready == 1 && watched.revents & libc::POLLERR != 0 {
            // SAFETY: restores the default disposition and re-raises: the
            // signal is delivered (and ends the process) once this returns.
            unsafe {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGPIPE, &default, std::ptr::null_mut());
                libc::raise(libc::SIGPIPE);
            }
            return;
        }
    }
}

/// Whether colour may be used on stderr (also what the daemon's log uses).
pub fn stderr_has_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    anstream::println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A JSON value as a short display string: strings without quotes, null
/// as `-`.
pub fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS` UTC (to the second); anything
/// else as [`text`] shows it.
pub fn time(value: &serde_json::Value) -> String {
    value
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.to_utc().format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| text(value))
}

/// `s` cut to at most `max` characters, with `…` when cut, on one line.
pub fn summary(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Prints rows as aligned columns under a bold header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        cells
            .into_iter()
            .enumerate()
            .map(|(i, cell)| match i == last {
                true => cell,
                false => format!("{cell:<width$}", width = widths[i]),
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let head = line(header.iter().map(|h| h.to_string()).collect());
    anstream::println!("{BOLD}{head}{BOLD:#}");
    for row in rows {
        anstream::println!("{}", line(row.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_cuts_on_characters_and_joins_lines() {
        assert_eq!(summary("a\n  b", 10), "a b");
        assert_eq!(summary("ééééé", 3), "ééé…");
        assert_eq!(summary("", 3), "");
    }

    #[test]
    fn times_are_cut_to_the_second() {
        assert_eq!(
            time(&serde_json::json!("2026-12-05T19:00:00.421316140Z")),
            "2026-12-05 19:00:00"
        );
        assert_eq!(time(&serde_json::Value::Null), "-");
    }

    #[test]
    fn text_shows_strings_bare() {
        assert_eq!(text(&serde_json::json!("x")), "x");
        assert_eq!(text(&serde_json::Value::Null), "-");
        assert_eq!(text(&serde_json::json!(3)), "3");
    }
}
