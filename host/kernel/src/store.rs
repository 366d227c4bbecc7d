//! The redb store: one database file, versioned tables, and migrations.
//!
//! Every table name carries its format version (`agents.v1`). A data directory
//! records the schema version it was last migrated to in the `meta` table; on
//! open, each pending [`Migration`] runs in its own write transaction together
//! with the version bump, so an interrupted upgrade leaves the previous version
//! intact. A data directory written by a newer Talon is refused, not touched.
//!
//! Commits use redb's default `Durability::Immediate` (fsync before `commit`
//! returns), which is what makes an acknowledged write survive `kill -9`;
//! the one frequent write, a conversation turn, is made durable through the
//! [`crate::journal`] instead, which costs one small sequential sync.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::journal::Journal;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

/// The schema version this build writes.
///
/// Version 4 is reserved for sessions and messages (issue 4); the scheduler's
/// tables start at 5.
pub const SCHEMA_VERSION: u64 = 8;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_KEY: &str = "schema_version";

/// Agents by id: JSON-encoded [`crate::agents::AgentRecord`].
pub(crate) const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agents.v1");
/// Agent key-value memory by (agent id, key): JSON values.
pub(crate) const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv.v1");
/// The audit hash chain as it was stored up to schema 5: JSON entries.
pub(crate) const AUDIT_V1: TableDefinition<u64, &[u8]> = TableDefinition::new("audit.v1");
/// The audit hash chain by sequence number: each entry's hash, then the bytes
/// it covers (see [`crate::audit`]).
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit.v2");
/// Agent ids by agent name, so names stay unique without scanning every agent.
pub(crate) const AGENT_NAMES: TableDefinition<&str, &str> = TableDefinition::new("agent_names.v1");
/// Sessions by id: JSON [`crate::sessions::SessionRecord`].
pub(crate) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions.v1");
/// Session messages by (session id, sequence number): JSON [`crate::sessions::StoredMessage`].
pub(crate) const MESSAGES: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("messages.v1");
/// The record of every turn by (agent id, turn id; v7 ids sort by time):
/// JSON [`crate::sessions::TurnRecord`]. Traces, usage and budgets read it.
pub(crate) const TURNS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("turns.v1");
/// Uploaded attachments' metadata by upload id: JSON [`crate::uploads::Upload`].
pub(crate) const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads.v1");

// --- Scheduler (issue 5) ---
/// Cron jobs (and schedules, a view of the same jobs) by id: JSON [`crate::cron::CronJob`].
pub(crate) const CRON_JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("cron_jobs.v1");
/// Cron runs by sequence number, oldest first: JSON [`crate::cron::CronRun`].
pub(crate) const CRON_RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("cron_runs.v1");
/// Event triggers by id: JSON [`crate::triggers::Trigger`].
pub(crate) const TRIGGERS: TableDefinition<&str, &[u8]> = TableDefinition::new("triggers.v1");
/// What triggers did when they fired, by sequence number: JSON [`crate::triggers::TriggerFire`].
pub(crate) const TRIGGER_FIRES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("trigger_fires.v1");
/// Workflow definitions by id: JSON [`crate::workflows::Workflow`].
pub(crate) const WORKFLOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("workflows.v1");
/// Workflow runs by id: JSON [`crate::workflows::WorkflowRun`].
pub(crate) const WORKFLOW_RUNS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("workflow_runs.v1");
/// Goals by id: JSON [`crate::goals::Goal`].
/// The task queue by task id (v7, so ids sort by posting time): JSON [`crate::tasks::Task`].
pub(crate) const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks.v1");
pub(crate) const GOALS: TableDefinition<&str, &[u8]> = TableDefinition::new("goals.v1");

// --- Providers and models ---
/// Custom models by id: JSON [`talon_llm::ModelInfo`] (see [`crate::providers`]).
pub(crate) const CUSTOM_MODELS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("custom_models.v1");
/// Base-URL overrides by provider name. API keys are not here but in the
/// private secrets file (see [`crate::providers`]).
pub(crate) const PROVIDER_URLS: TableDefinition<&str, &str> =
    TableDefinition::new("provider_urls.v1");

