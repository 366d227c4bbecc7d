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
pub mod audit_checkpoint;
mod disk;
pub(crate) mod journal;
pub(crate) mod migrations;
pub mod stats;
pub(crate) mod tables;
pub mod totals;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redb::{Database, WriteTransaction};

use crate::clock::{Clock, SystemClock};

use disk::{Faults, Reserve, Watched};
use journal::Journal;
pub use migrations::SCHEMA_VERSION;

/// Errors from the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error.
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    /// The disk holding the data directory is full: the write was not made.
    #[error("{0}")]
    DiskFull(String),
    /// The database is being reopened after a failed write; retry shortly.
    #[error("the database is recovering from a failed write of its file; retry shortly")]
    Recovering,
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

impl StoreError {
    /// Names a failed write of the file for what it is: a full disk (the
    /// backend put the data directory in the message) or a database that
    /// must be reopened after one.
    fn classify(e: redb::Error) -> Self {
        match e {
            redb::Error::Io(io) if disk::is_no_space(&io) => StoreError::DiskFull(io.to_string()),
            redb::Error::PreviousIo => StoreError::Recovering,
            other => StoreError::Db(other),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::classify(e.into())
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

/// The reserve of a store opened without a configuration: the default of
/// `[storage] disk_reserve_mib`.
pub const DEFAULT_RESERVE_BYTES: u64 = 8 << 20;

/// How a store is opened.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// The most of the file redb keeps in memory (its own default, 1 GiB,
    /// would let the daemon's memory follow the file's size).
    pub cache_bytes: usize,
    /// Disk space held back in a file beside the database, given up when
    /// the disk fills so the store can recover (see [`disk`]); 0 for none.
    pub reserve_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
        }
    }
}

/// Whether the store takes writes, as health checks report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteState {
    /// Writes are taken.
    Writable,
    /// The disk is full: writes are refused, reads served.
    DiskFull {
        /// The message writes are refused with.
        reason: String,
        /// Since when.
        since: DateTime<Utc>,
    },
}

/// The open database and its journal: replaced whole when the file must be reopened.
struct Open {
    db: Database,
    /// Absent when the store came up on a full disk and could not replay
    /// it: writes wait for the disk to have room, then the store reopens.
    journal: Option<Journal>,
}

struct Inner {
    path: PathBuf,
    options: StoreOptions,
    open: RwLock<Option<Arc<Open>>>,
    faults: Arc<Faults>,
    reserve: Reserve,
    /// `Some` while writes are refused.
    full: Mutex<Option<(String, DateTime<Utc>)>>,
    /// When the disk was last looked at for room, so a busy client does not
    /// make every refused write a `statvfs`.
    last_look: Mutex<Option<Instant>>,
    /// Serializes reopening.
    reopening: Mutex<()>,
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// Where every stored timestamp comes from.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// The database for one operation: reads as redb's, writes through
/// [`Db::begin_write`], which refuses while the disk is full.
pub(crate) struct Db {
    open: Arc<Open>,
    store: Store,
}

impl std::ops::Deref for Db {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.open.db
    }
}

impl Db {
    /// Begins a write transaction, unless the disk is full.
    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.store.writable()?;
        Ok(self.open.db.begin_write()?)
    }
}

