//! Route handlers, one module per group of the reference API.

pub mod agents;
pub mod audit;
pub mod config;
pub mod cron;
pub mod files;
pub mod goals;
pub mod logs;
pub mod memory;
pub mod plugins;
pub mod skills;
pub mod system;
pub mod tools;
pub mod triggers;
pub mod workflows;
