//! Agent key-value memory: JSON values under string keys, scoped to one agent.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use uuid::Uuid;

use crate::store::tables::KV;
use crate::store::{self, Store, StoreError};

/// Longest accepted key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest accepted value, in bytes of JSON.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

const TABLE: &str = "kv.v1";

/// Reads one value.
pub(crate) fn get(
    store: &Store,
    agent: Uuid,
    key: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(KV)?;
    let id = agent.to_string();
    let value = table.get((id.as_str(), key))?;
    value.map(|v| store::decode(TABLE, v.value())).transpose()
}

/// Writes one value, durably.
pub(crate) fn set(
    store: &Store,
    agent: Uuid,
    key: &str,
    value: &serde_json::Value,
) -> Result<(), StoreError> {
    let bytes = store::encode(TABLE, value)?;
    let tx = store.db()?.begin_write()?;
    {
        let id = agent.to_string();
        tx.open_table(KV)?
            .insert((id.as_str(), key), bytes.as_slice())?;
    }
    tx.commit()?;
    Ok(())
}

/// How much of an agent's memory one scope may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quota {
    /// Most keys.
    pub keys: u64,
    /// Most bytes of keys and values together.
    pub bytes: u64,
}

/// Writes one value under `key`, which starts with `scope` (a plugin's
/// `plugin:<name>:`), unless the scope's keys would then exceed `quota`:
/// counted and written in one transaction, so concurrent writers cannot
/// both slip under the limit. Replacing a key counts its new size only.
pub(crate) fn set_within(
    store: &Store,
    agent: Uuid,
    scope: &str,
    key: &str,
    value: &serde_json::Value,
    quota: Quota,
) -> Result<Result<(), String>, StoreError> {
    let bytes = store::encode(TABLE, value)?;
    let tx = store.db()?.begin_write()?;
    {
        let id = agent.to_string();
        let mut table = tx.open_table(KV)?;
        let (mut keys, mut used) = (1u64, (key.len() + bytes.len()) as u64);
        for entry in table.range((id.as_str(), scope)..)? {
            let (k, v) = entry?;
            let (owner, stored) = k.value();
            if owner != id || !stored.starts_with(scope) {
                break;
            }
            if stored != key {
                keys += 1;
                used += (stored.len() + v.value().len()) as u64;
            }
        }
        if keys > quota.keys || used > quota.bytes {
            return Ok(Err(format!(
                "memory quota exceeded: this would hold {keys} keys and {used} bytes of the \
                 agent's memory; the limits are {} keys and {} bytes ([plugins] \
                 max_memory_keys_per_agent, max_memory_kib_per_agent)",
                quota.keys, quota.bytes
            )));
        }
        table.insert((id.as_str(), key), bytes.as_slice())?;
    }
    tx.commit()?;
    Ok(Ok(()))
}

/// Deletes one value; true when it existed.
pub(crate) fn delete(store: &Store, agent: Uuid, key: &str) -> Result<bool, StoreError> {
    let tx = store.db()?.begin_write()?;
    let existed = {
        let id = agent.to_string();
        tx.open_table(KV)?.remove((id.as_str(), key))?.is_some()
    };
    tx.commit()?;
    Ok(existed)
}

/// Every key and value of one agent, ordered by key.
pub(crate) fn list(
    store: &Store,
    agent: Uuid,
) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(KV)?;
    let id = agent.to_string();
    let mut out = Vec::new();
    // Keys are (agent, key) tuples ordered lexicographically: one agent's keys are contiguous.
    for entry in table.range((id.as_str(), "")..)? {
        let (k, v) = entry?;
        let (owner, key) = k.value();
        if owner != id {
            break;
        }
        out.push((key.to_string(), store::decode(TABLE, v.value())?));
    }
    Ok(out)
}

/// Deletes every value of one agent inside an open transaction.
pub(crate) fn remove_all_in(tx: &WriteTransaction, agent: Uuid) -> Result<(), StoreError> {
    let id = agent.to_string();
    let mut table = tx.open_table(KV)?;
    let keys: Vec<String> = {
        let mut keys = Vec::new();
        for entry in table.range((id.as_str(), "")..)? {
            let (k, _) = entry?;
            let (owner, key) = k.value();
            if owner != id {
                break;
            }
            keys.push(key.to_string());
        }
        keys
    };
    for key in keys {
        table.remove((id.as_str(), key.as_str()))?;
    }
    Ok(())
}

/// Writes many values in one transaction, optionally clearing the agent's memory first.
pub(crate) fn import(
    store: &Store,
    agent: Uuid,
    values: &[(String, serde_json::Value)],
    clear_existing: bool,
) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    if clear_existing {
        remove_all_in(&tx, agent)?;
    }
    {
        let id = agent.to_string();
        let mut table = tx.open_table(KV)?;
        for (key, value) in values {
            let bytes = store::encode(TABLE, value)?;
            table.insert((id.as_str(), key.as_str()), bytes.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}
