//! Route handlers, one module per group of the reference API.

pub mod agents;
pub mod audit;
pub mod config;
pub mod files;
pub mod logs;
pub mod memory;
pub mod plugins;
pub mod skills;
pub mod system;
pub mod tools;
