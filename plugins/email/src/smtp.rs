//! Sending one message over SMTP (RFC 5321): EHLO, AUTH PLAIN when
//! configured, MAIL, RCPT, DATA with dot-stuffing, QUIT; and composing that
//! message (RFC 5322 headers, a quoted-printable UTF-8 text body).

use base64::Engine as _;
use talon_sdk::net::{NetError, TcpStream};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpError {
    Net(NetError),
    /// The server answered with an error code (its reply).
    Refused(String),
    /// The server offers no login and one was configured.
    NoAuth,
}

impl std::fmt::Display for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Net(e) => write!(f, "{e}"),
            Self::Refused(m) => write!(f, "the SMTP server refused: {m}"),
            Self::NoAuth => write!(
                f,
                "the SMTP server offers no AUTH PLAIN, and a login is configured"
            ),
        }
    }
}

fn now_ms() -> u64 {
    wasip2::clocks::monotonic_clock::now() / 1_000_000
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    deadline_ms: u64,
}

impl Conn {
    /// One reply, all its lines: `(code, text)`.
    fn reply(&mut self) -> Result<(u16, String), SmtpError> {
        let mut text = String::new();
        loop {
            while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line).trim_end().to_string();
                let code = line
                    .get(..3)
                    .and_then(|c| c.parse::<u16>().ok())
                    .ok_or_else(|| SmtpError::Refused(format!("an unreadable reply {line:?}")))?;
                text.push_str(line.get(4..).unwrap_or_default());
                text.push('\n');
                if line.as_bytes().get(3) != Some(&b'-') {
                    return Ok((code, text));
                }
            }
            if self.buf.len() > 64 * 1024 {
                return Err(SmtpError::Refused("an overlong reply".into()));
            }
            let left = self.deadline_ms.saturating_sub(now_ms());
            if left == 0 {
                return Err(SmtpError::Net(NetError::TimedOut));
            }
            let bytes = self
                .stream
                .read_timeout(8192, left)
                .map_err(SmtpError::Net)?;
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// Sends `line` and expects a reply with a code in `ok`.
    fn step(&mut self, line: &str, ok: &[u16]) -> Result<String, SmtpError> {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(SmtpError::Net)?;
        self.expect(ok, line.split(' ').next().unwrap_or(line))
    }

    fn expect(&mut self, ok: &[u16], what: &str) -> Result<String, SmtpError> {
        let (code, text) = self.reply()?;
        if ok.contains(&code) {
            Ok(text)
        } else {
            Err(SmtpError::Refused(format!(
                "{what}: {code} {}",
                text.trim()
            )))
        }
    }
}

/// Where and how to send.
pub struct Server<'a> {
    pub host: &'a str,
    pub port: u16,
    pub login: Option<(&'a str, &'a str)>,
    pub timeout_ms: u64,
}

/// Sends `message` (a complete RFC 5322 message, CRLF line ends) from
/// `from` to `to`.
pub fn send(server: &Server<'_>, from: &str, to: &str, message: &str) -> Result<(), SmtpError> {
    let stream =
        TcpStream::connect(server.host, server.port, server.timeout_ms).map_err(SmtpError::Net)?;
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
        deadline_ms: now_ms() + server.timeout_ms,
    };
    conn.expect(&[220], "greeting")?;
    let features = conn.step("EHLO talon", &[250])?;
    if let Some((user, password)) = server.login {
        let plain = features.lines().any(|l| {
            let l = l.to_ascii_uppercase();
            l.starts_with("AUTH") && l.split_whitespace().any(|m| m == "PLAIN")
        });
        if !plain {
            return Err(SmtpError::NoAuth);
        }
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        conn.step(&format!("AUTH PLAIN {token}"), &[235])?;
    }
    conn.step(&format!("MAIL FROM:<{from}>"), &[250])?;
    conn.step(&format!("RCPT TO:<{to}>"), &[250, 251])?;
    conn.step("DATA", &[354])?;
    let mut data = dot_stuff(message);
    data.push_str(".\r\n");
    conn.stream
        .write_all(data.as_bytes())
        .map_err(SmtpError::Net)?;
    conn.expect(&[250], "DATA")?;
    let _ = conn.step("QUIT", &[221]);
    Ok(())
}

/// A line starting with a dot gets a second one (RFC 5321 4.5.2), so no
/// line of the message can end the DATA early.
pub fn dot_stuff(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 16);
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045 6.7) of UTF-8 text, with CRLF line ends and
/// soft breaks keeping every line within 76 characters.
pub fn quoted_printable(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::new();
    for (i, line) in normalized.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let bytes = line.as_bytes();
        let mut width = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece = if literal {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if width + piece.len() > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            width += piece.len();
            out.push_str(&piece);
        }
    }
    out
}

/// A header value: as is when it is printable ASCII, else RFC 2047
/// encoded words of at most 45 bytes of text each. Line breaks never get
/// through (no header injection).
pub fn header_value(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.is_ascii() && !one_line.contains("=?") {
        return one_line;
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in one_line.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// `Date:` of an RFC 5322 message, from seconds since the epoch (UTC).
pub fn rfc5322_date(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil date of a day count (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day} {} {year} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_are_stuffed_and_the_end_is_a_line() {
        assert_eq!(dot_stuff(".a\r\nb\r\n..c"), "..a\r\nb\r\n...c\r\n");
        assert_eq!(dot_stuff("x\r\n.\r\n"), "x\r\n..\r\n");
    }

    #[test]
    fn quoted_printable_keeps_lines_short_and_text_exact() {
        let qp = quoted_printable("caf\u{e9} = ok \n.dot\n");
        assert_eq!(qp, "caf=C3=A9 =3D ok=20\r\n.dot\r\n");
        let long = quoted_printable(&"a".repeat(200));
        assert!(long.split("\r\n").all(|l| l.len() <= 76), "{long}");
    }

    #[test]
    fn headers_cannot_be_injected_and_utf8_is_encoded() {
        assert_eq!(header_value("Re: hi\r\nBcc: x@y"), "Re: hi  Bcc: x@y");
        assert_eq!(header_value("caf\u{e9}"), "=?UTF-8?B?Y2Fmw6k=?=");
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_031_699_305),
            "Tue, 10 Sep 2002 23:08:25 +0000"
        );
    }
}
