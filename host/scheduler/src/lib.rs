//! Talon's scheduler: when things should run, and running them on time.
//!
//! - [`spec`]: schedule specifications — cron expressions (seconds optional)
//!   in a time zone, intervals (`every 5m`), one-shot times (`at <RFC 3339>`) —
//!   and the next-fire computation.
//! - [`policy`]: what happens to runs that were missed (the daemon was down, or
//!   the machine fell behind): skip them, run once, or run each.
//! - [`clock`]: the clock the engine reads and sleeps on; tests use a manual one.
//! - [`lanes`]: bounded concurrency lanes firings are dispatched into.
//! - [`engine`]: one timer task over an ordered queue of deadlines that fires
//!   each due job exactly once.
//!
//! The crate knows nothing of agents, storage or HTTP: the kernel gives it jobs
//! and a [`engine::Dispatcher`], and records what the firings did.

pub mod clock;
pub mod engine;
pub mod lanes;
pub mod policy;
pub mod spec;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Dispatcher, Engine, EngineError, Firing, Job};
pub use lanes::{LaneStats, Lanes};
pub use policy::{MissedPolicy, Plan, plan};
pub use spec::{Schedule, SpecError};
