//! The `talon:plugin/log` import: plugin log lines, attributed to the plugin,
//! with their volume capped per call and per plugin, and control characters
//! escaped so a message cannot forge a line of the daemon's log.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use crate::bindings::talon::plugin::log;
use crate::host::{CallState, truncate};

/// A per-plugin token bucket of log lines: refills at the ceiling's rate per
/// second and holds at most one call's worth of lines.
pub(crate) struct LogBucket {
    state: Mutex<Option<Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl LogBucket {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(None),
        }
    }

    /// Takes one line's token; `false` when the plugin is over its rate.
    pub fn take(&self, per_second: u32, burst: u32) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let now = Instant::now();
        let burst = f64::from(burst.max(1));
        let bucket = state.get_or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * f64::from(per_second);
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What one call has logged so far.
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    /// Lines written.
    pub written: u32,
    /// Lines dropped because the call or the plugin was over its limit.
    pub dropped: u32,
}

/// `text` with every control character escaped (`\n`, `\r`, `\t`, `\u{..}`),
/// and the Unicode line and paragraph separators and bidirectional controls
/// too: a plugin's message stays one line of the log and cannot forge
/// another, nor make a line read differently from what it holds. Backslashes
/// are doubled so an escape cannot be forged either.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let needs = |c: char| c == '\\' || c.is_control() || is_invisible_format(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Line and paragraph separators and the bidirectional overrides and
/// isolates, which terminals and log viewers may render as a new line or as
/// reordered text.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl log::Host for CallState {
    async fn log(&mut self, level: log::Level, message: String) {
        let caps = &self.caps;
        let allowed = self.log.written < caps.log_lines_per_call
            && self
                .shared
                .log
                .take(caps.log_lines_per_second, caps.log_lines_per_call);
        if !allowed {
            self.log.dropped = self.log.dropped.saturating_add(1);
            return;
        }
        self.log.written += 1;
        let plugin = &*self.grants.plugin;
        let cut = truncate(&message, caps.log_line_bytes);
        let truncated = cut.len() < message.len();
        let text = escape_controls(cut);
        let text = &*text;
        // The message is a field of its own, never the format string, so
        // its text is data whatever it holds.
        match level {
            log::Level::Trace => tracing::trace!(plugin, truncated, text, "plugin log"),
            log::Level::Debug => tracing::debug!(plugin, truncated, text, "plugin log"),
            log::Level::Info => tracing::info!(plugin, truncated, text, "plugin log"),
            log::Level::Warn => tracing::warn!(plugin, truncated, text, "plugin log"),
            log::Level::Error => tracing::error!(plugin, truncated, text, "plugin log"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_a_line() {
        assert!(matches!(escape_controls("plain text"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("ok\nINFO talon: admin logged in\r\x1b[2J\tx"),
            "ok\\nINFO talon: admin logged in\\r\\u{1b}[2J\\tx"
        );
        assert_eq!(
            escape_controls("a\u{2028}b\u{202e}c"),
            "a\\u{2028}b\\u{202e}c"
        );
        // An escape written by the plugin stays distinguishable from ours.
        assert_eq!(escape_controls("\\n"), "\\\\n");
        assert!(!escape_controls("x\u{0}\u{7f}\u{85}y").contains(|c: char| c.is_control()));
    }

    #[test]
    fn the_bucket_holds_a_burst_then_refuses() {
        let bucket = LogBucket::new();
        // A rate of zero never refills: exactly the burst goes through.
        let taken = (0..50).filter(|_| bucket.take(0, 10)).count();
        assert_eq!(taken, 10);
    }
}
