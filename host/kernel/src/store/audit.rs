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
//!
//! Storage (`audit.v2`): each entry is stored as its 32-byte hash followed by
//! the exact bytes that were hashed (the tagged fields, `prev_hash` last).
//! Verifying is then a hash of the stored bytes and two byte comparisons per
//! entry, with no decoding: a million entries verify in well under a second.
//! Entries are decoded from those same bytes for display, so what is shown is
//! what was hashed. `audit.v1` (JSON) entries are converted by migration 6
//! with their hashes unchanged, so a chain stays valid, or stays broken where
//! it was edited.

use chrono::{DateTime, SecondsFormat, Utc};
use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::audit_checkpoint::{CHECKPOINT_EVENT, Checkpoint};
use super::tables::{AUDIT, AUDIT_CHECKPOINTS, AUDIT_V1};
use super::{Store, StoreError};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const TABLE: &str = "audit.v2";

/// The field separator; replaced in appended values so fields cannot be forged.
const SEP: u8 = 0x1f;
/// What a separator inside a value becomes (U+241F SYMBOL FOR UNIT SEPARATOR).
const SEP_REPLACEMENT: &str = "\u{241F}";
/// The order fields are hashed in.
const FIELDS: [&str; 7] = [
    "id",
    "timestamp",
    "event_type",
    "agent_id",
    "details",
    "outcome",
    "prev_hash",
];

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
    /// What happened, in snake case. An entry stored under a name retired
    /// since (`PluginInstalled`) reads under the current one
    /// (`plugin_installed`); `hash` covers the name as stored.
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
    /// The bytes the hash covers: each field as `\x1f<name>=<value>`, in
    /// [`FIELDS`] order, `prev_hash` last.
    pub fn preimage(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.details.len());
        let timestamp = self.timestamp.to_rfc3339_opts(SecondsFormat::Nanos, true);
        let id = self.id.to_string();
        let values = [
            id.as_str(),
            timestamp.as_str(),
            &self.event_type,
            self.agent_id.as_deref().unwrap_or(""),
            &self.details,
            &self.outcome,
            &self.prev_hash,
        ];
        for (name, value) in FIELDS.iter().zip(values) {
            out.push(SEP);
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// The hash this entry should have.
    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(self.preimage()))
    }

    /// The stored form: the hash's 32 bytes, then the preimage. A hash that
    /// is not 64 hex digits (only possible in a tampered v1 entry) is stored
    /// as zeros, which never verifies.
    fn encode(&self) -> Vec<u8> {
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(&self.hash, &mut hash).is_err() {
            hash = [0u8; 32];
        }
        let mut out = hash.to_vec();
        out.extend_from_slice(&self.preimage());
        out
    }

    /// Reads an entry back from its stored form.
    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |message: &str| StoreError::Corrupt {
            table: TABLE,
            message: message.to_string(),
        };
        if bytes.len() < 32 {
            return Err(corrupt("entry shorter than its hash"));
        }
        let (hash, pre) = bytes.split_at(32);
        let mut values: Vec<&[u8]> = Vec::with_capacity(FIELDS.len());
        let mut rest = pre;
        for (i, name) in FIELDS.iter().enumerate() {
            let tag_len = 1 + name.len() + 1;
            let tag_ok = rest.len() >= tag_len
                && rest[0] == SEP
                && &rest[1..1 + name.len()] == name.as_bytes()
                && rest[tag_len - 1] == b'=';
            if !tag_ok {
                return Err(corrupt(&format!("field `{name}` missing")));
            }
            rest = &rest[tag_len..];
            let end = match FIELDS.get(i + 1) {
                // The value runs to the next field's tag.
                Some(next) => {
                    let mut tag = vec![SEP];
                    tag.extend_from_slice(next.as_bytes());
                    tag.push(b'=');
                    find(rest, &tag).ok_or_else(|| corrupt(&format!("field `{next}` missing")))?
                }
                None => rest.len(),
            };
            values.push(&rest[..end]);
            rest = &rest[end..];
        }
        let text = |i: usize| {
            String::from_utf8(values[i].to_vec()).map_err(|_| corrupt("field is not UTF-8"))
        };
        let id = text(0)?
            .parse()
            .map_err(|_| corrupt("id is not a number"))?;
        let timestamp = DateTime::parse_from_rfc3339(&text(1)?)
            .map_err(|_| corrupt("timestamp is not RFC 3339"))?
            .with_timezone(&Utc);
        let agent_id = text(3)?;
        Ok(AuditEntry {
            id,
            timestamp,
            event_type: current_name(text(2)?),
            agent_id: (!agent_id.is_empty()).then_some(agent_id),
            details: text(4)?,
            outcome: text(5)?,
            prev_hash: text(6)?,
            hash: hex::encode(hash),
        })
    }
}

