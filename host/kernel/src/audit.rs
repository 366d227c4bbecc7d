//! The audit trail: an append-only SHA-256 hash chain of security-relevant events.
//!
//! Each entry's hash covers its own fields and the previous entry's hash, so
//! editing, removing or reordering any stored entry breaks the chain at that
//! point, and [`verify`] names the first broken link. Fields are hashed with
//! tags (`\x1f<name>=`) so bytes cannot be shifted from one field to another.
//!
//! Entries are appended inside the same write transaction as the change they
//! record (spawning an agent and its `agent_spawned` entry commit together), so
//! the trail never claims something that did not happen, nor misses something
//! that did.

use chrono::{DateTime, SecondsFormat, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{self, AUDIT, Store, StoreError};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const TABLE: &str = "audit.v1";

/// Something to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// What happened, in snake case: `agent_spawned`, `config_changed`, `plugin_installed`...
    pub event_type: String,
    /// The agent concerned, if any.
    pub agent_id: Option<String>,
    /// Human-readable details.
    pub details: String,
    /// `ok`, `denied`, or an error text.
    pub outcome: String,
}

impl AuditEvent {
    /// A successful event without an agent.
    pub fn new(event_type: &str, details: impl Into<String>) -> Self {
        Self {
            event_type: event_type.to_string(),
            agent_id: None,
            details: details.into(),
            outcome: "ok".to_string(),
        }
    }

    /// The same event, about `agent_id`.
    pub fn agent(mut self, agent_id: impl ToString) -> Self {
        self.agent_id = Some(agent_id.to_string());
        self
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub id: u64,
    /// When it was appended (RFC 3339, UTC).
    pub timestamp: DateTime<Utc>,
    /// What happened.
    pub event_type: String,
    /// The agent concerned, if any.
    pub agent_id: Option<String>,
    /// Human-readable details.
    pub details: String,
    /// `ok`, `denied`, or an error text.
    pub outcome: String,
    /// Hash of the previous entry ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// SHA-256 of this entry's fields and `prev_hash`, lowercase hex.
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry should have.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |name: &str, value: &str| {
            h.update([0x1f]);
            h.update(name.as_bytes());
            h.update([b'=']);
            h.update(value.as_bytes());
        };
        field("id", &self.id.to_string());
        field(
            "timestamp",
            &self.timestamp.to_rfc3339_opts(SecondsFormat::Nanos, true),
        );
        field("event_type", &self.event_type);
        field("agent_id", self.agent_id.as_deref().unwrap_or(""));
        field("details", &self.details);
        field("outcome", &self.outcome);
        field("prev_hash", &self.prev_hash);
        hex::encode(h.finalize())
    }
}

