//! The parts of the kernel's store (`host/kernel/src/store/`) that the
//! audit module uses: the same table definitions, error type and clock,
//! over a bare redb database.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use redb::Database;

/// The audit chain's tables, as in `host/kernel/src/store/tables.rs`.
pub(crate) mod tables {
    use redb::TableDefinition;

    pub(crate) const AUDIT_V1: TableDefinition<u64, &[u8]> = TableDefinition::new("audit.v1");
    pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit.v2");
    pub(crate) const AUDIT_CHECKPOINTS: TableDefinition<u64, &[u8]> =
        TableDefinition::new("audit_checkpoints.v1");
}

use tables::AUDIT;

/// Errors from the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error.
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    /// A stored value could not be decoded.
    #[error("corrupt record in {table}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        message: String,
    },
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

/// A database file.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Creates the database with an empty chain.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(AUDIT)?;
        tx.commit()?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Now: the benchmark runs on wall time.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// The database (fallible in the kernel, whose store can be reopening).
    pub(crate) fn db(&self) -> Result<&Database, StoreError> {
        Ok(&self.db)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
