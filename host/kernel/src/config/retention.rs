//! The `[retention]` section: how long turn records are kept, and how often
//! the daemon removes the rest.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// How long turn records (the source of traces and agent logs) are kept.
/// Conversations are not touched: a session's messages stay until it is
/// reset or deleted, and usage totals keep the pruned turns' share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days a completed turn's record is kept; 0 keeps them.
    pub turn_days: u64,
    /// Days a failed turn's record is kept; 0 keeps them.
    pub failed_turn_days: u64,
    /// Newest turn records kept per agent, failed ones included; 0 for no
    /// count limit.
    pub max_turns_per_agent: u64,
    /// Newest failed turn records kept per agent; 0 for no count limit.
    pub max_failed_turns_per_agent: u64,
    /// Seconds between two sweeps of the daemon (the first runs at start);
    /// 0 leaves pruning to `talon db prune`.
    pub sweep_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            turn_days: 90,
            failed_turn_days: 7,
            max_turns_per_agent: 0,
            max_failed_turns_per_agent: 1000,
            sweep_interval_secs: 3600,
        }
    }
}

/// The most days a limit may name (100 years).
const MAX_DAYS: u64 = 36_500;

impl RetentionConfig {
    /// Checks the ranges.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.turn_days > MAX_DAYS || self.failed_turn_days > MAX_DAYS {
            return Err(ConfigError::Invalid(format!(
                "retention.turn_days and retention.failed_turn_days must be at most {MAX_DAYS}"
            )));
        }
        if self.sweep_interval_secs > 7 * 86_400 {
            return Err(ConfigError::Invalid(
                "retention.sweep_interval_secs must be at most 604800 (a week)".into(),
            ));
        }
        Ok(())
    }
}