/// How long a reopen waits for the operations still holding the old database.
const REOPEN_WAIT: Duration = Duration::from_secs(5);
/// How often a full disk is looked at for room.
const LOOK_EVERY: Duration = Duration::from_secs(1);

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to
    /// date; timestamps come from the system clock.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_clock(path, Arc::new(SystemClock))
    }

    /// Like [`Store::open`], with timestamps from `clock` (tests move it by hand).
    pub fn open_with_clock(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Self::open_with(path, clock, StoreOptions::default())
    }

    /// Like [`Store::open_with_clock`], with `options`. On a full disk the
    /// store still opens, read-only until the disk has room
    /// ([`Store::write_state`]).
    pub fn open_with(
        path: &Path,
        clock: Arc<dyn Clock>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let store = Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                options,
                open: RwLock::new(None),
                faults: Arc::new(Faults::default()),
                reserve: Reserve::new(path, options.reserve_bytes),
                full: Mutex::new(None),
                last_look: Mutex::new(None),
                reopening: Mutex::new(()),
            }),
            clock,
        };
        let existed = path.exists() && std::fs::metadata(path)?.len() > 0;
        let open = match store.open_parts(existed) {
            Err(StoreError::DiskFull(reason)) => {
                // No room to migrate or replay: give up the reserve and try
                // again, else open as it is, for reads.
                let _ = store.inner.faults.take();
                store.refuse_writes(reason);
                store.inner.reserve.release();
                match store.open_parts(existed) {
                    Err(StoreError::DiskFull(_)) => {
                        let _ = store.inner.faults.take();
                        store.open_unjournaled()?
                    }
                    other => other?,
                }
            }
            other => other?,
        };
        *store.inner.open.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(open));
        if store.write_state() == WriteState::Writable
            && let Err(e) = store.inner.reserve.allocate()
        {
            if disk::is_no_space(&e) {
                store.refuse_writes(
                    disk::NoSpace {
                        dir: store.data_dir().to_path_buf(),
                    }
                    .to_string(),
                );
            } else {
                tracing::warn!(error = %e, "could not allocate the disk reserve");
            }
        }
        Ok(store)
    }

    fn database(&self) -> Result<Database, StoreError> {
        let backend = Watched::open(&self.inner.path, self.inner.faults.clone())?;
        Ok(Database::builder()
            .set_cache_size(self.inner.options.cache_bytes)
            .create_with_backend(backend)?)
    }

    /// Opens the database, migrates it and replays the journal.
    fn open_parts(&self, existed: bool) -> Result<Open, StoreError> {
        let db = self.database()?;
        migrations::migrate(&db, &self.inner.path, existed)?;
        // Replay runs on the current schema: a migration that changes the
        // tables a redo record writes must keep its redo readable.
        let journal = Journal::open(
            &self.inner.path.with_extension("journal"),
            &db,
            journal::replay_turn,
        )?;
        Ok(Open {
            db,
            journal: Some(journal),
        })
    }

    /// Opens the database as it is, leaving the journal for later: for
    /// reads when the disk has no room for the replay.
    fn open_unjournaled(&self) -> Result<Open, StoreError> {
        let db = self.database()?;
        migrations::schema_version(&db)?;
        Ok(Open { db, journal: None })
    }

    /// The database, reopened first if a write of its file failed.
    pub(crate) fn db(&self) -> Result<Db, StoreError> {
        if self.inner.faults.pending() {
            self.recover();
        }
        let open = self
            .inner
            .open
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Recovering)?;
        Ok(Db {
            open,
            store: self.clone(),
        })
    }

    /// After a failed write of the file: closes the latched database and
    /// opens it again (replaying the journal), into the reserve's room if
    /// the disk is full.
    fn recover(&self) {
        let _reopening = self
            .inner
            .reopening
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(kind) = self.inner.faults.take() else {
            return;
        };
        let no_space = disk::is_no_space(&std::io::Error::from(kind));
        if no_space {
            self.refuse_writes(
                disk::NoSpace {
                    dir: self.data_dir().to_path_buf(),
                }
                .to_string(),
            );
            self.inner.reserve.release();
        }
        tracing::warn!(?kind, db = %self.inner.path.display(), "a write of the database file failed; reopening it");
        if let Err(e) = self.reopen() {
            tracing::error!(error = %e, "reopening the database failed; will retry");
            self.inner.faults.record(kind);
        }
    }

    /// Closes the open database (waiting for the operations holding it) and
    /// opens it again; unjournaled if the journal cannot be replayed.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.inner.open.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            let deadline = Instant::now() + REOPEN_WAIT;
            let mut old = old;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(open) => {
                        drop(open);
                        break;
                    }
                    Err(still) if Instant::now() < deadline => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(still) => {
                        *slot = Some(still);
                        return Err(StoreError::Recovering);
                    }
                }
            }
        }
        let open = match self.open_parts(true) {
            Err(StoreError::DiskFull(_)) => {
                let _ = self.inner.faults.take();
                self.open_unjournaled()?
            }
            other => other?,
        };
        *slot = Some(Arc::new(open));
        Ok(())
    }

    fn refuse_writes(&self, reason: String) {
        let mut full = self.inner.full.lock().unwrap_or_else(|p| p.into_inner());
        if full.is_none() {
            tracing::error!(%reason, "refusing writes");
            *full = Some((reason, self.now()));
        }
    }

    /// `Ok` when writes are taken; while the disk is full, looks (at most
    /// once a second) whether it has room again, and if so reallocates the
    /// reserve, replays what waits in the journal and takes writes again.
    fn writable(&self) -> Result<(), StoreError> {
        let reason = {
            let full = self.inner.full.lock().unwrap_or_else(|p| p.into_inner());
            match &*full {
                None => return Ok(()),
                Some((reason, _)) => reason.clone(),
            }
        };
        {
            let mut last = self
                .inner
                .last_look
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < LOOK_EVERY) {
                return Err(StoreError::DiskFull(reason));
            }
            *last = Some(Instant::now());
        }
        if !self.inner.reserve.room_to_resume() || self.inner.reserve.allocate().is_err() {
            return Err(StoreError::DiskFull(reason));
        }
        let unjournaled = self
            .inner
            .open
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(|open| open.journal.is_none());
        if unjournaled {
            // The journal waits to be replayed: the next use of the store
            // reopens it (this caller may hold the database open).
            self.inner.faults.record(std::io::ErrorKind::Other);
            return Err(StoreError::Recovering);
        }
        tracing::info!(db = %self.inner.path.display(), "the disk has room again; taking writes");
        *self.inner.full.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Whether writes are taken now; while the disk is full this also looks
    /// whether it has room again, so a health check is enough to resume.
    pub fn write_state(&self) -> WriteState {
        if self.inner.faults.pending() {
            self.recover();
        }
        let refused = self
            .inner
            .full
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if refused {
            let _ = self.writable();
        }
        match &*self.inner.full.lock().unwrap_or_else(|p| p.into_inner()) {
            None => WriteState::Writable,
            Some((reason, since)) => WriteState::DiskFull {
                reason: reason.clone(),
                since: *since,
            },
        }
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
        self.writable()?;
        let db = self.db()?;
        let journal = db.open.journal.as_ref().ok_or(StoreError::Recovering)?;
        journal.write(&db.open.db, write)
    }

    /// Makes every journaled write durable in the database file itself, so
    /// the file alone is complete (at shutdown, before a backup).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.writable()?;
        let db = self.db()?;
        match db.open.journal.as_ref() {
            Some(journal) => journal.checkpoint(&db.open.db),
            None => Err(StoreError::Recovering),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The directory holding the database file.
    pub fn data_dir(&self) -> &Path {
        self.inner.path.parent().unwrap_or(Path::new("."))
    }

    /// The clock every timestamp of the kernel comes from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Now, by [`Store::clock`].
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u64, StoreError> {
        let db = self.db()?;
        migrations::schema_version(&db)
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
        let tx = store.db().unwrap().begin_read().unwrap();
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
        let tx = store.db().unwrap().begin_read().unwrap();
        assert!(tx.open_table(AGENTS).unwrap().get("a").unwrap().is_some());
    }
}
