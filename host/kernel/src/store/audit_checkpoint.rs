//! Checkpoints of the audit chain, and pruning the entries before one.
//!
//! A checkpoint cuts the chain after entry `seq`, whose hash is `head_hash`.
//! Making one appends an `audit_checkpoint` entry to the chain itself (its
//! details are `{"seq":..,"head_hash":".."}` and its `prev_hash` is
//! `head_hash`, as for any entry) and stores a record in
//! `audit_checkpoints.v1` with its own SHA-256 over its tagged fields. After
//! that, the entries up to `seq` may be removed ([`prune`]): verification
//! starts at the newest checkpoint, expecting entry `seq + 1` to be that
//! checkpoint's own entry linked to `head_hash`. The record alone proves
//! nothing (anyone who can edit the file can write one); what it claims is
//! checked against the chain's entry, which is covered by every later hash,
//! so a forged or edited record breaks verification like an edited entry.
//!
//! Pruning removes entries in batches of [`PRUNE_BATCH`], each its own write
//! transaction, so a long chain never holds the writer for long; an
//! interrupted prune leaves entries before the cut that verification skips
//! and the next prune removes.

use chrono::{DateTime, SecondsFormat, Utc};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::audit::{self, AuditEvent, BrokenLink};
use super::tables::{AUDIT, AUDIT_CHECKPOINTS};
use super::{Store, StoreError};

/// The event type of the chain's entry recording a checkpoint.
pub const CHECKPOINT_EVENT: &str = "audit_checkpoint";

/// Entries removed per write transaction.
pub const PRUNE_BATCH: usize = 1000;

const TABLE: &str = "audit_checkpoints.v1";

/// A cut of the audit chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Checkpoint {
    /// The last entry before the cut (0 when the chain was empty).
    pub seq: u64,
    /// That entry's hash ([`audit::GENESIS_HASH`] when the chain was empty).
    pub head_hash: String,
    /// The chain's entry recording this checkpoint: always `seq + 1`.
    pub entry_id: u64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// SHA-256 of the fields above, tagged as the chain's entries are.
    pub hash: String,
}

impl Checkpoint {
    /// The hash this record should have.
    pub fn compute_hash(&self) -> String {
        let mut pre = Vec::with_capacity(160);
        let created = self.created_at.to_rfc3339_opts(SecondsFormat::Nanos, true);
        for (name, value) in [
            ("seq", self.seq.to_string()),
            ("head_hash", self.head_hash.clone()),
            ("entry_id", self.entry_id.to_string()),
            ("created_at", created),
        ] {
            pre.push(0x1f);
            pre.extend_from_slice(name.as_bytes());
            pre.push(b'=');
            pre.extend_from_slice(value.as_bytes());
        }
        hex::encode(Sha256::digest(pre))
    }

    /// The details of the chain's entry recording this checkpoint.
    pub fn entry_details(&self) -> String {
        format!(
            "{{\"seq\":{},\"head_hash\":\"{}\"}}",
            self.seq, self.head_hash
        )
    }
}

/// Appends a checkpoint at the chain's current head, in one transaction
/// with its entry.
pub fn checkpoint(store: &Store) -> Result<Checkpoint, StoreError> {
    let tx = store.db()?.begin_write()?;
    let done = checkpoint_in(&tx, store.now())?;
    tx.commit()?;
    Ok(done)
}

