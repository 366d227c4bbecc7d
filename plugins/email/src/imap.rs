//! The few IMAP4rev1 (RFC 3501) exchanges the channel needs, by hand:
//! LOGIN, CAPABILITY, SELECT, UID SEARCH UNSEEN, IDLE, UID FETCH of a
//! bounded prefix of a message, UID STORE \Seen. A response is read as
//! lines and literals (`{n}` then n bytes); everything else of the grammar
//! is ignored, which is why a full codec (`imap-codec`) is not worth its
//! size here.

use talon_sdk::net::{NetError, TcpStream};

/// The longest response line (without literals) kept.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImapError {
    /// The connection failed or closed.
    Net(NetError),
    /// The server answered NO or BAD, or with something unreadable.
    Refused(String),
    /// No answer in time.
    TimedOut(String),
}

impl std::fmt::Display for ImapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Net(e) => write!(f, "{e}"),
            Self::Refused(m) => write!(f, "{m}"),
            Self::TimedOut(m) => write!(f, "no answer to {m} in time"),
        }
    }
}

/// One response line, with the literals it carried in order.
#[derive(Debug, Default)]
pub struct Line {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

/// What a successful command got back: its untagged lines.
#[derive(Debug)]
pub struct Response {
    pub untagged: Vec<Line>,
}

/// One fetched message.
pub struct Fetched {
    pub uid: u32,
    pub size: u64,
    pub bytes: Vec<u8>,
}

pub struct Imap {
    stream: TcpStream,
    buf: Vec<u8>,
    next_tag: u32,
    /// The most literal bytes accepted in one response.
    max_literal: usize,
}

fn now_ms() -> u64 {
    wasip2::clocks::monotonic_clock::now() / 1_000_000
}

/// `text` as an IMAP quoted string; `None` if it holds CR, LF or NUL.
pub fn quote(text: &str) -> Option<String> {
    if text.contains(['\r', '\n', '\0']) {
        return None;
    }
    Some(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

impl Imap {
    /// Connects and reads the greeting.
    pub fn connect(
        host: &str,
        port: u16,
        timeout_ms: u64,
        max_literal: usize,
    ) -> Result<Self, ImapError> {
        let stream = TcpStream::connect(host, port, timeout_ms).map_err(ImapError::Net)?;
        let mut imap = Self {
            stream,
            buf: Vec::new(),
            next_tag: 0,
            max_literal,
        };
        let greeting = imap
            .read_line(now_ms() + timeout_ms)?
            .ok_or_else(|| ImapError::TimedOut("the greeting".into()))?;
        if !greeting.text.starts_with("* OK") && !greeting.text.starts_with("* PREAUTH") {
            return Err(ImapError::Refused(format!(
                "the server greeted with {:?}",
                greeting.text
            )));
        }
        Ok(imap)
    }

    fn write(&mut self, data: &[u8]) -> Result<(), ImapError> {
        self.stream.write_all(data).map_err(ImapError::Net)
    }

    /// Reads one line and its literals; `None` when nothing complete came
    /// before `deadline_ms`.
    pub fn read_line(&mut self, deadline_ms: u64) -> Result<Option<Line>, ImapError> {
        let mut line = Line::default();
        let mut at = 0;
        loop {
            // Everything of the current line part up to CRLF.
            if let Some(end) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                let part = String::from_utf8_lossy(&self.buf[at..at + end]).into_owned();
                let after = at + end + 2;
                if let Some(n) = literal_size(&part) {
                    if n > self.max_literal {
                        return Err(ImapError::Refused(format!(
                            "a literal of {n} bytes, more than the {} asked for",
                            self.max_literal
                        )));
                    }
                    if self.buf.len() >= after + n {
                        line.text.push_str(&part);
                        line.literals.push(self.buf[after..after + n].to_vec());
                        at = after + n;
                        continue;
                    }
                } else {
                    line.text.push_str(&part);
                    self.buf.drain(..after);
                    return Ok(Some(line));
                }
            } else if self.buf.len() - at > MAX_LINE {
                return Err(ImapError::Refused("an overlong response line".into()));
            }
            // Need more bytes: start the line over once they are here.
            line = Line::default();
            at = 0;
            let left = deadline_ms.saturating_sub(now_ms());
            if left == 0 {
                return Ok(None);
            }
            let bytes = self
                .stream
                .read_timeout(64 * 1024, left)
                .map_err(ImapError::Net)?;
            if bytes.is_empty() {
                return Ok(None);
            }
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// Sends a command and reads its whole response.
    pub fn command(&mut self, command: &str, deadline_ms: u64) -> Result<Response, ImapError> {
        self.next_tag += 1;
        let tag = format!("t{}", self.next_tag);
        self.write(format!("{tag} {command}\r\n").as_bytes())?;
        self.finish(&tag, command, deadline_ms)
    }

    fn finish(
        &mut self,
        tag: &str,
        command: &str,
        deadline_ms: u64,
    ) -> Result<Response, ImapError> {
        let verb = command.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let mut untagged = Vec::new();
        loop {
            let line = self
                .read_line(deadline_ms)?
                .ok_or_else(|| ImapError::TimedOut(verb.clone()))?;
            if let Some(status) = line.text.strip_prefix(&format!("{tag} ")) {
                if status.starts_with("OK") {
                    return Ok(Response { untagged });
                }
                return Err(ImapError::Refused(format!("{verb}: {status}")));
            }
            if line.text.starts_with("* BYE") {
                return Err(ImapError::Refused(format!(
                    "the server said goodbye: {}",
                    line.text
                )));
            }
            untagged.push(line);
        }
    }

    /// Waits in IDLE until the mailbox changes or `deadline_ms`.
    pub fn idle(&mut self, deadline_ms: u64) -> Result<(), ImapError> {
        self.next_tag += 1;
        let tag = format!("t{}", self.next_tag);
        self.write(format!("{tag} IDLE\r\n").as_bytes())?;
        let command_deadline = now_ms() + 10_000;
        let go = self
            .read_line(command_deadline)?
            .ok_or_else(|| ImapError::TimedOut("IDLE".into()))?;
        if !go.text.starts_with('+') {
            return Err(ImapError::Refused(format!("IDLE: {}", go.text)));
        }
        while let Some(line) = self.read_line(deadline_ms)? {
            if line.text.contains("EXISTS") || line.text.contains("RECENT") {
                break;
            }
        }
        self.write(b"DONE\r\n")?;
        self.finish(&tag, "IDLE", now_ms() + 10_000).map(|_| ())
    }

    /// The UIDs of unseen messages.
    pub fn unseen(&mut self, deadline_ms: u64) -> Result<Vec<u32>, ImapError> {
        self.search("UNSEEN", deadline_ms)
    }

    /// The UIDs of the messages whose Message-ID header holds `id` (which
    /// must be quoted already, see [`quote`]).
    pub fn with_message_id(
        &mut self,
        quoted_id: &str,
        deadline_ms: u64,
    ) -> Result<Vec<u32>, ImapError> {
        self.search(&format!("HEADER Message-ID {quoted_id}"), deadline_ms)
    }

    fn search(&mut self, criteria: &str, deadline_ms: u64) -> Result<Vec<u32>, ImapError> {
        let response = self.command(&format!("UID SEARCH {criteria}"), deadline_ms)?;
        Ok(response
            .untagged
            .iter()
            .filter_map(|l| l.text.strip_prefix("* SEARCH"))
            .flat_map(|rest| rest.split_whitespace().filter_map(|n| n.parse().ok()))
            .collect())
    }

    /// The first `max` bytes of message `uid` (unmarked: PEEK), and its size.
    pub fn fetch(&mut self, uid: u32, max: usize, deadline_ms: u64) -> Result<Fetched, ImapError> {
        let response = self.command(
            &format!("UID FETCH {uid} (UID RFC822.SIZE BODY.PEEK[]<0.{max}>)"),
            deadline_ms,
        )?;
        for line in response.untagged {
            if !line.text.contains("FETCH") {
                continue;
            }
            let size = number_after(&line.text, "RFC822.SIZE ").unwrap_or(0);
            let Some(bytes) = line.literals.into_iter().next() else {
                continue;
            };
            return Ok(Fetched { uid, size, bytes });
        }
        Err(ImapError::Refused(format!(
            "FETCH {uid}: no message (deleted meanwhile?)"
        )))
    }
}

/// `n` when a line part ends with a literal announcement `{n}` (or `{n+}`).
fn literal_size(part: &str) -> Option<usize> {
    let open = part.rfind('{')?;
    let inner = part[open + 1..].strip_suffix('}')?;
    inner.trim_end_matches('+').parse().ok()
}

/// The number following `key` in `text`.
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_sizes_and_quotes() {
        assert_eq!(
            literal_size("* 1 FETCH (UID 5 RFC822.SIZE 12 BODY[]<0> {12}"),
            Some(12)
        );
        assert_eq!(literal_size("* 1 FETCH (UID 5)"), None);
        assert_eq!(
            number_after("* 1 FETCH (UID 5 RFC822.SIZE 1234 BODY", "RFC822.SIZE "),
            Some(1234)
        );
        assert_eq!(quote("a\"b\\c").as_deref(), Some("\"a\\\"b\\\\c\""));
        assert_eq!(quote("a\r\nt1 LOGOUT"), None);
    }
}
