//! A small, bounded parser for `text/event-stream` (server-sent events).
//!
//! Hand-written rather than taken from a crate because what matters here is
//! narrow and must be exact: bytes arrive in arbitrary chunks (a line, even a
//! CRLF pair or a UTF-8 sequence, can be split across two chunks), all three
//! line endings are legal, and a hostile or broken server must not make us
//! buffer without limit. The parser follows the WHATWG "event stream
//! interpretation" rules, with explicit limits on line and event size.

use std::fmt;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any (`None` means the default type, "message").
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` field seen, if any.
    pub id: Option<String>,
}

/// Input the parser refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// A line grew beyond the limit without a line ending.
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The data of one event grew beyond the limit.
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::LineTooLong { limit } => {
                write!(f, "server-sent event line longer than {limit} bytes")
            }
            SseError::EventTooLarge { limit } => {
                write!(f, "server-sent event data larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental SSE parser: feed it chunks, collect events.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    buf: Vec<u8>,
    /// How far `buf` is known to hold no line ending, so a long line that
    /// arrives in many small chunks is scanned once, not quadratically.
    scanned: usize,
    /// The previous chunk ended in CR: a LF at the start of the next chunk
    /// belongs to the same CRLF line ending.
    skip_lf: bool,
    /// Whether the optional byte order mark at the stream start is handled.
    bom_checked: bool,
    event: Option<String>,
    data: String,
    id: Option<String>,
    max_line: usize,
    max_event: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// Default longest line: large enough for a whole tool call with a big
    /// argument in one Gemini chunk, small enough to bound memory.
    pub const DEFAULT_MAX_LINE: usize = 8 * 1024 * 1024;
    /// Default largest event (sum of its data lines).
    pub const DEFAULT_MAX_EVENT: usize = 16 * 1024 * 1024;

    /// A parser with the default limits.
    pub fn new() -> Self {
        Self::with_limits(Self::DEFAULT_MAX_LINE, Self::DEFAULT_MAX_EVENT)
    }

    /// A parser with explicit limits, in bytes.
    pub fn with_limits(max_line: usize, max_event: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            scanned: 0,
            skip_lf: false,
            bom_checked: false,
            event: None,
            data: String::new(),
            id: None,
            max_line,
            max_event,
        }
    }

    /// Feeds a chunk; complete events are appended to `out`.
    ///
    /// After an error the parser's state is unspecified: stop using it.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.buf.extend_from_slice(chunk);
        if !self.bom_checked {
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                // Could still be a BOM: wait for more bytes.
                return Ok(());
            }
            if self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
            }
            self.bom_checked = true;
        }

        let mut start = 0;
        if self.skip_lf && !self.buf.is_empty() {
            if self.buf[0] == b'\n' {
                start = 1;
            }
            self.skip_lf = false;
        }
        let mut pos = self.scanned.max(start);
        while let Some(offset) = self.buf[pos..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let end = pos + offset;
            if end - start > self.max_line {
                return Err(SseError::LineTooLong {
                    limit: self.max_line,
                });
            }
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            let next = if self.buf[end] == b'\r' {
                match self.buf.get(end + 1) {
                    Some(b'\n') => end + 2,
                    Some(_) => end + 1,
                    None => {
                        self.skip_lf = true;
                        end + 1
                    }
                }
            } else {
                end + 1
            };
            self.process_line(&line, out)?;
            start = next;
            pos = next;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > self.max_line {
            return Err(SseError::LineTooLong {
                limit: self.max_line,
            });
        }
        Ok(())
    }

    /// Ends the stream. A last line without a line ending is processed and a
    /// pending event is dispatched: stricter than the specification (which
    /// drops it) because some servers omit the final blank line, and losing
    /// the last chunk of an answer is worse than accepting it.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.buf.is_empty() {
            let line = String::from_utf8_lossy(&self.buf).into_owned();
            self.buf.clear();
            self.scanned = 0;
            let line = if self.bom_checked {
                line
            } else {
                line.trim_start_matches('\u{feff}').to_string()
            };
            self.process_line(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn process_line(&mut self, line: &str, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line.starts_with(':') {
            // A comment (servers send these as keep-alives).
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_event {
                    return Err(SseError::EventTooLarge {
                        limit: self.max_event,
                    });
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            // `retry` (reconnection delay) is meaningless here: an LLM answer
            // cannot be resumed by reconnecting. Unknown fields are ignored
            // as the specification says.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the '\n' appended after the last data line
        out.push(SseEvent {
            event,
            data,
            id: self.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out)?;
        }
        parser.finish(&mut out)?;
        Ok(out)
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn parses_events_with_types_and_ids() {
        let events =
            parse_chunks(&[b"event: message_start\ndata: {\"a\":1}\nid: 7\n\ndata: second\n\n"])
                .expect("parse");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into(),
                    id: Some("7".into()),
                },
                SseEvent {
                    event: None,
                    data: "second".into(),
                    id: Some("7".into()),
                },
            ]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let input: &[u8] =
            "data: héllo\r\n\r\nevent: x\rdata: a\rdata:b\r\r: comment\n\ndata: [DONE]\n\n"
                .as_bytes();
        let whole = parse_chunks(&[input]).expect("parse whole");
        assert_eq!(data(&whole), vec!["héllo", "a\nb", "[DONE]"]);
        assert_eq!(whole[1].event.as_deref(), Some("x"));
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(
                parse_chunks(&[a, b]).expect("parse split"),
                whole,
                "split at {split}"
            );
        }
        // One byte at a time, the worst case for partial lines.
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes).expect("parse bytes"), whole);
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_ending() {
        // If the LF after a chunk-final CR were taken as a second line ending
        // it would be an empty line and dispatch the event early.
        let events = parse_chunks(&[b"data: a\r", b"\ndata: b\r\n\r\n"]).expect("parse");
        assert_eq!(data(&events), vec!["a\nb"]);
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        let events =
            parse_chunks(&[b": keep-alive\n\nretry: 100\nfoo: bar\ndata\n\n:x\ndata: y\n\n"])
                .expect("parse");
        // "data" without a colon is a data line with an empty value.
        assert_eq!(data(&events), vec!["", "y"]);
    }

    #[test]
    fn value_keeps_everything_after_the_first_space() {
        let events =
            parse_chunks(&[b"data:  two spaces: and colon\n\ndata:none\n\n"]).expect("parse");
        assert_eq!(data(&events), vec![" two spaces: and colon", "none"]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        let events = parse_chunks(&[b"event: ping\n\nevent: real\ndata: x\n\n"]).expect("parse");
        assert_eq!(events.len(), 1);
        // The type of the event without data must not leak into the next one.
        assert_eq!(events[0].event.as_deref(), Some("real"));
    }

    #[test]
    fn byte_order_mark_is_stripped_even_when_split() {
        let events = parse_chunks(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]).expect("parse");
        assert_eq!(data(&events), vec!["x"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let events = parse_chunks(&[b"data: a\xFFb\n\n"]).expect("parse");
        assert_eq!(data(&events), vec!["a\u{FFFD}b"]);
    }

    #[test]
    fn utf8_sequence_split_across_chunks_survives() {
        let text = "data: 日本\n\n".as_bytes();
        // Split inside the first three-byte character.
        let events = parse_chunks(&[&text[..7], &text[7..]]).expect("parse");
        assert_eq!(data(&events), vec!["日本"]);
    }

    #[test]
    fn unterminated_last_event_is_kept_at_end_of_stream() {
        let events = parse_chunks(&[b"data: one\n\ndata: two"]).expect("parse");
        assert_eq!(data(&events), vec!["one", "two"]);
    }

    #[test]
    fn oversized_line_in_one_chunk_is_rejected() {
        let mut parser = SseParser::with_limits(16, 1024);
        let mut out = Vec::new();
        let line = format!("data: {}\n\n", "x".repeat(64));
        assert_eq!(
            parser.push(line.as_bytes(), &mut out),
            Err(SseError::LineTooLong { limit: 16 })
        );
    }

    #[test]
    fn oversized_line_across_chunks_is_rejected_before_it_grows() {
        // A server that never sends a line ending must not make us buffer
        // forever: the error comes as soon as the partial line passes the limit.
        let mut parser = SseParser::with_limits(1000, 4000);
        let mut out = Vec::new();
        let chunk = [b'a'; 100];
        let mut fed = 0;
        let error = loop {
            match parser.push(&chunk, &mut out) {
                Ok(()) => fed += chunk.len(),
                Err(error) => break error,
            }
            assert!(fed <= 1000, "accepted {fed} bytes without a line ending");
        };
        assert_eq!(error, SseError::LineTooLong { limit: 1000 });
        assert!(error.to_string().contains("longer than 1000 bytes"));
        assert!(out.is_empty());
    }

    #[test]
    fn oversized_event_is_rejected() {
        let mut parser = SseParser::with_limits(100, 50);
        let mut out = Vec::new();
        let many_lines = "data: 0123456789\n".repeat(10);
        assert_eq!(
            parser.push(many_lines.as_bytes(), &mut out),
            Err(SseError::EventTooLarge { limit: 50 })
        );
    }

    #[test]
    fn many_events_in_one_chunk_and_empty_chunks() {
        let input = "data: 1\n\n".repeat(1000);
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.push(b"", &mut out).expect("empty chunk");
        parser.push(input.as_bytes(), &mut out).expect("push");
        parser.finish(&mut out).expect("finish");
        assert_eq!(out.len(), 1000);
    }
}
