//! XMPP vocabulary: namespaces, JIDs, error conditions and timestamps.

use crate::xml::Element;

pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_PING: &str = "urn:xmpp:ping";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
pub const NS_REACTIONS: &str = "urn:xmpp:reactions:0";
pub const NS_SID: &str = "urn:xmpp:sid:0";
pub const NS_REPLY: &str = "urn:xmpp:reply:0";
pub const NS_CORRECT: &str = "urn:xmpp:message-correct:0";
pub const NS_DELAY: &str = "urn:xmpp:delay";

/// The longest JID part RFC 7622 allows, in bytes.
const MAX_PART: usize = 1023;

/// A JID split into its parts: `local@domain/resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jid {
    pub local: Option<String>,
    pub domain: String,
    pub resource: Option<String>,
    /// `local@domain` (or `domain`).
    pub bare: String,
}

impl Jid {
    /// Parses a JID; `None` when it is empty, too long, or has spaces,
    /// control characters or characters JIDs forbid in its local part or
    /// domain.
    pub fn parse(text: &str) -> Option<Jid> {
        let (bare, resource) = match text.split_once('/') {
            Some((bare, resource)) => (bare, Some(resource)),
            None => (text, None),
        };
        let (local, domain) = match bare.split_once('@') {
            Some((local, domain)) => (Some(local), domain),
            None => (None, bare),
        };
        let bad = |part: &str, forbidden: &str| {
            part.is_empty()
                || part.len() > MAX_PART
                || part
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || forbidden.contains(c))
        };
        if bad(domain, "@/\"&'<>:") || local.is_some_and(|l| bad(l, "@/\"&'<>:")) {
            return None;
        }
        if resource
            .is_some_and(|r| r.is_empty() || r.len() > MAX_PART || r.chars().any(char::is_control))
        {
            return None;
        }
        Some(Jid {
            local: local.map(str::to_string),
            domain: domain.to_string(),
            resource: resource.map(str::to_string),
            bare: bare.to_string(),
        })
    }

    /// The JID with its resource, if any.
    pub fn full(&self) -> String {
        match &self.resource {
            Some(r) => format!("{}/{r}", self.bare),
            None => self.bare.clone(),
        }
    }
}

/// The defined condition of a stanza or stream error, with its text.
pub fn error_condition(s: &Element) -> String {
    let error = if s.local() == "error" {
        Some(s)
    } else {
        s.child("error", None)
    };
    let Some(error) = error else {
        return "no error condition".into();
    };
    let condition = error
        .children
        .iter()
        .find(|c| c.local() != "text")
        .map(|c| c.local().to_string())
        .unwrap_or_else(|| "undefined-condition".into());
    let text = error
        .children
        .iter()
        .find(|c| {
            c.local() == "text" && matches!(c.attr("xmlns"), Some(NS_STANZAS) | Some(NS_STREAMS))
        })
        .map(|t| format!(" ({})", t.text.trim()))
        .unwrap_or_default();
    format!("{condition}{text}")
}

/// Milliseconds since the epoch of an XEP-0082 timestamp in UTC,
/// `YYYY-MM-DDThh:mm:ss[.fff]Z`.
pub fn parse_stamp_ms(stamp: &str) -> Option<u64> {
    let stamp = stamp.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, f),
        None => (time, ""),
    };
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    // Days since the epoch of a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000) + millis;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_parse_and_hostile_ones_are_refused() {
        let j = Jid::parse("room@conference.localhost/Alice Smith").unwrap();
        assert_eq!(j.bare, "room@conference.localhost");
        assert_eq!(j.resource.as_deref(), Some("Alice Smith"));
        assert_eq!(j.full(), "room@conference.localhost/Alice Smith");
        assert_eq!(Jid::parse("localhost").unwrap().local, None);
        for bad in ["", "a b@x", "a@", "@x", "a@x/", "a<@x", "a@x\u{0}", "x'y@z"] {
            assert_eq!(Jid::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Jid::parse(&format!("{}@x", "a".repeat(2000))), None);
    }

    #[test]
    fn timestamps_are_read_in_utc() {
        assert_eq!(parse_stamp_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_stamp_ms("2002-09-10T23:08:25.5Z"),
            Some(1_031_699_305_500)
        );
        assert_eq!(parse_stamp_ms("2002-09-10T23:08:25+02:00"), None);
        assert_eq!(parse_stamp_ms("nonsense"), None);
    }
}
