//! What the database holds (tables, rows, bytes) and giving back the space
//! it no longer uses: `talon db stats` and `talon db compact`.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableHandle};
use serde::Serialize;

use super::{Store, StoreError};

/// One table of the database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableStats {
    /// Its name, with its format version (`turns.v1`).
    pub name: String,
    /// Rows it holds.
    pub rows: u64,
    /// Bytes of keys and values.
    pub stored_bytes: u64,
    /// Bytes of its B-tree's own pages beyond the stored bytes.
    pub metadata_bytes: u64,
    /// Bytes allocated to its pages but unused.
    pub fragmented_bytes: u64,
}

/// The database as a whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreStats {
    /// The database file's size.
    pub file_bytes: u64,
    /// The turn journal's size (fixed; see `store::journal`).
    pub journal_bytes: u64,
    /// Bytes the file holds in allocated pages, all tables together.
    pub allocated_bytes: u64,
    /// Every table, by name.
    pub tables: Vec<TableStats>,
}

/// Tables, rows and bytes of an open store, from one read transaction.
pub fn stats(store: &Store) -> Result<StoreStats, StoreError> {
    let file_bytes = std::fs::metadata(store.path())?.len();
    let journal_bytes = std::fs::metadata(store.path().with_extension("journal"))
        .map(|m| m.len())
        .unwrap_or(0);
    let tx = store.db()?.begin_read()?;
    let mut tables = Vec::new();
    for handle in tx.list_tables()? {
        let table = tx.open_untyped_table(handle)?;
        let s = table.stats()?;
        tables.push(TableStats {
            name: table.name().to_string(),
            rows: table.len()?,
            stored_bytes: s.stored_bytes(),
            metadata_bytes: s.metadata_bytes(),
            fragmented_bytes: s.fragmented_bytes(),
        });
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let allocated_bytes = tables
        .iter()
        .map(|t| t.stored_bytes + t.metadata_bytes + t.fragmented_bytes)
        .sum();
    Ok(StoreStats {
        file_bytes,
        journal_bytes,
        allocated_bytes,
        tables,
    })
}

/// The file's size before and after [`compact`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Compaction {
    /// Bytes before.
    pub before_bytes: u64,
    /// Bytes after.
    pub after_bytes: u64,
}

/// Compacts the database file at `path` in place, giving its free pages back
/// to the file system. It needs the file to itself (no daemon running):
/// the store is first opened as usual, so the journal's writes are in the
/// file, then closed and reopened bare for redb's `compact`.
pub fn compact(path: &Path) -> Result<Compaction, StoreError> {
    let before_bytes = std::fs::metadata(path)?.len();
    drop(Store::open(path)?);
    let mut db = Database::create(path)?;
    // Each pass moves what it can towards the start; stop when one moves nothing.
    for _ in 0..8 {
        if !db
            .compact()
            .map_err(|e| StoreError::Db(redb::Error::from(e)))?
        {
            break;
        }
    }
    drop(db);
    Ok(Compaction {
        before_bytes,
        after_bytes: std::fs::metadata(path)?.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::AGENTS;

    #[test]
    fn stats_count_rows_and_compaction_shrinks_a_file_emptied_of_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let store = Store::open(&path).unwrap();
        let value = vec![7u8; 4096];
        let tx = store.db().unwrap().begin_write().unwrap();
        {
            let mut table = tx.open_table(AGENTS).unwrap();
            for i in 0..2000 {
                table
                    .insert(format!("a{i}").as_str(), value.as_slice())
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        let s = stats(&store).unwrap();
        let agents = s.tables.iter().find(|t| t.name == "agents.v1").unwrap();
        assert_eq!(agents.rows, 2000);
        assert!(agents.stored_bytes >= 2000 * 4096);
        assert!(s.file_bytes >= s.allocated_bytes);

        let tx = store.db().unwrap().begin_write().unwrap();
        tx.open_table(AGENTS).unwrap().retain(|_, _| false).unwrap();
        tx.commit().unwrap();
        drop(store);
        let done = compact(&path).unwrap();
        assert!(
            done.after_bytes * 2 < done.before_bytes,
            "{done:?}: the emptied pages are given back"
        );
        let store = Store::open(&path).unwrap();
        let s = stats(&store).unwrap();
        // Opening commits again (the journal's checkpoint), which may grow it a little.
        assert!(s.file_bytes * 2 < done.before_bytes);
        assert_eq!(
            s.tables
                .iter()
                .find(|t| t.name == "agents.v1")
                .unwrap()
                .rows,
            0
        );
    }
}
