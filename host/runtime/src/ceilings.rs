//! The host's ceilings: every limit a plugin call runs under, whatever its
//! manifest asks for, in one struct the embedder sets (and changes on a
//! config reload with [`Runtime::set_ceilings`](crate::Runtime::set_ceilings)).

use std::time::Duration;

/// Limits that apply to every entry into guest code (tool calls, `describe`,
/// `instructions`, probes), whatever a manifest asks for. A manifest's
/// `[limits]` may only lower `fuel`, `memory_bytes` and `timeout`.
///
/// `docs/PLUGINS.md` lists each with its default and the error it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceilings {
    /// Most fuel one call may burn (roughly, WebAssembly instructions).
    /// Exceeded: `out_of_fuel`.
    pub fuel: u64,
    /// Most linear memory one instance may hold, in bytes. Never more than
    /// the pool's slot size chosen when the runtime was built.
    /// Exceeded: `memory_limit`.
    pub memory_bytes: usize,
    /// Longest wall-clock time of one call, in guest code or waiting on a
    /// host call. Exceeded: `timeout`.
    pub timeout: Duration,
    /// Calls of one plugin that may run at once, so one plugin cannot take
    /// every instance slot of the runtime. Exceeded (after `slot_wait`): `busy`.
    pub per_plugin_instances: u32,
    /// How long a call waits for a free slot (the plugin's own, then the
    /// runtime's) before it is refused as `busy`.
    pub slot_wait: Duration,
    /// Entries one instance may hold at once in its host resource table:
    /// `wasi:http` fields, requests, responses and bodies, streams,
    /// pollables, open files. Exceeded: `resource_limit`.
    pub resource_entries: usize,
    /// Bytes of headers one `wasi:http` fields resource may hold (the host's
    /// in-memory size of it), so that `resource_entries` also bounds the host
    /// memory fields can take. Exceeded: `resource_limit` (`wasi:http`
    /// traps rather than answering `size-exceeded`).
    pub http_fields_bytes: usize,
    /// Largest result of one tool call, in bytes. Exceeded: `result_too_large`.
    pub result_bytes: usize,
    /// Log lines one call may write; more are dropped and counted
    /// ([`Cost::log_lines_dropped`](crate::Cost::log_lines_dropped)).
    pub log_lines_per_call: u32,
    /// Log lines per second one plugin may write over all its calls (a
    /// token bucket holding up to `log_lines_per_call` lines); more are
    /// dropped and counted.
    pub log_lines_per_second: u32,
    /// Longest log message, in bytes; longer ones are cut.
    pub log_line_bytes: usize,
    /// Bytes of files one agent's workspace may hold when a plugin writes
    /// to it: a write that would take it past this fails with
    /// `insufficient-space` (ENOSPC) in the guest. Exceeded: `workspace_quota`.
    pub workspace_bytes: u64,
}

impl Default for Ceilings {
    fn default() -> Self {
        Self {
            fuel: 1_000_000_000,
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(30),
            per_plugin_instances: 16,
            slot_wait: Duration::from_secs(1),
            resource_entries: 1024,
            http_fields_bytes: 64 << 10,
            result_bytes: 1 << 20,
            log_lines_per_call: 200,
            log_lines_per_second: 100,
            log_line_bytes: 4096,
            workspace_bytes: 256 << 20,
        }
    }
}
