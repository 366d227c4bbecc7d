//! Route handlers, one module per group of the reference API.

pub mod agent_settings;
pub mod agents;
pub mod approvals;
pub mod audit;
pub mod config;
pub mod cron;
pub mod files;
pub mod goals;
pub mod logs;
pub mod memory;
pub mod messages;
pub mod models;
pub mod openai;
pub mod outcome;
pub mod plugins;
pub mod sessions;
pub mod skills;
pub mod system;
pub mod tasks;
pub mod templates;
pub mod tools;
pub mod triggers;
pub mod usage;
pub mod webhooks;
pub mod workflows;
pub mod ws;
