//! The store: one redb database file, its tables, its migrations, the
//! write journal and the audit chain kept in it.
//!
//! This is the bottom of the kernel: it knows nothing of agents or
//! conversations, only of tables ([`tables`]), their history
//! ([`migrations`]) and how a write becomes durable. Each domain reads and
//! writes its own tables through its own store functions, which take a
//! [`Store`] (or, to join a caller's transaction, a `WriteTransaction`); no
//! transaction is opened anywhere else, so another backend could later sit
//! behind the same functions.
//!
//! Commits use redb's default `Durability::Immediate` (fsync before `commit`
//! returns), which is what makes an acknowledged write survive `kill -9`;
//! the one frequent write, a conversation turn, is made durable through the
//! [`journal`] instead, which costs one small sequential sync.

pub mod audit;
pub(crate) mod journal;
pub(crate) mod migrations;
pub mod stats;
pub(crate) mod tables;
pub mod totals;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Database, WriteTransaction};

use crate::clock::{Clock, SystemClock};

use journal::Journal;
pub use migrations::SCHEMA_VERSION;

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

/// The page cache of a store opened without a configuration: the default
/// of `[storage] cache_mib`.
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    journal: Arc<Journal>,
    /// Where every stored timestamp comes from.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to
    /// date; timestamps come from the system clock.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_clock(path, Arc::new(SystemClock))
    }

    /// Like [`Store::open`], with timestamps from `clock` (tests move it by hand).
    pub fn open_with_clock(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Self::open_with(path, clock, DEFAULT_CACHE_BYTES)
    }

    /// Like [`Store::open_with_clock`], with a page cache of `cache_bytes`:
    /// the most of the file redb keeps in memory (its own default, 1 GiB,
    /// would let the daemon's memory follow the file's size).
    pub fn open_with(
        path: &Path,
        clock: Arc<dyn Clock>,
        cache_bytes: usize,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let existed = path.exists() && std::fs::metadata(path)?.len() > 0;
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        migrations::migrate(&db, path, existed)?;
        // Replay runs on the current schema: a migration that changes the
        // tables a redo record writes must keep its redo readable.
        let journal = Journal::open(&path.with_extension("journal"), &db, journal::replay_turn)?;
        Ok(Self {
            db: Arc::new(db),
            path: path.to_path_buf(),
            journal: Arc::new(journal),
            clock,
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

    /// The clock every timestamp of the kernel comes from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Now, by [`Store::clock`].
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The raw redb handle, for the domains' store functions.
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u64, StoreError> {
        migrations::schema_version(&self.db)
    }

    /// A cheap read that proves the file is usable, for health checks.
    pub fn check(&self) -> Result<(), StoreError> {
        self.schema_version().map(|_| ())
    }
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
    use super::migrations::SCHEMA_KEY;
    use super::tables::{AGENTS, AUDIT, META};
    use super::*;
    use redb::{ReadableDatabase, ReadableTableMetadata};

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
