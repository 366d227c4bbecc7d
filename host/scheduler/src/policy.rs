//! What happens to runs that were missed.
//!
//! A run is *missed* when it could not start within the grace period of its
//! scheduled time: the daemon was down, the job was being reloaded, or the
//! machine was suspended. Each job chooses one of three policies:
//!
//! - [`MissedPolicy::Skip`]: missed runs are dropped; the job continues at its
//!   next regular time.
//! - [`MissedPolicy::RunOnce`] (the default): however many runs were missed,
//!   the job runs once as soon as possible, then continues at its next regular
//!   time. Like anacron: a daily digest missed for three days is sent once.
//! - [`MissedPolicy::RunAll`]: every missed run is performed, oldest first, up
//!   to [`RUN_ALL_LIMIT`]; older ones beyond the limit are dropped.
//!
//! The same rule applies at start-up (runs missed while the daemon was down)
//! and while running (a suspended machine, a clock jump): one function,
//! [`plan`], decides both.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::spec::Schedule;

/// The most missed runs [`MissedPolicy::RunAll`] performs at once.
pub const RUN_ALL_LIMIT: usize = 100;

/// How many missed occurrences are examined one by one before jumping ahead:
/// a one-second schedule missed for a month is not walked a million times.
const SCAN_LIMIT: usize = 10_000;

/// The policy for runs missed while the daemon was down or behind.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Drop missed runs.
    Skip,
    /// Run once for all the missed runs.
    #[default]
    RunOnce,
    /// Run each missed run (at most [`RUN_ALL_LIMIT`]).
    RunAll,
}

impl MissedPolicy {
    /// The policy's name as written in the API and the config.
    pub fn as_str(&self) -> &'static str {
        match self {
            MissedPolicy::Skip => "skip",
            MissedPolicy::RunOnce => "run_once",
            MissedPolicy::RunAll => "run_all",
        }
    }
}

/// What to do with a job whose deadline has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Scheduled times to run now, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// Occurrences dropped by the policy (a lower bound when very many were missed).
    pub skipped: u64,
    /// The next deadline after these, if the schedule has one.
    pub next: Option<DateTime<Utc>>,
}

/// Decides what runs when a job's `pending` occurrence is due at `now`.
///
/// Every occurrence from `pending` up to `now` is due; those within `grace`
/// of `now` are on time, older ones were missed and go by `policy`.
pub fn plan(
    schedule: &Schedule,
    origin: DateTime<Utc>,
    pending: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: MissedPolicy,
    grace: Duration,
) -> Plan {
    let mut due = Vec::new();
    let mut cursor = Some(pending);
    let mut overflow = false;
    while let Some(t) = cursor {
        if t > now {
            break;
        }
        if due.len() == SCAN_LIMIT {
            overflow = true;
            break;
        }
        due.push(t);
        cursor = schedule.next_after(t, origin);
    }
    let next = if overflow {
        schedule.next_after(now, origin)
    } else {
        cursor
    };
    let grace = TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX);
    let on_time = |t: &DateTime<Utc>| now - *t <= grace;
    let fire: Vec<DateTime<Utc>> = match policy {
        MissedPolicy::RunAll => {
            let start = due.len().saturating_sub(RUN_ALL_LIMIT);
            due[start..].to_vec()
        }
        MissedPolicy::RunOnce => due.last().copied().into_iter().collect(),
        MissedPolicy::Skip => due.last().copied().filter(on_time).into_iter().collect(),
    };
    let skipped = (due.len() - fire.len()) as u64;
    Plan {
        fire,
        skipped,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn an_on_time_run_fires_under_every_policy() {
        let s = Schedule::parse("0 * * * *", None).unwrap();
        let origin = utc("2026-01-01T00:00:00Z");
        for policy in [
            MissedPolicy::Skip,
            MissedPolicy::RunOnce,
            MissedPolicy::RunAll,
        ] {
            let p = plan(
                &s,
                origin,
                utc("2026-01-01T10:00:00Z"),
                utc("2026-01-01T10:00:00.003Z"),
                policy,
                GRACE,
            );
            assert_eq!(p.fire, vec![utc("2026-01-01T10:00:00Z")], "{policy:?}");
            assert_eq!(p.skipped, 0);
            assert_eq!(p.next, Some(utc("2026-01-01T11:00:00Z")));
        }
    }

    #[test]
    fn missed_runs_follow_the_policy() {
        // Down from before 07:00 to 10:20: 07, 08, 09 and 10 o'clock were missed.
        let s = Schedule::parse("0 * * * *", None).unwrap();
        let origin = utc("2026-01-01T00:00:00Z");
        let pending = utc("2026-01-01T07:00:00Z");
        let now = utc("2026-01-01T10:20:00Z");
        let next = Some(utc("2026-01-01T11:00:00Z"));

        let skip = plan(&s, origin, pending, now, MissedPolicy::Skip, GRACE);
        assert!(skip.fire.is_empty());
        assert_eq!(skip.skipped, 4);
        assert_eq!(skip.next, next);

        let once = plan(&s, origin, pending, now, MissedPolicy::RunOnce, GRACE);
        assert_eq!(once.fire, vec![utc("2026-01-01T10:00:00Z")]);
        assert_eq!(once.skipped, 3);
        assert_eq!(once.next, next);

        let all = plan(&s, origin, pending, now, MissedPolicy::RunAll, GRACE);
        assert_eq!(all.fire.len(), 4);
        assert_eq!(all.fire[0], pending);
        assert_eq!(all.skipped, 0);
        assert_eq!(all.next, next);
    }

    #[test]
    fn run_all_is_bounded_and_long_outages_do_not_walk_forever() {
        let s = Schedule::parse("every 1s", None).unwrap();
        let origin = utc("2026-01-01T00:00:00Z");
        let now = utc("2026-02-01T00:00:00.5Z");
        let all = plan(
            &s,
            origin,
            utc("2026-01-01T00:00:01Z"),
            now,
            MissedPolicy::RunAll,
            GRACE,
        );
        assert_eq!(all.fire.len(), RUN_ALL_LIMIT);
        assert!(all.skipped > 0);
        assert_eq!(all.next, Some(utc("2026-02-01T00:00:01Z")));
    }

    #[test]
    fn a_one_shot_has_no_next() {
        let s = Schedule::parse("at 2026-01-01T10:00:00Z", None).unwrap();
        let t = utc("2026-01-01T10:00:00Z");
        let p = plan(
            &s,
            t,
            t,
            utc("2026-01-01T12:00:00Z"),
            MissedPolicy::Skip,
            GRACE,
        );
        assert_eq!((p.fire.len(), p.skipped, p.next), (0, 1, None));
    }
}