fn checkpoint_in(tx: &WriteTransaction, now: DateTime<Utc>) -> Result<Checkpoint, StoreError> {
    let (seq, head_hash) = {
        let table = tx.open_table(AUDIT)?;
        match table.last()? {
            Some((k, v)) => {
                let bytes = v.value();
                if bytes.len() < 32 {
                    return Err(StoreError::Corrupt {
                        table: "audit.v2",
                        message: format!("entry {} shorter than its hash", k.value()),
                    });
                }
                (k.value(), hex::encode(&bytes[..32]))
            }
            None => (0, audit::GENESIS_HASH.to_string()),
        }
    };
    let mut record = Checkpoint {
        seq,
        head_hash,
        entry_id: seq + 1,
        created_at: now,
        hash: String::new(),
    };
    let entry = audit::append_in(
        tx,
        now,
        AuditEvent::new(CHECKPOINT_EVENT, record.entry_details()),
    )?;
    debug_assert_eq!(entry.id, record.entry_id);
    record.hash = record.compute_hash();
    let json = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt {
        table: TABLE,
        message: e.to_string(),
    })?;
    tx.open_table(AUDIT_CHECKPOINTS)?
        .insert(seq, json.as_slice())?;
    Ok(record)
}

/// The newest checkpoint, if any.
pub fn latest(store: &Store) -> Result<Option<Checkpoint>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(AUDIT_CHECKPOINTS)?;
    let Some((_, value)) = table.last()? else {
        return Ok(None);
    };
    decode(value.value()).map(Some)
}

fn decode(bytes: &[u8]) -> Result<Checkpoint, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table: TABLE,
        message: e.to_string(),
    })
}

/// Removes the entries before the newest checkpoint, [`PRUNE_BATCH`] per
/// transaction; returns how many were removed (0 without a checkpoint).
pub fn prune(store: &Store) -> Result<u64, StoreError> {
    let Some(cut) = latest(store)? else {
        return Ok(0);
    };
    let mut removed = 0;
    loop {
        let tx = store.db()?.begin_write()?;
        let n = {
            let mut table = tx.open_table(AUDIT)?;
            let keys: Vec<u64> = table
                .range(..=cut.seq)?
                .take(PRUNE_BATCH)
                .map(|item| item.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()?;
            for key in &keys {
                table.remove(key)?;
            }
            keys.len()
        };
        tx.commit()?;
        removed += n as u64;
        if n < PRUNE_BATCH {
            return Ok(removed);
        }
    }
}

/// What [`checkpoint_and_prune`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pruned {
    /// The checkpoint made.
    pub checkpoint: Checkpoint,
    /// Entries removed before it.
    pub pruned: u64,
}

/// Why [`checkpoint_and_prune`] did nothing.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The chain does not verify: pruning could remove the entries showing
    /// where it broke, so nothing is cut.
    #[error("not pruning a broken audit chain: entry {} does not verify ({})", .0.id, .0.reason)]
    Broken(BrokenLink),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies the chain, then checkpoints it at its head and removes every
/// entry before the cut; a broken chain is left as it is.
pub fn checkpoint_and_prune(store: &Store) -> Result<Pruned, PruneError> {
    if let Some(broken) = audit::verify(store)?.first_broken {
        return Err(PruneError::Broken(broken));
    }
    let checkpoint = checkpoint(store)?;
    let pruned = prune(store)?;
    Ok(Pruned { checkpoint, pruned })
}