/// Errors from the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error.
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    /// A stored value could not be decoded.
    #[error("corrupt record in {table}: {message}")]
    Corrupt {
        /// The table holding the record.
        table: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The data directory was written by a newer version of Talon.
    #[error(
        "database schema version {found} is newer than this build supports ({supported}); upgrade Talon"
    )]
    TooNew {
        /// Version found in the file.
        found: u64,
        /// Highest version this build knows.
        supported: u64,
    },
    /// A file operation around the database failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A blocking task was cancelled or panicked.
    #[error("database task failed: {0}")]
    Task(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

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
        apply: crate::audit::migrate_v1_to_v2,
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
];

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    journal: Arc<Journal>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let existed = path.exists() && std::fs::metadata(path)?.len() > 0;
        let db = Database::create(path)?;
        migrate(&db, path, existed)?;
        // Replay runs on the current schema: a migration that changes the
        // tables a redo record writes must keep its redo readable.
        let journal = Journal::open(&path.with_extension("journal"), &db, crate::sessions::redo)?;
        Ok(Self {
            db: Arc::new(db),
            path: path.to_path_buf(),
            journal: Arc::new(journal),
        })
    }

    /// Runs `write` in a write transaction made durable through the journal
    /// (see [`Journal::write`]): for frequent writes whose redb commit would
    /// cost more than the rest of the request.
    pub(crate) fn write_journaled<T, E>(
        &self,
        write: impl FnOnce(&WriteTransaction) -> Result<(T, Vec<u8>), E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.journal.write(&self.db, write)
    }

    /// Makes every journaled write durable in the database file itself, so
    /// the file alone is complete (at shutdown, before a backup).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.journal.checkpoint(&self.db)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw redb handle, for the kernel's registries.
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u64, StoreError> {
        schema_version(&self.db)
    }

    /// A cheap read that proves the file is usable, for health checks.
    pub fn check(&self) -> Result<(), StoreError> {
        self.schema_version().map(|_| ())
    }
}

fn schema_version(db: &Database) -> Result<u64, StoreError> {
    let tx = db.begin_read()?;
    let table = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    Ok(table.get(SCHEMA_KEY)?.map(|v| v.value()).unwrap_or(0))
}

fn migrate(db: &Database, path: &Path, existed: bool) -> Result<(), StoreError> {
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

/// Decodes a JSON record, naming the table on failure.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        message: e.to_string(),
    })
}

/// Encodes a record as JSON.
pub(crate) fn encode<T: serde::Serialize>(
    table: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        table,
        message: e.to_string(),
    })
}

/// Runs blocking database work off the async runtime's worker threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    #[test]
    fn fresh_database_is_at_current_version_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        drop(store);
        assert_eq!(
            Store::open(&path).unwrap().schema_version().unwrap(),
            SCHEMA_VERSION
        );
    }

    #[test]
    fn database_from_a_newer_version_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(SCHEMA_KEY, SCHEMA_VERSION + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        assert!(matches!(Store::open(&path), Err(StoreError::TooNew { .. })));
        let db = Database::create(&path).unwrap();
        let tx = db.begin_read().unwrap();
        let version = tx
            .open_table(META)
            .unwrap()
            .get(SCHEMA_KEY)
            .unwrap()
            .map(|v| v.value());
        assert_eq!(
            version,
            Some(SCHEMA_VERSION + 1),
            "refused database must keep its version"
        );
    }

    #[test]
    fn version_1_database_is_backed_up_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert(SCHEMA_KEY, 1).unwrap();
            tx.open_table(AGENTS)
                .unwrap()
                .insert("a", b"{}".as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert!(
            dir.path().join("t.redb.v1.bak").exists(),
            "pre-migration copy kept"
        );
        let tx = store.db().begin_read().unwrap();
        assert!(tx.open_table(AGENTS).unwrap().get("a").unwrap().is_some());
        assert_eq!(tx.open_table(AUDIT).unwrap().len().unwrap(), 0);
    }

    #[test]
    fn unversioned_database_is_migrated_and_keeps_its_data() {
        // A data directory from before versioning (schema 0) holding an agent row.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(AGENTS)
                .unwrap()
                .insert("a", b"{}".as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let tx = store.db().begin_read().unwrap();
        assert!(tx.open_table(AGENTS).unwrap().get("a").unwrap().is_some());
    }
}
