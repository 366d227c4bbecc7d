//! Retention of turn records (`turns.v1`): what `[retention]` allows is
//! removed by a sweep, a batch per write transaction, so a sweep over a
//! large store never holds the writer for long.
//!
//! Only turn records are removed. A session's messages (its live window
//! and its history) are the conversation's and stay; the running totals
//! (`turn_totals.v1`) keep the removed turns' share, so usage and budgets
//! read the same after a sweep.

use std::sync::Weak;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use crate::config::RetentionConfig;
use crate::events::TurnStatus;
use crate::store::tables::TURNS;
use crate::store::{Store, StoreError};

/// Turn records removed per write transaction.
pub const BATCH: usize = 500;

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Turn records removed, failed ones included.
    pub turns: u64,
    /// Of those, failed turns.
    pub failed_turns: u64,
}

/// The fields of a turn record the rules read.
#[derive(Deserialize)]
struct Kept {
    started_at: DateTime<Utc>,
    status: TurnStatus,
}

/// Where a sweep is: the last row examined, and the current agent's counts
/// of newer rows (a sweep walks each agent's rows newest first).
#[derive(Default)]
struct Cursor {
    after: Option<(String, String)>,
    agent: String,
    turns: u64,
    failed: u64,
}

/// Removes the turn records `rules` do not keep, as of the store's clock.
pub fn sweep(store: &Store, rules: &RetentionConfig) -> Result<Swept, StoreError> {
    let now = store.now();
    let cutoff = |days: u64| (days > 0).then(|| now - chrono::Duration::days(days as i64));
    let (turn_cutoff, failed_cutoff) = (cutoff(rules.turn_days), cutoff(rules.failed_turn_days));
    let over = |limit: u64, count: u64| limit > 0 && count > limit;
    let mut cursor = Cursor::default();
    let mut swept = Swept::default();
    loop {
        let mut doomed: Vec<((String, String), bool)> = Vec::new();
        let mut done = true;
        {
            let tx = store.db()?.begin_read()?;
            let table = tx.open_table(TURNS)?;
            let rows = match &cursor.after {
                Some((agent, turn)) => table.range(..(agent.as_str(), turn.as_str()))?,
                None => table.range::<(&str, &str)>(..)?,
            };
            for row in rows.rev() {
                let (key, value) = row?;
                let (agent, turn) = key.value();
                if agent != cursor.agent {
                    cursor.agent = agent.to_string();
                    (cursor.turns, cursor.failed) = (0, 0);
                }
                let record: Kept =
                    serde_json::from_slice(value.value()).map_err(|e| StoreError::Corrupt {
                        table: "turns.v1",
                        message: e.to_string(),
                    })?;
                let failed = record.status == TurnStatus::Failed;
                cursor.turns += 1;
                cursor.failed += u64::from(failed);
                let age_cutoff = if failed {
                    failed_cutoff.max(turn_cutoff)
                } else {
                    turn_cutoff
                };
                let expired = age_cutoff.is_some_and(|c| record.started_at < c)
                    || over(rules.max_turns_per_agent, cursor.turns)
                    || (failed && over(rules.max_failed_turns_per_agent, cursor.failed));
                cursor.after = Some((agent.to_string(), turn.to_string()));
                if expired {
                    doomed.push(((agent.to_string(), turn.to_string()), failed));
                    if doomed.len() == BATCH {
                        done = false;
                        break;
                    }
                }
            }
        }
        if !doomed.is_empty() {
            let tx = store.db()?.begin_write()?;
            {
                let mut table = tx.open_table(TURNS)?;
                for ((agent, turn), _) in &doomed {
                    table.remove((agent.as_str(), turn.as_str()))?;
                }
            }
            tx.commit()?;
            swept.turns += doomed.len() as u64;
            swept.failed_turns += doomed.iter().filter(|(_, failed)| *failed).count() as u64;
        }
        if done {
            return Ok(swept);
        }
    }
}

