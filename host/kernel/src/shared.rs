//! [`Shared`]: what every domain of the kernel holds.
//!
//! The data directory, the store (with the audit chain kept in it), the
//! event bus, the clock and the configuration in force. Domains get one
//! `Arc<Shared>` at boot and reach the rest of the kernel only through the
//! domains they were given; nothing here knows about any domain.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use crate::KernelError;
use crate::clock::Clock;
use crate::config::{Config, ReloadPlan};
use crate::events::{Event, EventBus};
use crate::home::Home;
use crate::store::audit::{self, AuditEntry, AuditEvent};
use crate::store::{self, Store};

/// The foundation every domain stands on.
pub struct Shared {
    home: Home,
    store: Store,
    events: EventBus,
    config: RwLock<Arc<Config>>,
    /// Unsynced audit appends so far (see [`Shared::audit_unsynced`]).
    unsynced_audits: AtomicU64,
}

/// Every this-many-th unsynced audit append is made durable, so a crash
/// loses at most this many entries even when nothing else writes, and redb
/// can reuse the pages the unsynced commits freed.
const UNSYNCED_AUDITS_PER_SYNC: u64 = 64;

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("home", &self.home)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Puts the foundation together; the store carries the clock.
    pub(crate) fn new(home: Home, store: Store, config: Config) -> Self {
        Self {
            home,
            store,
            events: EventBus::new(),
            config: RwLock::new(Arc::new(config)),
            unsynced_audits: AtomicU64::new(0),
        }
    }

    /// The data directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The kernel's one clock (the store's): every timestamp comes from it.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        self.store.clock()
    }

    /// Now, by the kernel's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.store.now()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `new` in force; what changed.
    pub(crate) fn replace_config(&self, new: Config) -> ReloadPlan {
        let mut guard = match self.config.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let plan = guard.diff(&new);
        *guard = Arc::new(new);
        plan
    }

    /// Appends an event to the audit trail in its own transaction and
    /// publishes the entry.
    pub async fn audit(&self, event: AuditEvent) -> Result<AuditEntry, KernelError> {
        let store = self.store.clone();
        let entry = store::blocking(move || audit::append(&store, event)).await?;
        self.events.publish(Event::Audit(entry.clone()));
        Ok(entry)
    }

    /// Appends an event to the audit trail without waiting for the disk
    /// (`audit::append_unsynced`; every [`UNSYNCED_AUDITS_PER_SYNC`]th is
    /// synced) and publishes the entry: for events frequent enough that a
    /// sync each would dominate what they record.
    pub async fn audit_unsynced(&self, event: AuditEvent) -> Result<AuditEntry, KernelError> {
        let store = self.store.clone();
        let n = self.unsynced_audits.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = if n.is_multiple_of(UNSYNCED_AUDITS_PER_SYNC) {
            store::blocking(move || audit::append(&store, event)).await?
        } else {
            store::blocking(move || audit::append_unsynced(&store, event)).await?
        };
        self.events.publish(Event::Audit(entry.clone()));
        Ok(entry)
    }
}

/// Runs blocking kernel work (files, store) off the async worker threads.
pub(crate) async fn blocking_kernel<T, F>(f: F) -> Result<T, KernelError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, KernelError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| KernelError::Store(store::StoreError::Task(e.to_string())))?
}
