//! Hand instances as stored, and their store functions.
//!
//! An instance's `anchor` is the tick occurrence last started: it is
//! committed before the tick runs, so an instance reloaded after a crash
//! resumes after it and never ticks an occurrence twice.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::tables::HAND_INSTANCES;
use crate::store::{self, Store, StoreError};

const INSTANCES: &str = "hand_instances.v1";

/// Whether an instance is meant to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum InstanceStatus {
    /// Activated and ticked on its schedule (also after a restart).
    Active,
    /// Deactivated for now; its agent and its memory stay.
    Paused,
}

/// One activation of a hand, driving its own agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandInstance {
    /// Its id.
    pub id: Uuid,
    /// The hand plugin it runs.
    pub hand: String,
    /// The agent it drives (created at activation); its memory is the hand's.
    pub agent_id: Uuid,
    /// The settings `activate` receives, checked against the hand's schema.
    pub settings: serde_json::Value,
    /// Active or paused.
    pub status: InstanceStatus,
    /// Seconds between two ticks (the hand's own interval or slower).
    pub interval_secs: u64,
    /// The tick occurrence last started; occurrences after it are pending.
    pub anchor: DateTime<Utc>,
    /// Scheduled ticks started since activation.
    pub ticks_started: u64,
    /// When it was activated.
    pub activated_at: DateTime<Utc>,
    /// When it last changed (settings, pause, resume).
    pub updated_at: DateTime<Utc>,
}

/// Every stored instance.
pub(super) fn list(store: &Store) -> Result<Vec<HandInstance>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(HAND_INSTANCES)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        out.push(store::decode(INSTANCES, value.value())?);
    }
    Ok(out)
}

/// Stores an instance (new or changed).
pub(super) fn put(store: &Store, instance: &HandInstance) -> Result<(), StoreError> {
    let bytes = store::encode(INSTANCES, instance)?;
    let tx = store.db()?.begin_write()?;
    tx.open_table(HAND_INSTANCES)?
        .insert(instance.id.to_string().as_str(), bytes.as_slice())?;
    tx.commit()?;
    Ok(())
}

/// Removes an instance; true when it existed.
pub(super) fn delete(store: &Store, id: Uuid) -> Result<bool, StoreError> {
    let tx = store.db()?.begin_write()?;
    let existed = tx
        .open_table(HAND_INSTANCES)?
        .remove(id.to_string().as_str())?
        .is_some();
    tx.commit()?;
    Ok(existed)
}

/// Commits the start of the tick for occurrence `at`: the instance's new
/// anchor, in one transaction, before the tick runs. `None` (nothing
/// written) when the instance is gone, paused, or already past `at`.
pub(super) fn begin_tick(
    store: &Store,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<HandInstance>, StoreError> {
    let tx = store.db()?.begin_write()?;
    let updated = {
        let mut table = tx.open_table(HAND_INSTANCES)?;
        let key = id.to_string();
        let current: Option<HandInstance> = match table.get(key.as_str())? {
            Some(v) => Some(store::decode(INSTANCES, v.value())?),
            None => None,
        };
        match current {
            Some(mut instance)
                if instance.status == InstanceStatus::Active && instance.anchor < at =>
            {
                instance.anchor = at;
                instance.ticks_started += 1;
                let bytes = store::encode(INSTANCES, &instance)?;
                table.insert(key.as_str(), bytes.as_slice())?;
                Some(instance)
            }
            _ => None,
        }
    };
    if updated.is_some() {
        tx.commit()?;
    }
    Ok(updated)
}
