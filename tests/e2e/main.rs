//! End-to-end tests: the real `talon` binary on a free port with a temporary
//! home, driven over HTTP. See `harness.rs`.

mod harness;

mod agents;
mod audit;
mod automation;
mod cli;
mod config;
mod conventions;
mod conversations;
mod durability;
mod goals;
mod openai_tools;
mod plugins;
mod providers;
mod scheduler;
mod system;
mod tasks;
mod triggers;
