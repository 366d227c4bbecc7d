//! Instance slots: how many guest instances may exist at once, in the whole
//! runtime (the pooling allocator's size) and per plugin, so that one plugin
//! cannot take every slot and starve the others.
//!
//! A call first takes one of its plugin's slots, then one of the runtime's:
//! callers waiting for their plugin never hold a runtime slot. Waiting is
//! bounded ([`Ceilings::slot_wait`](crate::Ceilings::slot_wait)); after that
//! the call is refused with [`GuardError::Busy`] and a warning naming the
//! plugin is logged (at most once a second per plugin, with the count of
//! refusals since the last one, so refusals cannot flood the log either).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

use crate::error::GuardError;
use crate::log::LogBucket;

/// Advice given with a refusal: slots free up as calls end, and a call is
/// bounded by its timeout, but most end within milliseconds.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Least time between two "no free slot" warnings of one plugin.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// The runtime's slots and every plugin's share of them.
pub(crate) struct Slots {
    global: Semaphore,
    total: u32,
    plugins: Mutex<HashMap<Arc<str>, Arc<PerPlugin>>>,
}

/// What all calls of one plugin share, across its reloads: its running
/// calls and its log budget.
pub(crate) struct PerPlugin {
    name: Arc<str>,
    running: AtomicU32,
    freed: Notify,
    refused: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
    /// Log lines per second over all the plugin's calls.
    pub log: LogBucket,
}

/// Held for the duration of one call: gives both slots back when dropped.
pub(crate) struct Permit<'a> {
    plugin: Arc<PerPlugin>,
    _global: SemaphorePermit<'a>,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.plugin.running.fetch_sub(1, Ordering::AcqRel);
        self.plugin.freed.notify_waiters();
    }
}

impl Slots {
    pub fn new(total: u32) -> Self {
        Self {
            global: Semaphore::new(total as usize),
            total,
            plugins: Mutex::new(HashMap::new()),
        }
    }

    /// The shared state of the plugin called `name` (made on first use and
    /// kept, so a reloaded version shares its predecessor's slots).
    pub fn plugin(&self, name: &str) -> Arc<PerPlugin> {
        let mut plugins = match self.plugins.lock() {
            Ok(guard) => guard,
            // A panic while holding this lock cannot leave the map invalid.
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(existing) = plugins.get(name) {
            return existing.clone();
        }
        let name: Arc<str> = name.into();
        let entry = Arc::new(PerPlugin {
            name: name.clone(),
            running: AtomicU32::new(0),
            freed: Notify::new(),
            refused: AtomicU64::new(0),
            last_warning: Mutex::new(None),
            log: LogBucket::new(),
        });
        plugins.insert(name, entry.clone());
        entry
    }

    /// Takes a slot of `plugin` (at most `per_plugin` at once) and one of
    /// the runtime's, waiting at most `wait` for both.
    pub async fn acquire(
        &self,
        plugin: &Arc<PerPlugin>,
        per_plugin: u32,
        wait: Duration,
        entry: &'static str,
    ) -> Result<Permit<'_>, GuardError> {
        let per_plugin = per_plugin.max(1);
        // The common case takes no timer and no lock.
        if plugin.try_take(per_plugin) {
            match self.global.try_acquire() {
                Ok(global) => {
                    return Ok(Permit {
                        plugin: plugin.clone(),
                        _global: global,
                    });
                }
                Err(_) => plugin.give_back(),
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        let own = tokio::time::timeout_at(deadline, plugin.take(per_plugin)).await;
        if own.is_err() {
            return Err(self.refuse(
                plugin,
                entry,
                format!("it already runs {per_plugin} calls, its limit"),
            ));
        }
        match tokio::time::timeout_at(deadline, self.global.acquire()).await {
            Ok(Ok(global)) => Ok(Permit {
                plugin: plugin.clone(),
                _global: global,
            }),
            Ok(Err(_closed)) => {
                plugin.give_back();
                Err(GuardError::Instantiate(
                    "the runtime is shutting down".into(),
                ))
            }
            Err(_elapsed) => {
                plugin.give_back();
                Err(self.refuse(
                    plugin,
                    entry,
                    format!(
                        "all {} instance slots of the runtime are in use",
                        self.total
                    ),
                ))
            }
        }
    }

    fn refuse(&self, plugin: &PerPlugin, entry: &'static str, reason: String) -> GuardError {
        let refused = plugin.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let warn = match plugin.last_warning.lock() {
            Ok(mut last) => match *last {
                Some(at) if now.duration_since(at) < WARN_INTERVAL => false,
                _ => {
                    *last = Some(now);
                    true
                }
            },
            Err(_) => true,
        };
        if warn {
            tracing::warn!(
                plugin = %plugin.name,
                entry,
                %reason,
                refused_so_far = refused,
                runtime_slots = self.total,
                runtime_slots_free = self.global.available_permits(),
                "plugin call refused: no free instance slot"
            );
        }
        GuardError::Busy {
            plugin: plugin.name.to_string(),
            reason,
            retry_after: RETRY_AFTER,
        }
    }
}

impl PerPlugin {
    /// Calls of this plugin running now.
    pub fn running(&self) -> u32 {
        self.running.load(Ordering::Acquire)
    }

    fn try_take(&self, limit: u32) -> bool {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
        self.freed.notify_waiters();
    }

    async fn take(&self, limit: u32) {
        loop {
            // Registered before the check, so a slot freed in between still
            // wakes this waiter.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_take(limit) {
                return;
            }
            freed.await;
        }
    }
}
