//! Schedule specifications and next-fire computation.
//!
//! A schedule is written as text, the way people type it into an API body:
//!
//! - a cron expression, five fields (minute precision) or six (seconds first),
//!   with the usual extensions (`L`, `#`, `W`, names) and the `@hourly`,
//!   `@daily`, `@weekly`, `@monthly`, `@yearly` aliases; it is evaluated in the
//!   job's IANA time zone, so `0 9 * * *` in `Europe/Paris` stays at 9:00 local
//!   time across daylight-saving changes;
//! - an interval: `every 30s`, `every 5m`, `every 1h30m`, `every 2 days`
//!   (also `@every 5m`); occurrences are `origin + k × period` for k ≥ 1, where
//!   the origin is when the job was created, so the phase survives restarts;
//! - a one-shot time: `at 2026-01-01T09:00:00Z` (also `@at …`, or a bare
//!   RFC 3339 timestamp).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};

/// The shortest interval accepted: shorter ones would busy the daemon.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Why a schedule text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The text is empty.
    #[error("schedule is empty")]
    Empty,
    /// A cron expression did not parse.
    #[error("invalid cron expression `{expr}`: {message}")]
    Cron {
        /// The expression.
        expr: String,
        /// What the parser said.
        message: String,
    },
    /// An interval did not parse or is out of range.
    #[error("invalid interval `{text}`: {message}")]
    Interval {
        /// The interval text.
        text: String,
        /// What was wrong.
        message: String,
    },
    /// A one-shot time is not RFC 3339.
    #[error("invalid time `{0}`: expected RFC 3339, like 2026-01-01T09:00:00Z")]
    At(String),
    /// The time zone is not an IANA name.
    #[error("unknown time zone `{0}`: expected an IANA name like UTC or Europe/Paris")]
    TimeZone(String),
}

/// A parsed schedule.
#[derive(Clone)]
pub enum Schedule {
    /// A cron expression evaluated in a time zone.
    Cron {
        /// The expression as given.
        expr: String,
        /// The parsed pattern.
        cron: Box<croner::Cron>,
        /// The zone it is evaluated in.
        tz: Tz,
    },
    /// Every `period`, counted from the job's origin.
    Every {
        /// The interval.
        period: Duration,
    },
    /// Once, at this instant.
    At(DateTime<Utc>),
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({self})")
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron { expr, tz, .. } => write!(f, "{expr} ({tz})"),
            Schedule::Every { period } => write!(f, "every {}", format_duration(*period)),
            Schedule::At(t) => write!(f, "at {}", t.to_rfc3339()),
        }
    }
}

/// Parses an IANA time zone name; `None` or empty means UTC.
pub fn parse_tz(name: Option<&str>) -> Result<Tz, SpecError> {
    match name.map(str::trim) {
        None | Some("") => Ok(Tz::UTC),
        Some(n) => n.parse().map_err(|_| SpecError::TimeZone(n.to_string())),
    }
}

impl Schedule {
    /// Parses schedule text; `tz` applies to cron expressions (UTC when `None`).
    pub fn parse(text: &str, tz: Option<&str>) -> Result<Self, SpecError> {
        let tz = parse_tz(tz)?;
        let text = text.trim();
        if text.is_empty() {
            return Err(SpecError::Empty);
        }
        let lower = text.to_ascii_lowercase();
        if let Some(rest) = strip_word(&lower, "every").or_else(|| strip_word(&lower, "@every")) {
            return Ok(Schedule::Every {
                period: parse_interval(rest).map_err(|message| SpecError::Interval {
                    text: text.to_string(),
                    message,
                })?,
            });
        }
        let at_rest = strip_word(text, "at")
            .or_else(|| strip_word(text, "@at"))
            .or_else(|| strip_word(text, "AT"));
        if let Some(rest) = at_rest {
            return DateTime::parse_from_rfc3339(rest.trim())
                .map(|t| Schedule::At(t.with_timezone(&Utc)))
                .map_err(|_| SpecError::At(rest.trim().to_string()));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(Schedule::At(t.with_timezone(&Utc)));
        }
        let pattern = expand_alias(text);
        check_cron_fields(pattern).map_err(|message| SpecError::Cron {
            expr: text.to_string(),
            message,
        })?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|e| SpecError::Cron {
                expr: text.to_string(),
                message: e.to_string(),
            })?;
        Ok(Schedule::Cron {
            expr: text.to_string(),
            cron: Box::new(cron),
            tz,
        })
    }

    /// The first occurrence strictly after `after`, or `None` when there is
    /// none (a one-shot time already passed, or a cron pattern that never
    /// matches). `origin` anchors intervals.
    pub fn next_after(&self, after: DateTime<Utc>, origin: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, tz, .. } => cron
                .find_next_occurrence(&after.with_timezone(tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Schedule::Every { period } => {
                let period = TimeDelta::from_std(*period).ok()?;
                let period_ns = period.num_nanoseconds()?.max(1) as i128;
                if after < origin {
                    return origin.checked_add_signed(period);
                }
                let elapsed = (after - origin).num_nanoseconds().map(i128::from)?;
                let k = elapsed / period_ns + 1;
                let offset = i64::try_from(k * period_ns).ok()?;
                origin.checked_add_signed(TimeDelta::nanoseconds(offset))
            }
            Schedule::At(t) => (*t > after).then_some(*t),
        }
    }

    /// True for schedules that fire at most once.
    pub fn is_one_shot(&self) -> bool {
        matches!(self, Schedule::At(_))
    }
}

