//! An agent's log: what happened to and in it, read back from what is already
//! persisted rather than from a store of its own.
//!
//! Two sources are merged, newest first:
//! - its turn records (`turns.v1`): each becomes a `turn_started` line, one
//!   `tool_call` line per tool call, and a line for how it ended (`turn_completed`,
//!   `turn_failed` with the error, ...) with model, tokens, cost and duration;
//! - its audit entries: spawned, started, stopped, updated, mode and budget
//!   changes, killed, and the triggers, cron jobs and tasks aimed at it.
//!
//! Nothing is lost across a restart, and no line is written twice: the log is a
//! view of records the kernel keeps anyway. Tool calls carry no start time of
//! their own in a turn record, so their lines carry the time the turn ended.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Conversations;
use super::records::{TurnRecord, TurnStatus};
use super::sessions;
use crate::KernelError;
use crate::store::{
    self,
    audit::{self, AuditEntry},
};

/// Largest page of log lines.
pub const MAX_LOG_LINES: usize = 1000;

/// Page size when none is asked for.
pub const DEFAULT_LOG_LINES: usize = 100;

/// How serious a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Things going as they should.
    Info,
    /// A turn that ended early (stopped, interrupted, out of iterations or
    /// budget), or an action that was denied.
    Warn,
    /// A failed turn, a failed tool call, an action that failed.
    Error,
}

/// Where a line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// A turn record.
    Turn,
    /// The audit chain.
    Audit,
}

/// One line of an agent's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// How serious it is.
    pub level: LogLevel,
    /// What happened, in snake case: `turn_started`, `tool_call`, `agent_stopped`...
    pub action: String,
    /// A human-readable account.
    pub detail: String,
    /// `ok`, `denied`, or what went wrong.
    pub outcome: String,
    /// Where the line comes from.
    pub source: LogSource,
    /// The audit entry's position in the chain, for audit lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The turn, for turn lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<Uuid>,
    /// The session the turn ran in, for turn lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
}

/// Which lines to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelFilter {
    /// Lines of exactly this level.
    Level(LogLevel),
    /// Lines whose outcome is `ok` (the reference's `level=ok`).
    Ok,
}

impl std::str::FromStr for LevelFilter {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Self::Level(LogLevel::Info)),
            "warn" | "warning" => Ok(Self::Level(LogLevel::Warn)),
            "error" => Ok(Self::Level(LogLevel::Error)),
            "ok" => Ok(Self::Ok),
            _ => Err(KernelError::Invalid(format!(
                "unknown level `{s}`: use info, warn, error or ok"
            ))),
        }
    }
}

impl LevelFilter {
    fn keeps(self, line: &LogLine) -> bool {
        match self {
            Self::Level(level) => line.level == level,
            Self::Ok => line.outcome == "ok",
        }
    }
}

/// A page of an agent's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogPage {
    /// Lines that match the filter, over all pages.
    pub total: usize,
    /// This page's lines, newest first.
    pub lines: Vec<LogLine>,
}