/// Sweeps at once and then every `sweep_interval_secs` of the configuration
/// in force (read again before each, so a reload applies), until the kernel
/// is dropped; while the interval is 0 nothing is swept.
pub(crate) fn start(shared: Weak<crate::shared::Shared>) {
    tokio::spawn(async move {
        loop {
            let Some(current) = shared.upgrade() else {
                return;
            };
            let rules = current.config().retention.clone();
            if rules.sweep_interval_secs == 0 {
                // Off: looked at again in a minute, so a reload turning it on applies.
                drop(current);
                tokio::time::sleep(Duration::from_secs(60)).await;
                continue;
            }
            let store = current.store().clone();
            drop(current);
            let rules_for_sweep = rules.clone();
            match crate::store::blocking(move || sweep(&store, &rules_for_sweep)).await {
                Ok(swept) if swept.turns > 0 => tracing::info!(
                    turns = swept.turns,
                    failed_turns = swept.failed_turns,
                    "retention sweep removed turn records"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention sweep failed; retried at the next"),
            }
            tokio::time::sleep(Duration::from_secs(rules.sweep_interval_secs)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::TurnRecord;
    use crate::store::tables::put_turn_row;
    use redb::ReadableTable;
    use uuid::Uuid;

    fn turn(agent: Uuid, status: TurnStatus, started_at: DateTime<Utc>) -> TurnRecord {
        TurnRecord {
            id: Uuid::now_v7(),
            agent_id: agent,
            session_id: Uuid::nil(),
            started_at,
            duration_ms: 10,
            iterations: 1,
            provider: "p".into(),
            model: "m".into(),
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: 0.5,
            tool_calls: vec![],
            status,
            error: (status == TurnStatus::Failed).then(|| "no".into()),
            sender: None,
            ephemeral: false,
        }
    }

    fn put(store: &Store, turns: &[TurnRecord]) {
        let tx = store.db().unwrap().begin_write().unwrap();
        for t in turns {
            put_turn_row(&tx, t.agent_id, t.id, &serde_json::to_vec(t).unwrap()).unwrap();
        }
        tx.commit().unwrap();
    }

    fn left(store: &Store) -> Vec<(String, TurnStatus)> {
        let tx = store.db().unwrap().begin_read().unwrap();
        let table = tx.open_table(TURNS).unwrap();
        table
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                let t: TurnRecord = serde_json::from_slice(v.value()).unwrap();
                (k.value().1.to_string(), t.status)
            })
            .collect()
    }

    fn totals(store: &Store) -> Vec<(String, String, Vec<u8>)> {
        let def: redb::TableDefinition<(&str, &str), &[u8]> =
            redb::TableDefinition::new("turn_totals.v1");
        let tx = store.db().unwrap().begin_read().unwrap();
        let table = tx.open_table(def).unwrap();
        table
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                let (scope, bucket) = k.value();
                (scope.to_string(), bucket.to_string(), v.value().to_vec())
            })
            .collect()
    }

    fn rules() -> RetentionConfig {
        RetentionConfig {
            turn_days: 0,
            failed_turn_days: 0,
            max_turns_per_agent: 0,
            max_failed_turns_per_agent: 0,
            sweep_interval_secs: 0,
        }
    }

    #[test]
    fn ages_apply_by_status_and_totals_keep_the_removed_share() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let now = store.now();
        let agent = Uuid::now_v7();
        let old_ok = turn(
            agent,
            TurnStatus::Completed,
            now - chrono::Duration::days(40),
        );
        let old_failed = turn(agent, TurnStatus::Failed, now - chrono::Duration::days(10));
        let new_failed = turn(agent, TurnStatus::Failed, now - chrono::Duration::days(1));
        let new_ok = turn(agent, TurnStatus::Completed, now);
        put(
            &store,
            &[old_ok, old_failed, new_failed.clone(), new_ok.clone()],
        );
        let before = totals(&store);
        let swept = sweep(
            &store,
            &RetentionConfig {
                turn_days: 30,
                failed_turn_days: 7,
                ..rules()
            },
        )
        .unwrap();
        assert_eq!(
            swept,
            Swept {
                turns: 2,
                failed_turns: 1
            }
        );
        let kept: Vec<String> = left(&store).into_iter().map(|(id, _)| id).collect();
        assert_eq!(kept, [new_failed.id.to_string(), new_ok.id.to_string()]);
        assert_eq!(before, totals(&store));
        assert!(!before.is_empty());
    }

    #[test]
    fn counts_keep_the_newest_per_agent_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let now = store.now();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut turns = Vec::new();
        for i in 0..(BATCH + 300) {
            let status = if i % 2 == 0 {
                TurnStatus::Failed
            } else {
                TurnStatus::Completed
            };
            turns.push(turn(a, status, now));
        }
        turns.push(turn(b, TurnStatus::Failed, now));
        put(&store, &turns);
        let swept = sweep(
            &store,
            &RetentionConfig {
                max_turns_per_agent: 10,
                max_failed_turns_per_agent: 2,
                ..rules()
            },
        )
        .unwrap();
        assert_eq!(swept.turns as usize, BATCH + 300 - 7);
        let kept = left(&store);
        // Agent b's one failed turn; of a's ten newest, the five completed and
        // the two newest failed.
        assert_eq!(kept.len(), 8);
        let a_kept: Vec<&TurnRecord> = turns[..BATCH + 300].iter().rev().take(10).collect();
        let expected: Vec<String> = a_kept
            .iter()
            .enumerate()
            .filter(|(i, t)| t.status == TurnStatus::Completed || *i < 4)
            .map(|(_, t)| t.id.to_string())
            .collect();
        for id in expected {
            assert!(kept.iter().any(|(k, _)| *k == id), "{id} kept");
        }
        assert_eq!(
            sweep(
                &store,
                &RetentionConfig {
                    max_turns_per_agent: 10,
                    max_failed_turns_per_agent: 2,
                    ..rules()
                }
            )
            .unwrap(),
            Swept::default()
        );
    }

    /// The figure of docs/BENCHMARKS.md: the 141,752 failed turns
    /// (`TALON_PRUNE_FIGURE_TURNS` for another count) over 10 agents, the
    /// file's size before, after the sweep and after compaction.
    #[test]
    #[ignore = "a measurement: cargo test -p talon-kernel --release prune_figure -- --ignored --nocapture"]
    fn prune_figure() {
        let n: usize = std::env::var("TALON_PRUNE_FIGURE_TURNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(141_752);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let size = || std::fs::metadata(&path).unwrap().len();
        let store = Store::open(&path).unwrap();
        let now = store.now();
        let agents: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
        for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
            let turns: Vec<TurnRecord> = chunk
                .iter()
                .map(|i| {
                    let mut t = turn(agents[i % 10], TurnStatus::Failed, now);
                    t.error = Some(format!("openai returned 401: invalid api key ({i})"));
                    t
                })
                .collect();
            put(&store, &turns);
        }
        let before = size();
        let started = std::time::Instant::now();
        let swept = sweep(&store, &RetentionConfig::default()).unwrap();
        let took = started.elapsed();
        let after_sweep = size();
        drop(store);
        let compacted = crate::store::stats::compact(&path).unwrap();
        println!(
            "{n} failed turns: file {before} bytes; sweep removed {} in {took:?}, file {after_sweep} bytes; \
             compacted {} -> {} bytes",
            swept.turns, compacted.before_bytes, compacted.after_bytes
        );
        assert_eq!(swept.turns as usize, n.saturating_sub(10 * 1000));
        assert!(compacted.after_bytes < before);
    }
}