/// The common aliases beyond those the cron parser knows (`@hourly`,
/// `@daily`, `@weekly`, `@monthly`, `@yearly`, `@annually`).
fn expand_alias(text: &str) -> &str {
    match text.to_ascii_lowercase().as_str() {
        "@minutely" => "* * * * *",
        "@midnight" => "0 0 * * *",
        _ => text,
    }
}

/// The fields of a cron expression, in order, with their ranges: five, or
/// six with seconds first.
const FIELDS_5: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

/// Checks the count of fields and every number in them against its range,
/// so a mistake is named (`minute 61 out of range 0-59`) rather than left to
/// the parser's message. Names (`JAN`, `MON`) and `L`, `W`, `#`, `?` are
/// left to the parser.
fn check_cron_fields(pattern: &str) -> Result<(), String> {
    if pattern.starts_with('@') {
        return Ok(());
    }
    let fields: Vec<&str> = pattern.split_whitespace().collect();
    let named: Vec<(&str, u32, u32)> = match fields.len() {
        5 => FIELDS_5.to_vec(),
        6 => std::iter::once(("second", 0, 59)).chain(FIELDS_5).collect(),
        n => {
            return Err(format!(
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week), \
                 or 6 with seconds first; this one has {n}"
            ));
        }
    };
    for (field, (name, lo, hi)) in fields.iter().zip(named) {
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            if let Some(step) = step {
                match step.parse::<u32>() {
                    Ok(0) => return Err(format!("{name} step 0: a step is at least 1")),
                    Ok(_) => {}
                    Err(_) => return Err(format!("{name} step `{step}` is not a number")),
                }
            }
            for bound in range.split('-') {
                if let Ok(value) = bound.parse::<u32>()
                    && !(lo..=hi).contains(&value)
                {
                    return Err(format!("{name} {value} out of range {lo}-{hi}"));
                }
            }
        }
    }
    Ok(())
}

/// `"every 5m"` → `Some(" 5m")` when `text` starts with `word` followed by whitespace.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(word)?;
    rest.starts_with(char::is_whitespace).then_some(rest)
}

/// Parses `5m`, `1h30m`, `90 s`, `2 days`.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("expected a number and a unit, like 5m".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("number too large at `{rest}`"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let secs = match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "" => return Err("missing unit (s, m, h or d)".into()),
            other => return Err(format!("unknown unit `{other}` (use s, m, h or d)")),
        };
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "interval too large".to_string())?;
        rest = rest[unit_len..].trim_start();
    }
    let period = Duration::from_secs(total);
    if period < MIN_INTERVAL {
        return Err(format!(
            "interval must be at least {} s",
            MIN_INTERVAL.as_secs()
        ));
    }
    // A century is plenty and keeps nanosecond arithmetic in range.
    if total > 100 * 365 * 86_400 {
        return Err("interval too large".into());
    }
    Ok(period)
}

fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_and_six_field_cron_parse() {
        let origin = utc("2026-01-01T00:00:00Z");
        let five = Schedule::parse("*/15 * * * *", None).unwrap();
        assert_eq!(
            five.next_after(utc("2026-01-01T10:07:30Z"), origin),
            Some(utc("2026-01-01T10:15:00Z"))
        );
        let six = Schedule::parse("*/10 * * * * *", None).unwrap();
        assert_eq!(
            six.next_after(utc("2026-01-01T10:07:31Z"), origin),
            Some(utc("2026-01-01T10:07:40Z"))
        );
        let alias = Schedule::parse("@daily", None).unwrap();
        assert_eq!(
            alias.next_after(utc("2026-01-01T10:07:31Z"), origin),
            Some(utc("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn cron_follows_its_time_zone_across_dst() {
        let origin = utc("2026-01-01T00:00:00Z");
        let s = Schedule::parse("0 9 * * *", Some("Europe/Paris")).unwrap();
        // Winter: UTC+1.
        assert_eq!(
            s.next_after(utc("2026-03-27T12:00:00Z"), origin),
            Some(utc("2026-03-28T08:00:00Z"))
        );
        // 29 March 2026 is the switch to summer time: UTC+2 from then on.
        assert_eq!(
            s.next_after(utc("2026-03-28T12:00:00Z"), origin),
            Some(utc("2026-03-29T07:00:00Z"))
        );
    }

    #[test]
    fn a_local_time_that_does_not_exist_moves_on() {
        // 02:30 does not exist in Paris on 29 March 2026 (02:00 -> 03:00).
        let origin = utc("2026-01-01T00:00:00Z");
        let s = Schedule::parse("30 2 * * *", Some("Europe/Paris")).unwrap();
        // It runs at the first valid local time after the gap, 03:00 (01:00 UTC).
        assert_eq!(
            s.next_after(utc("2026-03-28T12:00:00Z"), origin),
            Some(utc("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn intervals_keep_their_phase_from_the_origin() {
        let origin = utc("2026-01-01T00:00:07Z");
        let s = Schedule::parse("every 5m", None).unwrap();
        assert_eq!(
            s.next_after(utc("2026-01-01T00:00:00Z"), origin),
            Some(utc("2026-01-01T00:05:07Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-01-01T00:05:07Z"), origin),
            Some(utc("2026-01-01T00:10:07Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-01-01T01:00:00Z"), origin),
            Some(utc("2026-01-01T01:00:07Z"))
        );
        for (text, secs) in [
            ("every 30s", 30),
            ("@every 1h30m", 5400),
            ("every 2 days", 172_800),
            ("EVERY 90 s", 90),
        ] {
            match Schedule::parse(text, None).unwrap() {
                Schedule::Every { period } => assert_eq!(period.as_secs(), secs, "{text}"),
                other => panic!("{text} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn one_shot_fires_once() {
        let origin = utc("2026-01-01T00:00:00Z");
        let s = Schedule::parse("at 2026-06-01T12:00:00+02:00", None).unwrap();
        assert!(s.is_one_shot());
        assert_eq!(
            s.next_after(origin, origin),
            Some(utc("2026-06-01T10:00:00Z"))
        );
        assert_eq!(s.next_after(utc("2026-06-01T10:00:00Z"), origin), None);
        assert!(matches!(
            Schedule::parse("2026-06-01T10:00:00Z", None).unwrap(),
            Schedule::At(_)
        ));
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        assert_eq!(Schedule::parse("  ", None).unwrap_err(), SpecError::Empty);
        assert!(matches!(
            Schedule::parse("61 * * * *", None),
            Err(SpecError::Cron { .. })
        ));
        assert!(matches!(
            Schedule::parse("every 5 fortnights", None),
            Err(SpecError::Interval { .. })
        ));
        assert!(matches!(
            Schedule::parse("every 0s", None),
            Err(SpecError::Interval { .. })
        ));
        assert!(matches!(
            Schedule::parse("every", None),
            Err(SpecError::Cron { .. })
        ));
        assert!(matches!(
            Schedule::parse("at tomorrow", None),
            Err(SpecError::At(_))
        ));
        assert_eq!(
            Schedule::parse("* * * * *", Some("Mars/Olympus")).unwrap_err(),
            SpecError::TimeZone("Mars/Olympus".into())
        );
    }

    #[test]
    fn a_pattern_that_never_matches_has_no_next() {
        let s = Schedule::parse("0 0 30 2 *", None).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(s.next_after(t, t), None);
    }

    #[test]
    fn cron_mistakes_name_the_field_and_aliases_are_known() {
        let message = |text: &str| Schedule::parse(text, None).err().unwrap().to_string();
        assert!(message("61 * * * *").contains("minute 61 out of range 0-59"));
        assert!(message("0 25 * * *").contains("hour 25 out of range 0-23"));
        assert!(message("0 0 32 * *").contains("day of month 32 out of range 1-31"));
        assert!(message("0 0 * 13 *").contains("month 13 out of range 1-12"));
        assert!(message("0 0 * * 8").contains("day of week 8 out of range 0-7"));
        assert!(message("61 0 0 * * *").contains("second 61 out of range 0-59"));
        assert!(message("*/0 * * * *").contains("minute step 0"));
        assert!(message("* * *").contains("has 3"));
        for alias in [
            "@minutely",
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
        ] {
            assert!(Schedule::parse(alias, None).is_ok(), "{alias}");
        }
        assert!(Schedule::parse("0 9 * * MON-FRI", None).is_ok());
        assert!(Schedule::parse("0 0 L * *", None).is_ok());
    }
}