/// The lines one turn record stands for, oldest first.
fn turn_lines(turn: &TurnRecord) -> Vec<LogLine> {
    let ended = turn.started_at + Duration::milliseconds(turn.duration_ms as i64);
    let model = format!("{}/{}", turn.provider, turn.model);
    let line = |timestamp, level, action: &str, detail: String, outcome: String| LogLine {
        timestamp,
        level,
        action: action.to_string(),
        detail,
        outcome,
        source: LogSource::Turn,
        seq: None,
        turn_id: Some(turn.id),
        session_id: Some(turn.session_id),
    };
    let (level, action, outcome) = match turn.status {
        TurnStatus::Completed => (LogLevel::Info, "turn_completed", "ok".to_string()),
        TurnStatus::Failed => (
            LogLevel::Error,
            "turn_failed",
            turn.error.clone().unwrap_or_else(|| "failed".into()),
        ),
        TurnStatus::Interrupted => (LogLevel::Warn, "turn_interrupted", "interrupted".into()),
        TurnStatus::Stopped => (LogLevel::Warn, "turn_stopped", "stopped".into()),
        TurnStatus::MaxIterations => (
            LogLevel::Warn,
            "turn_max_iterations",
            "iteration limit reached".into(),
        ),
        TurnStatus::BudgetExceeded => (
            LogLevel::Warn,
            "turn_budget_exceeded",
            "budget exceeded".into(),
        ),
        // Not a turn: one line for the summary the model wrote.
        TurnStatus::Compaction => {
            return vec![line(
                ended,
                LogLevel::Info,
                "session_compacted",
                format!(
                    "session summarized by {model}: {} input + {} output tokens, {} ms",
                    turn.input_tokens, turn.output_tokens, turn.duration_ms
                ),
                "ok".into(),
            )];
        }
    };
    let mut out = Vec::with_capacity(turn.tool_calls.len() + 2);
    out.push(line(
        turn.started_at,
        LogLevel::Info,
        "turn_started",
        format!("turn started with {model}"),
        "ok".into(),
    ));
    for call in &turn.tool_calls {
        let ms = call.duration_us as f64 / 1000.0;
        let (level, outcome, verb) = if call.is_error {
            (LogLevel::Error, "error".to_string(), "failed")
        } else {
            (LogLevel::Info, "ok".to_string(), "succeeded")
        };
        out.push(line(
            ended,
            level,
            "tool_call",
            format!("tool `{}` {verb} in {ms:.1} ms", call.tool),
            outcome,
        ));
    }
    out.push(line(
        ended,
        level,
        action,
        format!(
            "{model}: {} iteration(s), {} input + {} output tokens, {} tool call(s), ${:.6}, {} ms",
            turn.iterations,
            turn.input_tokens,
            turn.output_tokens,
            turn.tool_calls.len(),
            turn.cost_usd,
            turn.duration_ms
        ),
        outcome,
    ));
    out
}

fn audit_line(entry: AuditEntry) -> LogLine {
    let level = match entry.outcome.as_str() {
        "ok" => LogLevel::Info,
        "denied" => LogLevel::Warn,
        _ => LogLevel::Error,
    };
    LogLine {
        timestamp: entry.timestamp,
        level,
        action: entry.event_type,
        detail: entry.details,
        outcome: entry.outcome,
        source: LogSource::Audit,
        seq: Some(entry.id),
        turn_id: None,
        session_id: None,
    }
}

/// Merges turn records and audit entries into one log, newest first, keeps the
/// lines `level` admits, and cuts the page `[offset, offset + limit)`.
pub fn page(
    turns: &[TurnRecord],
    audit: Vec<AuditEntry>,
    level: Option<LevelFilter>,
    offset: usize,
    limit: usize,
) -> LogPage {
    // Lines of one turn share timestamps (tool calls and the end), so each
    // line keeps its place within its source as a tie-break.
    let mut keyed: Vec<(DateTime<Utc>, usize, LogLine)> = Vec::new();
    for turn in turns {
        for (i, line) in turn_lines(turn).into_iter().enumerate() {
            keyed.push((line.timestamp, i, line));
        }
    }
    for entry in audit {
        let line = audit_line(entry);
        keyed.push((line.timestamp, 0, line));
    }
    keyed.retain(|(_, _, line)| level.is_none_or(|f| f.keeps(line)));
    keyed.sort_by_key(|(timestamp, place, _)| std::cmp::Reverse((*timestamp, *place)));
    LogPage {
        total: keyed.len(),
        lines: keyed
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(_, _, line)| line)
            .collect(),
    }
}

