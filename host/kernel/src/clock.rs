//! The kernel's one clock: every timestamp the kernel records or compares
//! comes from the [`Clock`] the store was opened with, so tests can move
//! time by hand ([`ManualClock`]). Durations measured on the spot (a tool
//! call's run time) use `std::time::Instant`, which no test needs to move.

pub use talon_scheduler::clock::{Clock, ManualClock, SystemClock};
