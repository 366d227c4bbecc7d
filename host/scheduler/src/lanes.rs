//! Concurrency lanes: named, bounded pools that firings run in.
//!
//! A lane caps how many jobs run at once (say, 4 agent turns in `default`, 1
//! in `maintenance`), so a burst of due jobs queues instead of overwhelming
//! the LLM provider or the machine. Firings waiting for a lane are counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::Semaphore;

/// The lane jobs use when they name none.
pub const DEFAULT_LANE: &str = "default";

/// One lane.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) limit: usize,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) queued: AtomicU64,
    pub(crate) completed: AtomicU64,
}

/// A lane's figures, for the queue status endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneStats {
    /// The lane's name.
    pub name: String,
    /// How many firings may run at once.
    pub limit: usize,
    /// How many are running.
    pub running: usize,
    /// How many wait for a slot.
    pub queued: u64,
    /// How many engine firings finished since start.
    pub completed: u64,
}

/// The set of lanes; fixed at start.
#[derive(Debug, Clone)]
pub struct Lanes {
    lanes: Arc<BTreeMap<String, Arc<Lane>>>,
}

impl Lanes {
    /// Lanes with these names and limits; a `default` lane of 4 is added if
    /// absent, and a limit of 0 is taken as 1.
    pub fn new<I, S>(lanes: I) -> Self
    where
        I: IntoIterator<Item = (S, usize)>,
        S: Into<String>,
    {
        let mut map: BTreeMap<String, Arc<Lane>> = lanes
            .into_iter()
            .map(|(name, limit)| (name.into(), lane(limit)))
            .collect();
        map.entry(DEFAULT_LANE.to_string())
            .or_insert_with(|| lane(4));
        Self {
            lanes: Arc::new(map),
        }
    }

    /// True when a lane of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.lanes.contains_key(name)
    }

    /// Waits for a slot in the lane; `None` when there is no such lane.
    /// For runs started outside the engine (a manual run) that must still
    /// respect the lane's bound.
    pub async fn acquire(&self, name: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let lane = self.get(name)?;
        lane.queued.fetch_add(1, Ordering::Relaxed);
        let permit = lane.permits.clone().acquire_owned().await.ok();
        lane.queued.fetch_sub(1, Ordering::Relaxed);
        permit
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Lane>> {
        self.lanes.get(name).cloned()
    }

    /// Each lane's figures, by name.
    pub fn stats(&self) -> Vec<LaneStats> {
        self.lanes
            .iter()
            .map(|(name, lane)| LaneStats {
                name: name.clone(),
                limit: lane.limit,
                running: lane.limit - lane.permits.available_permits().min(lane.limit),
                queued: lane.queued.load(Ordering::Relaxed),
                completed: lane.completed.load(Ordering::Relaxed),
            })
            .collect()
    }
}

fn lane(limit: usize) -> Arc<Lane> {
    let limit = limit.max(1);
    Arc::new(Lane {
        limit,
        permits: Arc::new(Semaphore::new(limit)),
        queued: AtomicU64::new(0),
        completed: AtomicU64::new(0),
    })
}