impl Conversations {
    /// A page of an agent's log (see the module docs), newest first.
    /// `limit` is capped at [`MAX_LOG_LINES`].
    pub async fn agent_logs(
        &self,
        agent: Uuid,
        level: Option<LevelFilter>,
        offset: usize,
        limit: usize,
    ) -> Result<LogPage, KernelError> {
        self.agents.get(agent).await?;
        let store = self.shared.store().clone();
        let limit = limit.min(MAX_LOG_LINES);
        Ok(store::blocking(move || {
            let turns = sessions::turns_of(&store, agent, usize::MAX)?;
            let audit = audit::of_agent(&store, &agent.to_string())?;
            Ok(page(&turns, audit, level, offset, limit))
        })
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::ToolCallTrace;

    fn turn(status: TurnStatus, started_at: DateTime<Utc>) -> TurnRecord {
        TurnRecord {
            id: Uuid::now_v7(),
            agent_id: Uuid::nil(),
            session_id: Uuid::nil(),
            started_at,
            duration_ms: 1500,
            iterations: 2,
            provider: "fake".into(),
            model: "m1".into(),
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: 0.0,
            tool_calls: vec![
                ToolCallTrace {
                    tool: "file_read".into(),
                    duration_us: 2500,
                    is_error: false,
                    fuel: 0,
                },
                ToolCallTrace {
                    tool: "web_fetch".into(),
                    duration_us: 100,
                    is_error: true,
                    fuel: 0,
                },
            ],
            status,
            error: (status == TurnStatus::Failed).then(|| "provider said no".into()),
            sender: None,
            ephemeral: false,
        }
    }

    fn entry(id: u64, event_type: &str, outcome: &str, timestamp: DateTime<Utc>) -> AuditEntry {
        AuditEntry {
            id,
            timestamp,
            event_type: event_type.into(),
            agent_id: Some(Uuid::nil().to_string()),
            details: format!("{event_type} details"),
            outcome: outcome.into(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn turns_and_audit_entries_merge_newest_first() {
        let t0 = Utc::now() - Duration::minutes(10);
        let turns = [turn(TurnStatus::Completed, t0 + Duration::minutes(1))];
        let audit = vec![
            entry(2, "agent_stopped", "ok", t0 + Duration::minutes(5)),
            entry(1, "agent_spawned", "ok", t0),
        ];
        let page = page(&turns, audit, None, 0, 100);
        let actions: Vec<&str> = page.lines.iter().map(|l| l.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "agent_stopped",
                "turn_completed",
                "tool_call",
                "tool_call",
                "turn_started",
                "agent_spawned"
            ]
        );
        assert_eq!(page.total, 6);
        let done = &page.lines[1];
        assert!(done.detail.contains("fake/m1"), "{}", done.detail);
        assert!(done.detail.contains("10 input + 5 output tokens"));
        assert!(done.detail.contains("1500 ms"));
        assert!(page.lines[3].detail.contains("`file_read` succeeded"));
        assert_eq!(page.lines[2].level, LogLevel::Error);
        assert_eq!(page.lines[5].seq, Some(1));
    }

    #[test]
    fn levels_filter_and_pages_cut() {
        let t0 = Utc::now();
        let turns = [
            turn(TurnStatus::Failed, t0),
            turn(TurnStatus::Stopped, t0 + Duration::seconds(10)),
        ];
        let audit = vec![entry(1, "agent_updated", "denied", t0)];
        let errors = page(
            &turns,
            audit.clone(),
            Some(LevelFilter::Level(LogLevel::Error)),
            0,
            100,
        );
        // Two failed tool calls and the failed turn.
        assert_eq!(errors.total, 3);
        let failed = errors
            .lines
            .iter()
            .find(|l| l.action == "turn_failed")
            .unwrap();
        assert_eq!(failed.outcome, "provider said no");
        let warns = page(
            &turns,
            audit.clone(),
            Some(LevelFilter::Level(LogLevel::Warn)),
            0,
            100,
        );
        let actions: Vec<&str> = warns.lines.iter().map(|l| l.action.as_str()).collect();
        assert_eq!(actions, ["turn_stopped", "agent_updated"]);
        let ok = page(&turns, audit.clone(), Some(LevelFilter::Ok), 0, 100);
        assert!(ok.lines.iter().all(|l| l.outcome == "ok"));
        assert_eq!(ok.total, 4);
        let all = page(&turns, audit.clone(), None, 0, 100);
        let second = page(&turns, audit, None, 2, 3);
        assert_eq!(second.total, all.total);
        assert_eq!(second.lines, all.lines[2..5]);
    }

    #[test]
    fn a_compaction_is_one_line() {
        let lines = turn_lines(&turn(TurnStatus::Compaction, Utc::now()));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].action, "session_compacted");
        assert!(lines[0].detail.contains("fake/m1"));
    }

    #[test]
    fn unknown_levels_are_refused() {
        assert!(matches!(
            "verbose".parse::<LevelFilter>(),
            Err(KernelError::Invalid(_))
        ));
        assert_eq!(
            "WARN".parse::<LevelFilter>().unwrap(),
            LevelFilter::Level(LogLevel::Warn)
        );
    }
}
