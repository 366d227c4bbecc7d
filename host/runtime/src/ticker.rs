//! The epoch ticker: advances the engines' epochs while calls are running, so
//! a plugin that runs past its deadline traps. It sleeps when no call is in
//! flight, so an idle daemon does not wake up for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances: the granularity of wall-clock deadlines.
pub const TICK: Duration = Duration::from_millis(5);

pub(crate) struct Ticker {
    shared: Arc<Shared>,
}

struct Shared {
    in_flight: AtomicUsize,
    wake: Mutex<bool>,
    cond: Condvar,
}

/// Held for the duration of one call.
pub(crate) struct Running {
    shared: Arc<Shared>,
}

impl Ticker {
    /// A ticker with no thread yet: [`Ticker::start`] starts it, once the
    /// engines exist.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                in_flight: AtomicUsize::new(0),
                wake: Mutex::new(false),
                cond: Condvar::new(),
            }),
        }
    }

    /// Starts the thread that advances `engines`' epochs while calls run
    /// (called once, when the engines are built); it ends with them.
    pub fn start(&self, engines: &[Engine]) {
        let weak_engines: Vec<_> = engines.iter().map(Engine::weak).collect();
        let thread_shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("talon-epoch".into())
            .spawn(move || {
                loop {
                    if thread_shared.in_flight.load(Ordering::Acquire) == 0 {
                        let Ok(mut woken) = thread_shared.wake.lock() else {
                            return;
                        };
                        while !*woken {
                            woken = match thread_shared.cond.wait(woken) {
                                Ok(guard) => guard,
                                Err(_) => return,
                            };
                        }
                        *woken = false;
                        continue;
                    }
                    std::thread::sleep(TICK);
                    for weak in &weak_engines {
                        // An engine is gone: the runtime was dropped.
                        let Some(engine) = weak.upgrade() else {
                            return;
                        };
                        engine.increment_epoch();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the epoch ticker; wall-clock deadlines rely on the async timeout alone");
        }
    }

    /// Marks a call as running until the returned guard is dropped.
    pub fn running(&self) -> Running {
        if self.shared.in_flight.fetch_add(1, Ordering::AcqRel) == 0
            && let Ok(mut woken) = self.shared.wake.lock()
        {
            *woken = true;
            self.shared.cond.notify_one();
        }
        Running {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
