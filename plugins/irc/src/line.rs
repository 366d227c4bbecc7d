//! The few IRC lines the channel needs (RFC 1459/2812 framing, IRCv3
//! message tags): parsing what the server sends and shaping what is sent,
//! so that text from a model can never become a second command.

/// One line from the server: `@tags :prefix COMMAND params... :trailing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub tags: Vec<(String, String)>,
    pub prefix: Option<String>,
    pub command: String,
    pub params: Vec<String>,
}

impl Line {
    /// Parses one line without its CR LF; `None` for an empty line.
    pub fn parse(text: &str) -> Option<Self> {
        let mut rest = text.trim_start_matches(' ');
        let mut tags = Vec::new();
        if let Some(after) = rest.strip_prefix('@') {
            let (raw, tail) = after.split_once(' ')?;
            for tag in raw.split(';').filter(|t| !t.is_empty()) {
                let (key, value) = tag.split_once('=').unwrap_or((tag, ""));
                tags.push((key.to_string(), unescape_tag(value)));
            }
            rest = tail.trim_start_matches(' ');
        }
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (p, tail) = after.split_once(' ')?;
            prefix = Some(p.to_string());
            rest = tail.trim_start_matches(' ');
        }
        let (command, mut rest) = match rest.split_once(' ') {
            Some((c, tail)) => (c, tail),
            None => (rest, ""),
        };
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_string());
                break;
            }
            match rest.split_once(' ') {
                Some((p, tail)) => {
                    params.push(p.to_string());
                    rest = tail;
                }
                None => {
                    params.push(rest.to_string());
                    break;
                }
            }
        }
        Some(Self {
            tags,
            prefix,
            command: command.to_ascii_uppercase(),
            params,
        })
    }

    /// The nick of the prefix `nick!user@host`.
    pub fn nick(&self) -> Option<&str> {
        let prefix = self.prefix.as_deref()?;
        Some(prefix.split(['!', '@']).next().unwrap_or(prefix))
    }

    fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The server's id of the message (`msgid` tag), if it sends one.
    pub fn message_id(&self) -> Option<String> {
        self.tag("msgid")
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// The `time` tag (`2026-01-02T03:04:05.678Z`) in ms since the epoch.
    pub fn server_time_ms(&self) -> Option<u64> {
        parse_time(self.tag("time")?)
    }
}

fn unescape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS(.mmm)Z` to ms since the Unix epoch.
fn parse_time(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, millis) = match time.split_once('.') {
        Some((hms, frac)) => (hms, frac.get(..3)?.parse::<i64>().ok()?),
        None => (time, 0),
    };
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + h * 3600 + min * 60 + s) * 1000) + millis;
    u64::try_from(ms).ok()
}

/// A nick: letters, digits and `[]\`_^{|}-`, not starting with a digit or `-`.
pub fn valid_nick(nick: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || "[]\\`_^{|}-".contains(c);
    !nick.is_empty()
        && nick.len() <= 32
        && nick.chars().all(ok)
        && !nick.starts_with(|c: char| c.is_ascii_digit() || c == '-')
}

/// A channel name: `#` or `&`, then no space, comma, BEL or line break.
pub fn valid_channel(name: &str) -> bool {
    (name.starts_with('#') || name.starts_with('&'))
        && name.len() > 1
        && name.len() <= 50
        && !name.contains([' ', ',', '\u{7}', '\r', '\n', '\0'])
}

/// Text that fits in one line: line breaks and NULs become spaces.
pub fn one_line(text: &str) -> String {
    text.replace(['\r', '\n', '\0'], " ")
}

/// Text usable as a middle parameter: `one_line`, without spaces.
pub fn one_param(text: &str) -> String {
    one_line(text).replace(' ', "")
}

/// Bytes of text one `PRIVMSG target :text` may carry: 512 minus CR LF,
/// the command, and the `:nick!user@host ` prefix the server adds when it
/// relays the line (counted generously).
pub fn text_budget(target: &str) -> usize {
    const PREFIX_ALLOWANCE: usize = 100;
    510usize
        .saturating_sub(PREFIX_ALLOWANCE)
        .saturating_sub("PRIVMSG  :".len() + target.len())
        .max(32)
}

/// Splits a reply into lines that each fit in `budget` bytes: one per line
/// of the text (empty lines skipped), long lines cut at the last space
/// before the budget (or at a character boundary if there is none).
pub fn split_text(text: &str, budget: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.split(['\n', '\r']).map(|l| l.replace('\0', " ")) {
        let mut rest = line.trim_end();
        while !rest.is_empty() {
            if rest.len() <= budget {
                out.push(rest.to_string());
                break;
            }
            let mut cut = budget;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if let Some(space) = rest[..cut].rfind(' ').filter(|s| *s > budget / 2) {
                cut = space;
            }
            out.push(rest[..cut].to_string());
            rest = rest[cut..].trim_start();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_privmsg_with_tags() {
        let line = Line::parse(
            "@time=2026-12-05T20:45:23.123Z;msgid=abc\\s1 :alice!a@host PRIVMSG #talon :hello: there",
        )
        .unwrap();
        assert_eq!(line.command, "PRIVMSG");
        assert_eq!(line.nick(), Some("alice"));
        assert_eq!(line.params, vec!["#talon", "hello: there"]);
        assert_eq!(line.message_id().as_deref(), Some("abc 1"));
        assert_eq!(line.server_time_ms(), Some(1_796_503_523_123));
    }

    #[test]
    fn parses_ping_and_numerics() {
        let ping = Line::parse("PING :irc.example.org").unwrap();
        assert_eq!(ping.command, "PING");
        assert_eq!(ping.params, vec!["irc.example.org"]);
        let names = Line::parse(":srv 366 bot #talon :End of NAMES list").unwrap();
        assert_eq!(names.params[1], "#talon");
        assert_eq!(Line::parse(""), None);
        assert_eq!(Line::parse(":only-a-prefix"), None);
        assert!(Line::parse("@broken").is_none());
    }

    #[test]
    fn splitting_keeps_lines_within_the_budget_and_never_breaks_a_char() {
        let text = format!("first line\n\n{}\nlast", "héllo wörld ".repeat(80));
        let parts = split_text(&text, 100);
        assert_eq!(parts.first().map(String::as_str), Some("first line"));
        assert_eq!(parts.last().map(String::as_str), Some("last"));
        assert!(parts.iter().all(|p| p.len() <= 100 && !p.contains('\n')));
        let joined: String = parts[1..parts.len() - 1].join(" ");
        assert_eq!(joined, "héllo wörld ".repeat(80).trim_end());
        // A word longer than the budget is cut at a char boundary.
        let parts = split_text(&"é".repeat(300), 101);
        assert!(parts.iter().all(|p| p.len() <= 101));
        assert_eq!(parts.concat(), "é".repeat(300));
    }

    #[test]
    fn text_cannot_inject_commands() {
        let parts = split_text("hi\r\nQUIT :bye", 400);
        assert_eq!(parts, vec!["hi", "QUIT :bye"]);
        // Each part is sent as the trailing parameter of its own PRIVMSG.
        assert_eq!(one_param("pa ss\r\nword"), "pa ssword".replace(' ', ""));
        assert!(!valid_channel("#a,#b"));
        assert!(!valid_channel("#a b"));
        assert!(valid_channel("#talon"));
        assert!(valid_nick("talon_bot"));
        assert!(!valid_nick("9lives"));
        assert!(!valid_nick("a b"));
    }
}
