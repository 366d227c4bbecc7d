//! The schema's history: every migration ever shipped, and the code that
//! brings a database file up to [`SCHEMA_VERSION`].
//!
//! A data directory records the schema version it was last migrated to in
//! the `meta` table. On open, each pending [`Migration`] runs in its own
//! write transaction together with the version bump, so an interrupted
//! upgrade leaves the previous version intact; the file is first copied
//! aside. A data directory written by a newer Talon is refused, not touched.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use super::tables::*;
use super::{StoreError, decode};

/// The schema version this build writes: the last migration's, so adding a
/// migration is the one edit a new table needs.
///
/// Version 4 is reserved for sessions and messages (issue 4); the scheduler's
/// tables start at 5.
pub const SCHEMA_VERSION: u64 = MIGRATIONS[MIGRATIONS.len() - 1].to;

pub(super) const SCHEMA_KEY: &str = "schema_version";

/// One step of the schema's history.
struct Migration {
    /// The version the database has after this step.
    to: u64,
    description: &'static str,
    apply: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// Every migration ever shipped, in order. Append only: never edit a released step.
const MIGRATIONS: &[Migration] = &[
    Migration {
        to: 1,
        description: "create agents.v1 and kv.v1",
        apply: |tx| {
            tx.open_table(AGENTS)?;
            tx.open_table(KV)?;
            Ok(())
        },
    },
    Migration {
        to: 2,
        description: "create audit.v1",
        apply: |tx| {
            tx.open_table(AUDIT_V1)?;
            Ok(())
        },
    },
    Migration {
        to: 3,
        description: "create uploads.v1",
        apply: |tx| {
            tx.open_table(UPLOADS)?;
            Ok(())
        },
    },
    Migration {
        to: 4,
        description: "create sessions.v1, messages.v1, turns.v1; index agent names in agent_names.v1",
        apply: |tx| {
            tx.open_table(SESSIONS)?;
            tx.open_table(MESSAGES)?;
            tx.open_table(TURNS)?;
            let agents = tx.open_table(AGENTS)?;
            let mut names = tx.open_table(AGENT_NAMES)?;
            for entry in agents.iter()? {
                let (id, value) = entry?;
                // Only the name is needed; records of any older shape have one.
                let record: serde_json::Value = decode("agents.v1", value.value())?;
                if let Some(name) = record.pointer("/manifest/name").and_then(|n| n.as_str()) {
                    names.insert(name, id.value())?;
                }
            }
            Ok(())
        },
    },
    // --- Scheduler (issue 5); 4 is reserved for sessions and messages ---
    Migration {
        to: 5,
        description: "create cron_jobs.v1, cron_runs.v1, triggers.v1, trigger_fires.v1, workflows.v1, workflow_runs.v1 and goals.v1",
        apply: |tx| {
            tx.open_table(GOALS)?;
            tx.open_table(WORKFLOWS)?;
            tx.open_table(WORKFLOW_RUNS)?;
            tx.open_table(CRON_JOBS)?;
            tx.open_table(CRON_RUNS)?;
            tx.open_table(TRIGGERS)?;
            tx.open_table(TRIGGER_FIRES)?;
            Ok(())
        },
    },
    Migration {
        to: 6,
        description: "audit.v1 -> audit.v2: entries stored as hash + hashed bytes",
        apply: super::audit::migrate_v1_to_v2,
    },
    Migration {
        to: 7,
        description: "create tasks.v1",
        apply: |tx| {
            tx.open_table(TASKS)?;
            Ok(())
        },
    },
    Migration {
        to: 8,
        description: "create custom_models.v1 and provider_urls.v1",
        apply: |tx| {
            tx.open_table(CUSTOM_MODELS)?;
            tx.open_table(PROVIDER_URLS)?;
            Ok(())
        },
    },
    Migration {
        to: 9,
        description: "create turn_totals.v1 from every turn record",
        apply: super::totals::rebuild_in,
    },
    Migration {
        to: 10,
        description: "create approvals.v1, approval_meta.v1, webhooks.v1, webhook_queue.v1 and webhook_dead.v1",
        apply: |tx| {
            tx.open_table(APPROVALS)?;
            tx.open_table(APPROVAL_META)?;
            tx.open_table(WEBHOOKS)?;
            tx.open_table(WEBHOOK_QUEUE)?;
            tx.open_table(WEBHOOK_DEAD)?;
            Ok(())
        },
    },
    Migration {
        to: 11,
        description: "create a2a_peers.v1 and a2a_tasks.v1",
        apply: |tx| {
            tx.open_table(A2A_PEERS)?;
            tx.open_table(A2A_TASKS)?;
            Ok(())
        },
    },
    Migration {
        to: 12,
        description: "create channels.v1, channel_inbox.v1, channel_outbox.v1 and channel_sessions.v1",
        apply: |tx| {
            tx.open_table(CHANNELS)?;
            tx.open_table(CHANNEL_INBOX)?;
            tx.open_table(CHANNEL_OUTBOX)?;
            tx.open_table(CHANNEL_SESSIONS)?;
            Ok(())
        },
    },
    Migration {
        to: 13,
        description: "create hand_instances.v1",
        apply: |tx| {
            tx.open_table(HAND_INSTANCES)?;
            Ok(())
        },
    },
    Migration {
        to: 14,
        description: "create paused_turns.v1",
        apply: |tx| {
            tx.open_table(PAUSED_TURNS)?;
            Ok(())
        },
    },
    Migration {
        to: 15,
        description: "create audit_checkpoints.v1",
        apply: |tx| {
            tx.open_table(AUDIT_CHECKPOINTS)?;
            Ok(())
        },
    },
];

pub(super) fn schema_version(db: &Database) -> Result<u64, StoreError> {
    let tx = db.begin_read()?;
    let table = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    Ok(table.get(SCHEMA_KEY)?.map(|v| v.value()).unwrap_or(0))
}

pub(super) fn migrate(db: &Database, path: &Path, existed: bool) -> Result<(), StoreError> {
    let current = schema_version(db)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    if existed && current > 0 {
        // Keep the pre-upgrade file beside the new one until the operator removes it.
        let backup = path.with_extension(format!("redb.v{current}.bak"));
        std::fs::copy(path, &backup)?;
        tracing::info!(backup = %backup.display(), "backed up database before migrating");
    }
    for step in MIGRATIONS.iter().filter(|m| m.to > current) {
        let tx = db.begin_write()?;
        (step.apply)(&tx)?;
        tx.open_table(META)?.insert(SCHEMA_KEY, step.to)?;
        tx.commit()?;
        tracing::info!(
            version = step.to,
            step = step.description,
            "migrated database"
        );
    }
    Ok(())
}