/// Appends `event` inside an open write transaction.
pub(crate) fn append_in(
    tx: &WriteTransaction,
    event: AuditEvent,
) -> Result<AuditEntry, StoreError> {
    let mut table = tx.open_table(AUDIT)?;
    let (id, prev_hash) = match table.last()? {
        Some((k, v)) => {
            let last: AuditEntry = store::decode(TABLE, v.value())?;
            (k.value() + 1, last.hash)
        }
        None => (1, GENESIS_HASH.to_string()),
    };
    let mut entry = AuditEntry {
        id,
        timestamp: Utc::now(),
        event_type: event.event_type,
        agent_id: event.agent_id,
        details: event.details,
        outcome: event.outcome,
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    let bytes = store::encode(TABLE, &entry)?;
    table.insert(id, bytes.as_slice())?;
    Ok(entry)
}

/// Appends one event in its own transaction.
pub(crate) fn append(store: &Store, event: AuditEvent) -> Result<AuditEntry, StoreError> {
    let tx = store.db().begin_write()?;
    let entry = append_in(&tx, event)?;
    tx.commit()?;
    Ok(entry)
}

/// The newest `limit` entries, newest first, and the chain's length.
pub(crate) fn recent(store: &Store, limit: usize) -> Result<(Vec<AuditEntry>, u64), StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(AUDIT)?;
    let total = table.len()?;
    let mut out = Vec::with_capacity(limit.min(total as usize));
    for entry in table.iter()?.rev().take(limit) {
        let (_, v) = entry?;
        out.push(store::decode(TABLE, v.value())?);
    }
    Ok((out, total))
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokenLink {
    /// The first entry that does not verify.
    pub id: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// Number of entries.
    pub chain_length: u64,
    /// Timestamp of the first entry.
    pub first_entry: Option<DateTime<Utc>>,
    /// Timestamp of the last entry.
    pub last_entry: Option<DateTime<Utc>>,
    /// Hash of the last entry.
    pub tip_hash: Option<String>,
    /// The first broken link, if any.
    pub first_broken: Option<BrokenLink>,
}

impl Verification {
    /// True when every link holds.
    pub fn is_valid(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Walks the whole chain, recomputing every hash and link.
pub fn verify(store: &Store) -> Result<Verification, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(AUDIT)?;
    let mut result = Verification {
        chain_length: table.len()?,
        first_entry: None,
        last_entry: None,
        tip_hash: None,
        first_broken: None,
    };
    let mut expected_prev = GENESIS_HASH.to_string();
    let mut expected_id = 1u64;
    for item in table.iter()? {
        let (key, value) = item?;
        let key = key.value();
        let broken = |reason: String| BrokenLink { id: key, reason };
        let entry: AuditEntry = match store::decode(TABLE, value.value()) {
            Ok(entry) => entry,
            Err(e) => {
                result.first_broken = Some(broken(format!("entry cannot be decoded: {e}")));
                break;
            }
        };
        let problem = if key != expected_id {
            Some(format!(
                "expected entry {expected_id}, found {key}: entries were removed"
            ))
        } else if entry.id != key {
            Some(format!("entry stored under {key} claims id {}", entry.id))
        } else if entry.prev_hash != expected_prev {
            Some("prev_hash does not match the previous entry's hash".to_string())
        } else if entry.compute_hash() != entry.hash {
            Some("hash does not match the entry's contents: the entry was altered".to_string())
        } else {
            None
        };
        if let Some(reason) = problem {
            result.first_broken = Some(broken(reason));
            break;
        }
        result.first_entry.get_or_insert(entry.timestamp);
        result.last_entry = Some(entry.timestamp);
        result.tip_hash = Some(entry.hash.clone());
        expected_prev = entry.hash;
        expected_id += 1;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn chain_links_and_verifies() {
        let (_dir, store) = store();
        let a = append(&store, AuditEvent::new("one", "first")).unwrap();
        let b = append(&store, AuditEvent::new("two", "second").agent("x")).unwrap();
        assert_eq!(a.prev_hash, GENESIS_HASH);
        assert_eq!(b.prev_hash, a.hash);
        let v = verify(&store).unwrap();
        assert!(v.is_valid());
        assert_eq!(v.chain_length, 2);
        assert_eq!(v.tip_hash.as_deref(), Some(b.hash.as_str()));
    }

    #[test]
    fn an_edited_entry_is_found() {
        let (_dir, store) = store();
        for i in 0..5 {
            append(&store, AuditEvent::new("e", format!("entry {i}"))).unwrap();
        }
        let tx = store.db().begin_write().unwrap();
        {
            let mut table = tx.open_table(AUDIT).unwrap();
            let mut entry: AuditEntry =
                store::decode(TABLE, table.get(3).unwrap().unwrap().value()).unwrap();
            entry.details = "entry 2, edited".into();
            let bytes = store::encode(TABLE, &entry).unwrap();
            table.insert(3, bytes.as_slice()).unwrap();
        }
        tx.commit().unwrap();
        let v = verify(&store).unwrap();
        assert_eq!(v.first_broken.unwrap().id, 3);
    }

    #[test]
    fn a_removed_entry_is_found() {
        let (_dir, store) = store();
        for i in 0..4 {
            append(&store, AuditEvent::new("e", format!("entry {i}"))).unwrap();
        }
        let tx = store.db().begin_write().unwrap();
        tx.open_table(AUDIT).unwrap().remove(2).unwrap();
        tx.commit().unwrap();
        let broken = verify(&store).unwrap().first_broken.unwrap();
        assert_eq!(broken.id, 3);
        assert!(broken.reason.contains("removed"));
    }
}