/// Event names retired for the snake case every other event uses, and
/// their current names.
const RETIRED_NAMES: &[(&str, &str)] = &[
    ("PluginInstalled", "plugin_installed"),
    ("PluginUninstalled", "plugin_uninstalled"),
    ("PluginEnabled", "plugin_enabled"),
    ("PluginDisabled", "plugin_disabled"),
    ("PluginReloaded", "plugin_reloaded"),
    ("PluginSigned", "plugin_signed"),
];

/// An event name as read today: entries stored under a retired name read
/// under its current one. Stored bytes are never rewritten (the chain's
/// hashes cover them), so only reading renames.
fn current_name(stored: String) -> String {
    match RETIRED_NAMES.iter().find(|(old, _)| *old == stored) {
        Some((_, new)) => (*new).to_string(),
        None => stored,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Keeps separators out of values, so a value cannot forge a field boundary.
fn clean(value: String) -> String {
    if value.as_bytes().contains(&SEP) {
        value.replace(SEP as char, SEP_REPLACEMENT)
    } else {
        value
    }
}

/// Appends `event` inside an open write transaction.
pub(crate) fn append_in(
    tx: &WriteTransaction,
    now: DateTime<Utc>,
    event: AuditEvent,
) -> Result<AuditEntry, StoreError> {
    let mut table = tx.open_table(AUDIT)?;
    let (id, prev_hash) = match table.last()? {
        Some((k, v)) => {
            let bytes = v.value();
            if bytes.len() < 32 {
                return Err(StoreError::Corrupt {
                    table: TABLE,
                    message: format!("entry {} shorter than its hash", k.value()),
                });
            }
            (k.value() + 1, hex::encode(&bytes[..32]))
        }
        None => (1, GENESIS_HASH.to_string()),
    };
    let mut entry = AuditEntry {
        id,
        timestamp: now,
        event_type: clean(event.event_type),
        agent_id: event.agent_id.map(clean),
        details: clean(event.details),
        outcome: clean(event.outcome),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    table.insert(id, entry.encode().as_slice())?;
    Ok(entry)
}

/// Appends one event in its own transaction.
pub fn append(store: &Store, event: AuditEvent) -> Result<AuditEntry, StoreError> {
    let tx = store.db()?.begin_write()?;
    let entry = append_in(&tx, store.now(), event)?;
    tx.commit()?;
    Ok(entry)
}

/// Appends one event in its own transaction without syncing it: the entry
/// is in the chain (and readable) at once, and reaches the disk with the
/// next durable commit (any other store write, the journal's checkpoint,
/// shutdown). For frequent events whose per-event sync would cost more than
/// the work they record (`/mcp` tool calls); a crash may lose the newest
/// such entries, never break the chain, since what survives is the state of
/// a durable commit.
pub fn append_unsynced(store: &Store, event: AuditEvent) -> Result<AuditEntry, StoreError> {
    let mut tx = store.db()?.begin_write()?;
    tx.set_durability(Durability::None)
        .map_err(|e| StoreError::Db(redb::Error::from(e)))?;
    let entry = append_in(&tx, store.now(), event)?;
    tx.commit()?;
    Ok(entry)
}

/// Appends many events in one transaction (imports, benchmarks); returns how many.
pub fn append_many<I>(store: &Store, events: I) -> Result<u64, StoreError>
where
    I: IntoIterator<Item = AuditEvent>,
{
    let tx = store.db()?.begin_write()?;
    let mut n = 0;
    for event in events {
        append_in(&tx, store.now(), event)?;
        n += 1;
    }
    tx.commit()?;
    Ok(n)
}

/// The newest `limit` entries, newest first, and the chain's length.
pub(crate) fn recent(store: &Store, limit: usize) -> Result<(Vec<AuditEntry>, u64), StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(AUDIT)?;
    let total = table.len()?;
    let mut out = Vec::with_capacity(limit.min(total as usize));
    for entry in table.iter()?.rev().take(limit) {
        let (_, v) = entry?;
        out.push(AuditEntry::decode(v.value())?);
    }
    Ok((out, total))
}

/// Every entry about `agent_id`, newest first.
///
/// The chain has no per-agent index, so this walks it; entries are matched on
/// their stored bytes (the tagged `agent_id` field) and only matches are decoded.
pub(crate) fn of_agent(store: &Store, agent_id: &str) -> Result<Vec<AuditEntry>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(AUDIT)?;
    let mut needle = vec![SEP];
    needle.extend_from_slice(b"agent_id=");
    needle.extend_from_slice(clean(agent_id.to_string()).as_bytes());
    needle.push(SEP);
    needle.extend_from_slice(b"details=");
    let mut out = Vec::new();
    for entry in table.iter()?.rev() {
        let (_, v) = entry?;
        if find(v.value(), &needle).is_some() {
            out.push(AuditEntry::decode(v.value())?);
        }
    }
    Ok(out)
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
    /// The first entry verified: 1, or the newest checkpoint's own entry.
    pub first_id: Option<u64>,
    /// The newest checkpoint, where verification started
    /// ([`super::audit_checkpoint`]).
    pub checkpoint: Option<Checkpoint>,
    /// Entries still stored before that checkpoint (an interrupted prune),
    /// not verified.
    pub before_checkpoint: u64,
}

impl Verification {
    /// True when every link holds.
    pub fn is_valid(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Walks the whole chain: every entry's stored bytes must hash to its stored
/// hash, name its own position, and end with the previous entry's hash.
/// With a checkpoint, the walk starts at the newest one's entry, which must
/// link to the checkpoint's head hash and record the same cut.
pub fn verify(store: &Store) -> Result<Verification, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(AUDIT)?;
    // An unreadable record is reported as a break, not an error: it is as
    // much a sign of tampering as an edited entry.
    let (cut, unreadable) = match tx.open_table(AUDIT_CHECKPOINTS)?.last()? {
        Some((k, v)) => match serde_json::from_slice::<Checkpoint>(v.value()) {
            Ok(cut) => (Some(cut), None),
            Err(e) => (None, Some((k.value(), e))),
        },
        None => (None, None),
    };
    let mut result = Verification {
        chain_length: table.len()?,
        first_entry: None,
        last_entry: None,
        tip_hash: None,
        first_broken: None,
        first_id: None,
        checkpoint: cut.clone(),
        before_checkpoint: 0,
    };
    if let Some((seq, e)) = unreadable {
        result.first_broken = Some(BrokenLink {
            id: seq + 1,
            reason: format!("the checkpoint record after entry {seq} is unreadable: {e}"),
        });
        return Ok(result);
    }
    let mut prev = [0u8; 32];
    let mut prev_hex = [b'0'; 64];
    let mut expected_id = 1u64;
    // The checkpoint's own entry, and the details it must have.
    let mut cut_entry: Option<(u64, Vec<u8>)> = None;
    if let Some(cut) = &cut {
        let sound = cut.hash == cut.compute_hash()
            && cut.entry_id == cut.seq + 1
            && hex::decode_to_slice(&cut.head_hash, &mut prev).is_ok();
        if !sound {
            result.first_broken = Some(BrokenLink {
                id: cut.entry_id,
                reason: format!(
                    "the checkpoint record after entry {} was altered: its hash does not match",
                    cut.seq
                ),
            });
            return Ok(result);
        }
        prev_hex.copy_from_slice(cut.head_hash.as_bytes());
        expected_id = cut.entry_id;
        result.before_checkpoint = table.range(..cut.entry_id)?.count() as u64;
        let mut details = b"\x1fevent_type=".to_vec();
        details.extend_from_slice(CHECKPOINT_EVENT.as_bytes());
        details.extend_from_slice(b"\x1fagent_id=\x1fdetails=");
        details.extend_from_slice(cut.entry_details().as_bytes());
        details.extend_from_slice(b"\x1foutcome=");
        cut_entry = Some((cut.entry_id, details));
    }
    let first_id = expected_id;
    let mut id_prefix = Vec::with_capacity(32);
    for item in table.range(first_id..)? {
        let (key, value) = item?;
        let key = key.value();
        let bytes = value.value();
        id_prefix.clear();
        id_prefix.push(SEP);
        id_prefix.extend_from_slice(b"id=");
        id_prefix.extend_from_slice(key.to_string().as_bytes());
        id_prefix.push(SEP);
        const PREV_TAG: &[u8] = b"\x1fprev_hash=";
        let problem = if key != expected_id {
            Some(format!(
                "expected entry {expected_id}, found {key}: entries were removed"
            ))
        } else if bytes.len() < 32 + id_prefix.len() + PREV_TAG.len() + 64 {
            Some("entry is truncated".to_string())
        } else {
            let (hash, pre) = bytes.split_at(32);
            let tail = &pre[pre.len() - 64 - PREV_TAG.len()..];
            if !pre.starts_with(&id_prefix) {
                Some(format!("entry stored under {key} claims another id"))
            } else if &tail[..PREV_TAG.len()] != PREV_TAG || tail[PREV_TAG.len()..] != prev_hex {
                Some("prev_hash does not match the previous entry's hash".to_string())
            } else if Sha256::digest(pre).as_slice() != hash {
                Some("hash does not match the entry's contents: the entry was altered".to_string())
            } else if let Some((_, details)) = cut_entry.as_ref().filter(|(id, _)| *id == key)
                && find(pre, details).is_none()
            {
                Some(
                    "the checkpoint record names this entry, which does not record that checkpoint"
                        .to_string(),
                )
            } else {
                None
            }
        };
        if let Some(reason) = problem {
            result.first_broken = Some(BrokenLink { id: key, reason });
            break;
        }
        prev.copy_from_slice(&bytes[..32]);
        if hex::encode_to_slice(prev, &mut prev_hex).is_err() {
            unreachable!("32 bytes always encode to 64 hex digits");
        }
        expected_id += 1;
    }
    // Only the ends of the verified part are decoded, for their timestamps.
    let verified = expected_id - 1;
    if verified >= first_id {
        result.first_id = Some(first_id);
        let timestamp = |id: u64| -> Result<Option<DateTime<Utc>>, StoreError> {
            Ok(table
                .get(id)?
                .and_then(|v| AuditEntry::decode(v.value()).ok())
                .map(|e| e.timestamp))
        };
        result.first_entry = timestamp(first_id)?;
        result.last_entry = timestamp(verified)?;
        result.tip_hash = Some(hex::encode(prev));
    }
    Ok(result)
}

/// Migration 6: converts `audit.v1` (JSON) entries into `audit.v2` with their
/// stored hashes unchanged, then drops `audit.v1`. An entry that was edited
/// keeps its old hash and so still fails verification; one that cannot even
/// be decoded is stored so that it fails too.
pub(crate) fn migrate_v1_to_v2(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut v2 = tx.open_table(AUDIT)?;
    {
        let v1 = tx.open_table(AUDIT_V1)?;
        for item in v1.iter()? {
            let (key, value) = item?;
            let stored = match serde_json::from_slice::<AuditEntry>(value.value()) {
                Ok(entry) => entry.encode(),
                Err(_) => {
                    let mut out = vec![0u8; 32];
                    out.extend_from_slice(b"\x1fcorrupt=");
                    out.extend_from_slice(value.value());
                    out
                }
            };
            v2.insert(key.value(), stored.as_slice())?;
        }
    }
    tx.delete_table(AUDIT_V1)?;
    Ok(())
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
    fn entries_of_one_agent_newest_first() {
        let (_dir, store) = store();
        append(&store, AuditEvent::new("spawned", "a").agent("agent-a")).unwrap();
        append(&store, AuditEvent::new("spawned", "b").agent("agent-b")).unwrap();
        // Naming the agent in the details is not being about it.
        append(&store, AuditEvent::new("note", "agent_id=agent-a")).unwrap();
        append(&store, AuditEvent::new("stopped", "a").agent("agent-a")).unwrap();
        let entries = of_agent(&store, "agent-a").unwrap();
        let types: Vec<&str> = entries.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["stopped", "spawned"]);
        assert!(of_agent(&store, "agent").unwrap().is_empty());
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
    fn unsynced_entries_chain_at_once_and_are_kept_by_the_next_durable_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let store = Store::open(&path).unwrap();
        let a = append_unsynced(&store, AuditEvent::new("mcp_tool_call", "tool=a")).unwrap();
        let b = append_unsynced(&store, AuditEvent::new("mcp_tool_call", "tool=b")).unwrap();
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(recent(&store, 10).unwrap().1, 2, "readable before any sync");
        let c = append(&store, AuditEvent::new("durable", "c")).unwrap();
        assert_eq!(c.prev_hash, b.hash);
        drop(store);
        let store = Store::open(&path).unwrap();
        let v = verify(&store).unwrap();
        assert!(v.is_valid());
        assert_eq!(v.chain_length, 3);
        assert_eq!(v.tip_hash.as_deref(), Some(c.hash.as_str()));
    }

    #[test]
    fn retired_names_read_as_current_ones_and_still_verify() {
        let (_dir, store) = store();
        append(&store, AuditEvent::new("PluginInstalled", "{}")).unwrap();
        append(&store, AuditEvent::new("plugin_enabled", "{}")).unwrap();
        let (entries, _) = recent(&store, 10).unwrap();
        let types: Vec<&str> = entries.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["plugin_enabled", "plugin_installed"]);
        assert!(verify(&store).unwrap().is_valid());
    }

    #[test]
    fn an_edited_entry_is_found() {
        let (_dir, store) = store();
        for i in 0..5 {
            append(&store, AuditEvent::new("e", format!("entry {i}"))).unwrap();
        }
        let tx = store.db().unwrap().begin_write().unwrap();
        {
            let mut table = tx.open_table(AUDIT).unwrap();
            let mut entry = AuditEntry::decode(table.get(3).unwrap().unwrap().value()).unwrap();
            entry.details = "entry 2, edited".into();
            table.insert(3, entry.encode().as_slice()).unwrap();
        }
        tx.commit().unwrap();
        let v = verify(&store).unwrap();
        assert_eq!(v.first_broken.unwrap().id, 3);
    }

    #[test]
    fn entries_round_trip_and_separators_cannot_forge_fields() {
        let (_dir, store) = store();
        let e = append(
            &store,
            AuditEvent::new("e", "evil\x1foutcome=denied").agent("a"),
        )
        .unwrap();
        let (recent, total) = recent(&store, 10).unwrap();
        assert_eq!(total, 1);
        assert_eq!(recent[0], e);
        assert_eq!(recent[0].outcome, "ok");
        assert!(recent[0].details.contains('\u{241F}'));
        assert!(verify(&store).unwrap().is_valid());
    }

    #[test]
    fn v1_chains_migrate_with_their_hashes_and_their_breaks() {
        // Builds a v1 (JSON) chain of 4 with entry 3 edited after the fact.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let mut hashes = Vec::new();
        {
            let db = redb::Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap()
                .insert("schema_version", 3)
                .unwrap();
            {
                let mut t = tx.open_table(AUDIT_V1).unwrap();
                let mut prev = GENESIS_HASH.to_string();
                for id in 1..=4u64 {
                    let mut e = AuditEntry {
                        id,
                        timestamp: Utc::now(),
                        event_type: "e".into(),
                        agent_id: None,
                        details: format!("entry {id}"),
                        outcome: "ok".into(),
                        prev_hash: prev.clone(),
                        hash: String::new(),
                    };
                    e.hash = e.compute_hash();
                    prev = e.hash.clone();
                    hashes.push(e.hash.clone());
                    if id == 3 {
                        e.details = "entry 3, edited".into();
                    }
                    t.insert(id, serde_json::to_vec(&e).unwrap().as_slice())
                        .unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let (entries, total) = recent(&store, 10).unwrap();
        assert_eq!(total, 4);
        let mut migrated: Vec<String> = entries.iter().map(|e| e.hash.clone()).collect();
        migrated.reverse();
        assert_eq!(migrated, hashes, "hashes survive the migration");
        let broken = verify(&store).unwrap().first_broken.unwrap();
        assert_eq!(broken.id, 3);
        assert!(broken.reason.contains("altered"));
        // Appending continues the chain from the migrated tip.
        let next = append(&store, AuditEvent::new("e", "entry 5")).unwrap();
        assert_eq!(next.prev_hash, hashes[3]);
    }

    #[test]
    fn a_removed_entry_is_found() {
        let (_dir, store) = store();
        for i in 0..4 {
            append(&store, AuditEvent::new("e", format!("entry {i}"))).unwrap();
        }
        let tx = store.db().unwrap().begin_write().unwrap();
        tx.open_table(AUDIT).unwrap().remove(2).unwrap();
        tx.commit().unwrap();
        let broken = verify(&store).unwrap().first_broken.unwrap();
        assert_eq!(broken.id, 3);
        assert!(broken.reason.contains("removed"));
    }
}
