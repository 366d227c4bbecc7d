//! The clock the engine reads and sleeps on.
//!
//! Production uses [`SystemClock`] (wall time, tokio timers). Tests use
//! [`ManualClock`], which only moves when told to, so they assert on what fired
//! without waiting or racing real time.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A boxed future, as the clock and dispatcher traits return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Longest single sleep of [`SystemClock`]: wall time can jump (NTP, suspend),
/// so the engine looks at the clock again at least this often.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A source of the current time and of sleeps.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves at `deadline` or earlier (callers re-check [`Clock::now`]).
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<()>;
}

/// Wall time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<()> {
        let wait = (deadline - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_SLEEP);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when [`ManualClock::advance`] or [`ManualClock::set`] is called.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: watch::Sender::new(start),
        }
    }

    /// Moves the clock to `t` (never backwards) and wakes sleepers whose time came.
    pub fn set(&self, t: DateTime<Utc>) {
        self.now.send_if_modified(|now| {
            if t > *now {
                *now = t;
                true
            } else {
                false
            }
        });
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let t = *self.now.borrow() + d;
        self.set(t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone, never wake.
            if rx.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
