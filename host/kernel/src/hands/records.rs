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

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(anchor: DateTime<Utc>) -> HandInstance {
        HandInstance {
            id: Uuid::new_v4(),
            hand: "fickle".into(),
            agent_id: Uuid::new_v4(),
            settings: serde_json::json!({ "mode": "ok" }),
            status: InstanceStatus::Active,
            interval_secs: 1,
            anchor,
            ticks_started: 0,
            activated_at: anchor,
            updated_at: anchor,
        }
    }

    #[test]
    fn hands_each_occurrence_begins_once_and_only_while_active() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let t0 = Utc::now();
        let mut stored = instance(t0);
        put(&store, &stored).unwrap();
        let t1 = t0 + chrono::Duration::seconds(1);
        let begun = begin_tick(&store, stored.id, t1).unwrap().unwrap();
        assert_eq!((begun.anchor, begun.ticks_started), (t1, 1));
        // The same occurrence again (a restart replaying it) and an older one: refused.
        assert!(begin_tick(&store, stored.id, t1).unwrap().is_none());
        assert!(begin_tick(&store, stored.id, t0).unwrap().is_none());
        // A reopened store keeps the anchor.
        drop(store);
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        assert!(begin_tick(&store, stored.id, t1).unwrap().is_none());
        // Paused: nothing begins.
        stored = list(&store).unwrap().remove(0);
        stored.status = InstanceStatus::Paused;
        put(&store, &stored).unwrap();
        let t2 = t1 + chrono::Duration::seconds(1);
        assert!(begin_tick(&store, stored.id, t2).unwrap().is_none());
        // Gone: nothing begins.
        assert!(delete(&store, stored.id).unwrap());
        assert!(begin_tick(&store, stored.id, t2).unwrap().is_none());
        assert!(list(&store).unwrap().is_empty());
    }
}
