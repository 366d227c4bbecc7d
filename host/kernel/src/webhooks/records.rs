//! Webhook subscriptions, queued deliveries and dead letters, and their
//! store functions.

use chrono::{DateTime, Utc};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::KernelError;
use crate::store::tables::{WEBHOOK_DEAD, WEBHOOK_QUEUE, WEBHOOKS};
use crate::store::{self, Store, StoreError};

const HOOKS: &str = "webhooks.v1";
const QUEUE: &str = "webhook_queue.v1";
const DEAD: &str = "webhook_dead.v1";

/// Which API a subscription was made through: both deliver the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    /// `/api/webhooks`: a named endpoint for a list of event types.
    Webhook,
    /// `/api/webhooks/events`: one event type to one URL.
    Event,
}

/// An outbound subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its id.
    pub id: Uuid,
    /// Which API made it.
    pub kind: WebhookKind,
    /// A name for operators.
    pub name: String,
    /// Where deliveries are POSTed (http or https).
    pub url: String,
    /// The HMAC-SHA256 key deliveries are signed with.
    pub secret: String,
    /// Event types delivered (`turn_completed`, `approval_requested`, ...);
    /// `*` (or an empty list) is every event.
    pub events: Vec<String>,
    /// Off: nothing is queued for it.
    pub enabled: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Webhook {
    /// Whether events of `event_type` go to it.
    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled
            && (self.events.is_empty() || self.events.iter().any(|e| e == "*" || e == event_type))
    }
}

/// One event on its way to one subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its id (v7), sent as `X-Talon-Delivery` so receivers can drop repeats.
    pub id: Uuid,
    /// The subscription.
    pub webhook_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// The JSON body, exactly as signed and sent.
    pub body: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

fn put<K: AsRef<str>>(
    tx: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    name: &'static str,
    key: K,
    value: &impl Serialize,
) -> Result<(), StoreError> {
    let bytes = store::encode(name, value)?;
    tx.open_table(table)?
        .insert(key.as_ref(), bytes.as_slice())?;
    Ok(())
}

fn read_all<T: serde::de::DeserializeOwned>(
    store: &Store,
    table: TableDefinition<&str, &[u8]>,
    name: &'static str,
) -> Result<Vec<T>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(table)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        out.push(store::decode(name, value.value())?);
    }
    Ok(out)
}

/// Every subscription.
pub(super) fn webhooks(store: &Store) -> Result<Vec<Webhook>, StoreError> {
    read_all(store, WEBHOOKS, HOOKS)
}

/// Stores a subscription (new or changed).
pub(super) fn put_webhook(store: &Store, hook: &Webhook) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    put(&tx, WEBHOOKS, HOOKS, hook.id.to_string(), hook)?;
    tx.commit()?;
    Ok(())
}

/// Removes a subscription with its queued deliveries and dead letters;
/// false when there was none.
pub(super) fn remove_webhook(store: &Store, id: Uuid) -> Result<bool, StoreError> {
    let tx = store.db()?.begin_write()?;
    let existed = tx
        .open_table(WEBHOOKS)?
        .remove(id.to_string().as_str())?
        .is_some();
    for (table, name) in [(WEBHOOK_QUEUE, QUEUE), (WEBHOOK_DEAD, DEAD)] {
        let mut open = tx.open_table(table)?;
        let mut doomed = Vec::new();
        for entry in open.iter()? {
            let (key, value) = entry?;
            let delivery: Delivery = store::decode(name, value.value())?;
            if delivery.webhook_id == id {
                doomed.push(key.value().to_string());
            }
        }
        for key in doomed {
            open.remove(key.as_str())?;
        }
    }
    tx.commit()?;
    Ok(existed)
}

/// Queues deliveries in one durable transaction.
pub(super) fn enqueue(store: &Store, deliveries: &[Delivery]) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    for delivery in deliveries {
        put(&tx, WEBHOOK_QUEUE, QUEUE, delivery.id.to_string(), delivery)?;
    }
    tx.commit()?;
    Ok(())
}

/// Every queued delivery, oldest first.
pub(super) fn queued(store: &Store) -> Result<Vec<Delivery>, StoreError> {
    read_all(store, WEBHOOK_QUEUE, QUEUE)
}

/// Every dead letter, oldest first.
pub(super) fn dead_letters(store: &Store) -> Result<Vec<Delivery>, StoreError> {
    read_all(store, WEBHOOK_DEAD, DEAD)
}

/// What became of an attempt.
pub(super) enum Outcome {
    /// Delivered: off the queue.
    Delivered,
    /// Failed: back on the queue with its next time.
    Retry(Delivery),
    /// Failed for the last time: to the dead letters.
    Dead(Delivery),
}

/// Records attempts' outcomes in one transaction. Not synced on its own:
/// if the daemon dies before the next synced commit, a delivered event is
/// sent again (receivers drop repeats by `X-Talon-Delivery`); an event is
/// never lost, since its queueing was synced.
pub(super) fn record(store: &Store, outcomes: &[(Uuid, Outcome)]) -> Result<(), StoreError> {
    let mut tx = store.db()?.begin_write()?;
    tx.set_durability(Durability::None)
        .map_err(|e| StoreError::Db(redb::Error::from(e)))?;
    for (id, outcome) in outcomes {
        let key = id.to_string();
        match outcome {
            Outcome::Delivered => {
                tx.open_table(WEBHOOK_QUEUE)?.remove(key.as_str())?;
            }
            Outcome::Retry(delivery) => put(&tx, WEBHOOK_QUEUE, QUEUE, &key, delivery)?,
            Outcome::Dead(delivery) => {
                tx.open_table(WEBHOOK_QUEUE)?.remove(key.as_str())?;
                put(&tx, WEBHOOK_DEAD, DEAD, &key, delivery)?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Moves a dead letter back to the queue, due now, with its attempts reset.
pub(super) fn revive(store: &Store, id: Uuid, now: DateTime<Utc>) -> Result<Delivery, KernelError> {
    let tx = store.db()?.begin_write()?;
    let mut delivery: Delivery = {
        let mut dead = tx.open_table(WEBHOOK_DEAD).map_err(StoreError::from)?;
        let value = dead
            .remove(id.to_string().as_str())
            .map_err(StoreError::from)?
            .ok_or_else(|| KernelError::NotFound(format!("no dead letter {id}")))?;
        store::decode(DEAD, value.value())?
    };
    delivery.attempts = 0;
    delivery.next_attempt_at = now;
    put(&tx, WEBHOOK_QUEUE, QUEUE, id.to_string(), &delivery)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(delivery)
}