#[cfg(test)]
mod tests {
    use super::audit::{append, verify};
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        (dir, store)
    }

    fn fill(store: &Store, n: usize) {
        for i in 0..n {
            append(store, AuditEvent::new("e", format!("entry {i}"))).unwrap();
        }
    }

    #[test]
    fn a_pruned_chain_verifies_from_its_checkpoint() {
        let (_dir, store) = store();
        fill(&store, 2500);
        let done = checkpoint_and_prune(&store).unwrap();
        assert_eq!(done.checkpoint.seq, 2500);
        assert_eq!(done.pruned, 2500);
        fill(&store, 3);
        let v = verify(&store).unwrap();
        assert!(v.is_valid(), "{:?}", v.first_broken);
        assert_eq!(v.chain_length, 4);
        assert_eq!(v.first_id, Some(2501));
        assert_eq!(v.checkpoint.as_ref(), Some(&done.checkpoint));
        // A second cut verifies from the newer one.
        let again = checkpoint_and_prune(&store).unwrap();
        assert_eq!((again.checkpoint.seq, again.pruned), (2504, 4));
        assert!(verify(&store).unwrap().is_valid());
    }

    #[test]
    fn an_empty_chain_checkpoints_at_genesis() {
        let (_dir, store) = store();
        let done = checkpoint_and_prune(&store).unwrap();
        assert_eq!(done.checkpoint.seq, 0);
        assert_eq!(done.checkpoint.head_hash, audit::GENESIS_HASH);
        assert!(verify(&store).unwrap().is_valid());
    }

    #[test]
    fn entries_left_before_the_cut_are_skipped() {
        let (_dir, store) = store();
        fill(&store, 5);
        let cut = checkpoint(&store).unwrap();
        let v = verify(&store).unwrap();
        assert!(v.is_valid());
        assert_eq!(v.before_checkpoint, 5);
        assert_eq!(v.first_id, Some(cut.entry_id));
        assert_eq!(prune(&store).unwrap(), 5);
        assert_eq!(verify(&store).unwrap().before_checkpoint, 0);
    }

    fn edit_record(store: &Store, change: impl FnOnce(&mut Checkpoint)) {
        let mut record = latest(store).unwrap().unwrap();
        let key = record.seq;
        change(&mut record);
        let tx = store.db().unwrap().begin_write().unwrap();
        {
            let mut table = tx.open_table(AUDIT_CHECKPOINTS).unwrap();
            table.remove(key).unwrap();
            table
                .insert(record.seq, serde_json::to_vec(&record).unwrap().as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn an_edited_checkpoint_record_is_found() {
        let (_dir, store) = store();
        fill(&store, 4);
        checkpoint_and_prune(&store).unwrap();
        edit_record(&store, |r| r.head_hash = "ab".repeat(32));
        let broken = verify(&store).unwrap().first_broken.unwrap();
        assert!(broken.reason.contains("checkpoint"), "{}", broken.reason);
    }

    #[test]
    fn a_forged_checkpoint_that_hides_removed_entries_is_found() {
        // Entries 3..=5 removed and a record written (hash and all) claiming
        // a cut after entry 5: entry 6 is not a checkpoint's entry.
        let (_dir, store) = store();
        fill(&store, 8);
        checkpoint(&store).unwrap();
        let head5 = {
            let tx = store.db().unwrap().begin_read().unwrap();
            let t = tx.open_table(AUDIT).unwrap();
            hex::encode(&t.get(5).unwrap().unwrap().value()[..32])
        };
        edit_record(&store, |r| {
            r.seq = 5;
            r.entry_id = 6;
            r.head_hash = head5;
            r.hash = r.compute_hash();
        });
        let broken = verify(&store).unwrap().first_broken.unwrap();
        assert_eq!(broken.id, 6);
        assert!(broken.reason.contains("checkpoint"), "{}", broken.reason);
    }

    #[test]
    fn an_edited_kept_entry_is_named() {
        let (_dir, store) = store();
        fill(&store, 3);
        checkpoint_and_prune(&store).unwrap();
        fill(&store, 3);
        let tx = store.db().unwrap().begin_write().unwrap();
        {
            let mut t = tx.open_table(AUDIT).unwrap();
            let mut bytes = t.get(6).unwrap().unwrap().value().to_vec();
            let at = bytes.len() - 80;
            bytes[at] ^= 1;
            t.insert(6, bytes.as_slice()).unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(verify(&store).unwrap().first_broken.unwrap().id, 6);
        // A broken chain is not cut: the evidence stays.
        let refused = checkpoint_and_prune(&store).unwrap_err();
        assert!(
            matches!(refused, PruneError::Broken(ref b) if b.id == 6),
            "{refused}"
        );
        assert_eq!(
            verify(&store).unwrap().chain_length,
            4,
            "nothing more was cut"
        );
    }
}
