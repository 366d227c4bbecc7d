//! `config.toml`: the daemon's settings, their defaults, and safe edits at runtime.
//!
//! The file is the source of truth. [`Config::load_or_init`] writes a commented
//! default on first start; [`set_value`] edits one key in place with `toml_edit`
//! (keeping the operator's comments), validates the result as a whole, and only
//! then replaces the file atomically, so a rejected edit leaves nothing behind.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod a2a;
mod file;
mod oversight;
mod retention;

pub use a2a::A2aConfig;
pub(crate) use file::json_to_toml;
use file::read_config_text;
pub use file::{Change, change_value, set_table, set_value, write_atomically};
pub use oversight::{ApprovalRules, ApprovalsConfig, Policy, SecondFactor, WebhooksConfig};
pub use retention::RetentionConfig;

/// The address the daemon listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4545";

/// Largest config file accepted, so a runaway file cannot exhaust memory.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The configuration file with every default spelled out and explained.
pub const DEFAULT_CONFIG_TOML: &str = r#"# Talon configuration.
# Every key is optional; the values below are the defaults.
# Change a key here and run `POST /api/config/reload` (or restart), or use
# `POST /api/config/set` with {"path": "section.key", "value": ...}.

# Address of the HTTP API. Listening beyond loopback requires `api_key`
# (or `allow_remote_without_key = true`, which you almost certainly do not want).
api_listen = "127.0.0.1:4545"

# Bearer token for the API. Empty: no authentication, and CORS is limited to
# localhost origins. `GET /api/health` and `GET /` are always public.
api_key = ""

# Accept non-loopback clients while `api_key` is empty. Dangerous.
allow_remote_without_key = false

# Log verbosity (error, warn, info, debug, trace, or a tracing filter such as
# "talon_api=debug,info"). RUST_LOG overrides it.
log_level = "info"

# "pretty" for terminals, "json" for log collectors.
log_format = "pretty"

[rate_limit]
# GCRA budget per client IP, in cost units per minute. Cheap reads cost 1,
# most requests 5, sending a message 30, running a workflow 100.
api_requests_per_minute = 500
# Loopback clients (a dashboard or a script on this machine) are not limited,
# as in LibreFang, unless the request carries a forwarding header
# (X-Forwarded-For, X-Real-IP, Forwarded): then it came through a proxy and
# is limited like any other. false limits loopback clients too.
exempt_loopback = true

[limits]
# Largest accepted request body, in bytes.
max_body_bytes = 2097152

[cors]
# Extra origins allowed when an api_key is set (without a key, only
# http://localhost:* and http://127.0.0.1:* are allowed).
allowed_origins = []

[plugins]
# Publisher public keys (hex, as written by `talon plugin keygen`) whose
# signed packages may be installed.
trusted_keys = []
# Accept unsigned packages and packages signed by unknown keys. For plugin
# authors on their own machine only.
dev_mode = false
# Install the plugins this binary ships (file_read, file_list, file_write,
# web_fetch, toolbox) on start, granted what their manifests request, and
# upgrade them with the binary. Trusted by the hashes embedded in the
# binary, not by a key. false (or a name in bundled_exclude) uninstalls the
# bundled copies as soon as the config is reloaded; `talon plugin remove`
# removes one for good (`talon plugin restore` brings it back).
bundled = true
bundled_exclude = []
# Ceilings on what any plugin call may use, whatever its manifest asks for.
max_fuel = 1000000000
max_memory_mb = 256
max_timeout_ms = 30000
# Instances running at once: in all (read at start), and of one plugin, so
# one plugin cannot take every slot. A call that finds no free slot within
# slot_wait_ms is refused with 503 and Retry-After.
max_instances = 128
max_instances_per_plugin = 16
slot_wait_ms = 1000
# Host resources one call may make the daemon hold (wasi:http fields,
# requests, bodies, streams), and the bytes of one set of HTTP fields.
max_resources_per_call = 1024
max_http_fields_kib = 64
# Largest result one call may return.
max_result_kib = 1024
# Log lines: per call, per plugin per second, and the longest line kept.
max_log_lines_per_call = 200
max_log_lines_per_second = 100
max_log_line_bytes = 4096
# What one plugin may keep in one agent's memory: keys, and KiB of keys and
# values together.
max_memory_keys_per_agent = 10000
max_memory_kib_per_agent = 16384
# Files one agent's workspace may hold, in MiB: a plugin's write past it fails
# (ENOSPC in the plugin, `workspace_quota` for the call), and so does a file
# written through the API (413).
max_workspace_mib_per_agent = 256
# Longest time one installed plugin may take to load when the daemon starts
# (compiling it if the cache lacks it, and its load-time calls); past it the
# plugin is marked failed and the daemon goes on.
load_timeout_secs = 120
# What the instance pool keeps between calls (read at start). Each call runs
# in a fresh instance; a slot that keeps the pages a call wrote (up to
# pool_memory_keep_resident_kib per memory, pool_table_keep_resident_kib per
# table) resets them in place, so the next call of that plugin takes no page
# faults for them; the rest is returned to the system. Once pool_warm_slots
# idle slots hold pages, calls reuse them rather than fresh slots. 0 and 0
# (the default) return everything after each call: least memory; 1024 and
# 1024 made JavaScript calls about 20 % faster but added 20-30 MiB of RSS per
# Python or JavaScript plugin with 8 calls at once.
pool_memory_keep_resident_kib = 0
pool_table_keep_resident_kib = 0
pool_warm_slots = 100
# Compile a tool or skill first with wasmtime's baseline compiler (Winch) when
# no optimized build is cached: a Python or JavaScript plugin answers within
# seconds of its install, and its optimized (Cranelift) build replaces the
# baseline one in the background, for new calls, and is cached for later
# starts. false compiles with Cranelift only. x86_64 only (read at start).
baseline_compiler = true
# Extra CA certificates (a PEM file) channels' TLS trusts on top of the public
# roots, for a server whose certificate a private CA signed (read at start).
# tls_ca_file = "/etc/talon/channel-ca.pem"

[scheduler]
# What happens to cron runs missed while the daemon was down (or far behind):
# "skip" drops them, "run_once" runs a job once for all it missed, "run_all"
# runs each missed run (at most 100). A job may choose its own.
missed_policy = "run_once"
# A run that starts within this many seconds of its time is on time, not missed.
grace_secs = 30
# How many cron run records are kept (oldest removed first).
max_runs_kept = 10000
# Concurrency lanes: how many runs of each lane may go at once. Jobs name a
# lane ("default" when they name none); a burst of due jobs waits its turn.
[scheduler.lanes]
default = 4

[tool_invoke]
# `POST /api/tools/{name}/invoke` runs tools outside any agent. It is refused
# unless enabled and the tool is listed here ("*" allows every tool).
enabled = false
allowlist = []

[agents]
# Most model calls one turn may make before it stops with what it has.
max_iterations = 20
# A session is compacted (older messages summarized by the model) when the
# history a turn sends passes this share of its context budget
# (max_context_tokens below); 1.0 never compacts, the window only slides.
compact_at_ratio = 0.8
# Messages kept verbatim when a session is compacted.
compact_keep_recent = 20
# Context window assumed for models the catalog does not know, in tokens.
default_context_window = 128000
# Most tokens (estimated) of history and new message sent to the model in one
# call, for agents whose manifest sets no `max_context_tokens`; 0 means the
# model's whole window. A session passing compact_at_ratio of it is compacted,
# and only the newest messages that fit are read and sent.
max_context_tokens = 32000
# Memory for the windows of recently active sessions (the newest messages a
# turn sends), kept decoded between turns so a turn need not read them back
# from the store, in MiB; the least recently used go first. 0 turns it off.
window_cache_mib = 16

[llm]
# Attempts per model call (1 = no retries) on 429, 5xx and connection errors.
max_attempts = 3
# First retry delay in milliseconds; later retries back off exponentially.
retry_base_delay_ms = 500
# Consecutive failures that open a provider's circuit breaker, and how long
# it stays open before a probe call is let through.
breaker_failure_threshold = 5
breaker_cooldown_secs = 30
# Longest wait for a whole (non-streamed) answer, in seconds.
request_timeout_secs = 300
# Deadline of one model call, in seconds: every attempt, the waits between
# them and, when streamed, the whole stream. A provider that does not answer
# fails the turn when it passes. Timeouts are not retried. An agent may set
# its own in its manifest's [model] section (`call_deadline_secs`).
call_deadline_secs = 180
# Longest silence in a streamed answer (before it starts or between two
# pieces), in seconds.
stream_idle_secs = 90

[budget]
# Spending limits over all agents in USD (0 = no limit). A turn that would
# start past a limit is refused with 429 (as in LibreFang).
daily_limit_usd = 0.0
monthly_limit_usd = 0.0

[storage]
# The database's page cache in MiB: the most of the database file the daemon
# keeps in memory (read at start). Larger caches make reads of a large store
# cheaper and cost resident memory up to this size.
cache_mib = 32
# Disk space in MiB held back in a file beside the database (talon.reserve).
# When the disk fills, the daemon gives it up so the store can reopen cleanly
# and keep serving reads; writes are refused (507) until the disk has twice
# this much free again. 0 turns the reserve off.
disk_reserve_mib = 8

[retention]
# Turn records (what traces and agent logs show) are removed by a sweep at
# start and every sweep_interval_secs (0: only by `talon db prune`), a
# small batch per transaction. Conversations are not touched, and usage
# totals keep what pruned turns cost. 0 for any limit means none.
turn_days = 90
failed_turn_days = 7
max_turns_per_agent = 0
max_failed_turns_per_agent = 1000
sweep_interval_secs = 3600

[server]
# A client must send a request's headers within this many seconds of
# connecting (or of the first byte of a later request on the same
# connection); a slower one is disconnected.
header_read_timeout_secs = 10
# A kept-alive connection with no request in flight is closed after this
# many seconds without traffic. Longer than HTTP clients keep idle pooled
# connections (90 s for reqwest, Go, hyper): a client that reuses one just
# as the server closes it sees its request fail, so the client should be
# the one to let go first.
idle_timeout_secs = 120
# A request's whole body must arrive within this many seconds of its headers;
# a slower one is answered 408 and its connection closed. Raise it to upload
# large plugin packages or files over slow links.
body_read_timeout_secs = 60
# Open connections at once, from all clients (0: derived at start from the
# file-descriptor limit, which the daemon raises to its hard limit, keeping
# headroom for the store, plugins and outbound connections; at most 10000)
# and from one client IP. Connections beyond either cap are answered 503
# with Retry-After and closed at once.
max_connections = 0
max_connections_per_ip = 128
# On SIGTERM, SIGINT or `POST /api/shutdown`, requests in flight get this
# many seconds to finish; what is still open then is closed and the daemon
# exits.
shutdown_grace_secs = 10

[approvals]
# Whether a tool call runs ("always"), waits for an operator ("ask") or is
# refused ("never"). An agent's own [approvals] wins; then `tools` (by tool
# name), then `risk` (by the risk class a plugin declares for a tool), then
# the agent's `default`, then this `default`. See docs/APPROVALS.md.
default = "always"
tools = {}
risk = { high = "ask" }
# Seconds a call waits for a decision before it fails as expired.
timeout_secs = 300
# "totp": approving a call of the `totp_risk` class needs a TOTP code
# (enroll with POST /api/approvals/totp/setup and /confirm).
second_factor = "none"
totp_risk = "high"

[webhooks]
# Outbound deliveries: attempts before a delivery becomes a dead letter,
# and the exponential backoff between attempts (with jitter, capped).
max_attempts = 20
backoff_base_ms = 1000
backoff_cap_secs = 600
timeout_secs = 10
# Bearer tokens of the inbound hooks; empty turns the hook off (404).
wake_token = ""
agent_token = ""

[a2a]
# Longest wait for a remote A2A agent (its card, a task), in seconds (read at start).
timeout_secs = 60
# The base URL other agents reach this daemon at, named in the agent card;
# empty: taken from each request's Host header.
public_url = ""

[mcp_server]
# Talon as an MCP server at /mcp (behind api_key like the rest of the API).
# Closed unless enabled; only what the allowlist names is listed and callable:
# tool names, `agent_<name>` for an agent as a tool, "*" for everything.
enabled = false
allowlist = []

# MCP servers Talon's agents may use, one table each ([mcp_servers.<name>]);
# an agent gets a server's tools (as mcp_<name>_<tool>) when its manifest
# lists the server in `mcp_servers`. A server is a child process speaking MCP
# over stdio, given only the environment listed here (plus PATH):
#   [mcp_servers.everything]
#   command = "npx"
#   args = ["-y", "@modelcontextprotocol/server-everything"]
#   env = { LOG_LEVEL = "info" }        # set for it
#   env_passthrough = ["HOME"]          # copied from the daemon's, when set
#   cwd = "/srv/mcp"                    # its working directory
#   timeout_secs = 30                   # per call, and for start + handshake
# or a server reached over streamable HTTP (transport = "http") or the
# legacy HTTP+SSE transport (transport = "sse", url = its event stream),
# with a bearer token kept in secrets.toml's [mcp_secrets] under auth_secret:
#   [mcp_servers.remote]
#   transport = "http"
#   url = "https://mcp.example.com/mcp"
#   auth_secret = "remote"
[mcp_servers]
"#;

/// Errors reading, validating or writing the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("config file {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("invalid config: {0}")]
    Invalid(String),
    /// `config/set` named a key that does not exist.
    #[error("unknown config key `{0}`")]
    UnknownKey(String),
}

impl ConfigError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The daemon's configuration (`config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP API.
    pub api_listen: String,
    /// Bearer token required on every route but the public ones; empty disables auth.
    pub api_key: String,
    /// Accept non-loopback clients while `api_key` is empty.
    pub allow_remote_without_key: bool,
    /// Log verbosity or tracing filter.
    pub log_level: String,
    /// Log output format.
    pub log_format: LogFormat,
    /// Per-IP rate limiting.
    pub rate_limit: RateLimitConfig,
    /// Request size limits.
    pub limits: LimitsConfig,
    /// Cross-origin requests.
    pub cors: CorsConfig,
    /// Plugin trust and ceilings.
    pub plugins: PluginsConfig,
    /// Direct tool invocation over the API.
    pub tool_invoke: ToolInvokeConfig,
    /// Cron jobs and schedules.
    pub scheduler: SchedulerConfig,
    /// The agent loop.
    pub agents: AgentsConfig,
    /// Calls to model providers.
    pub llm: LlmConfig,
    /// Global spending limits.
    pub budget: BudgetConfig,
    /// The database.
    pub storage: StorageConfig,
    /// HTTP connections: timeouts, caps, shutdown deadline.
    pub server: ServerConfig,
    /// Which tool calls wait for an operator.
    pub approvals: ApprovalsConfig,
    /// Outbound webhook delivery and inbound hook tokens.
    pub webhooks: WebhooksConfig,
    /// The Agent-to-Agent protocol.
    pub a2a: A2aConfig,

    /// What `/mcp` exposes: the same switch and allowlist as `[tool_invoke]`,
    /// naming tools and `agent_<name>` agents.
    pub mcp_server: ToolInvokeConfig,
    /// MCP servers agents may use, by name.
    pub mcp_servers: std::collections::BTreeMap<String, McpServerEntry>,
    /// How long turn records are kept.
    pub retention: RetentionConfig,
}

/// How Talon reaches an MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum McpTransport {
    /// A child process speaking MCP on its stdin and stdout.
    #[default]
    Stdio,
    /// Streamable HTTP at `url`.
    Http,
    /// The legacy HTTP+SSE transport (2024-11-05), its event stream at `url`.
    Sse,
}

/// One MCP server Talon connects to: a child process speaking MCP on
/// stdio, or a server reached over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct McpServerEntry {
    /// How it is reached.
    pub transport: McpTransport,
    /// Its URL (`http`, `sse`).
    pub url: String,
    /// The name of the bearer token in `secrets.toml`'s `[mcp_secrets]`
    /// (`http`, `sse`); empty for none.
    pub auth_secret: String,
    /// The program (`stdio`).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set for it (nothing of the daemon's environment is
    /// inherited but `PATH` and `env_passthrough`).
    pub env: std::collections::BTreeMap<String, String>,
    /// Names of the daemon's variables copied to it when set.
    pub env_passthrough: Vec<String>,
    /// Its working directory; empty for the daemon's.
    pub cwd: String,
    /// Longest wait for one call, and for its start and handshake.
    pub timeout_secs: u64,
}

impl McpServerEntry {
    /// Checks what the types cannot: a command for stdio, an http(s) URL
    /// otherwise, a timeout of at least a second.
    pub fn check(&self) -> Result<(), String> {
        match self.transport {
            McpTransport::Stdio if self.command.trim().is_empty() => {
                return Err("a stdio server needs a `command`".into());
            }
            McpTransport::Http | McpTransport::Sse
                if !(self.url.starts_with("http://") || self.url.starts_with("https://")) =>
            {
                return Err("an http or sse server needs an http(s) `url`".into());
            }
            _ => {}
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err("`timeout_secs` must be between 1 and 3600".into());
        }
        Ok(())
    }
}

impl Default for McpServerEntry {
    fn default() -> Self {
        Self {
            transport: McpTransport::Stdio,
            url: String::new(),
            auth_secret: String::new(),
            command: String::new(),
            args: Vec::new(),
            env: std::collections::BTreeMap::new(),
            env_passthrough: Vec::new(),
            cwd: String::new(),
            timeout_secs: 30,
        }
    }
}

/// The scheduler: missed-run policy, grace, run retention and lanes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Policy for runs missed while the daemon was down, for jobs that set none.
    pub missed_policy: talon_scheduler::MissedPolicy,
    /// Seconds after its time within which a run counts as on time.
    pub grace_secs: u64,
    /// Cron run records kept.
    pub max_runs_kept: u64,
    /// Lane name to the number of runs it may hold at once.
    pub lanes: std::collections::BTreeMap<String, usize>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            missed_policy: talon_scheduler::MissedPolicy::RunOnce,
            grace_secs: 30,
            max_runs_kept: 10_000,
            lanes: [("default".to_string(), 4)].into_iter().collect(),
        }
    }
}

/// How the agent loop runs turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// Most model calls one turn may make.
    pub max_iterations: u32,
    /// Share of the context budget past which a session is compacted.
    pub compact_at_ratio: f64,
    /// Messages kept verbatim by compaction.
    pub compact_keep_recent: usize,
    /// Context window of models the catalog does not know, in tokens.
    pub default_context_window: u32,
    /// Most tokens of history and message sent to the model in one call,
    /// for agents whose manifest sets none (0: the model's window).
    pub max_context_tokens: u32,
    /// Memory for the cached windows of recently active sessions, in MiB
    /// (0: none cached).
    pub window_cache_mib: u32,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            max_iterations: 20,
            compact_at_ratio: 0.8,
            compact_keep_recent: 20,
            default_context_window: 128_000,
            max_context_tokens: 32_000,
            window_cache_mib: 16,
        }
    }
}

/// Retries, timeouts and circuit breaking of model calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First retry delay in milliseconds.
    pub retry_base_delay_ms: u64,
    /// Consecutive failures that open a provider's breaker.
    pub breaker_failure_threshold: u32,
    /// Seconds an open breaker waits before letting a probe through.
    pub breaker_cooldown_secs: u64,
    /// Longest wait for a whole answer, in seconds.
    pub request_timeout_secs: u64,
    /// Deadline of one model call (all attempts, the whole stream), in seconds.
    pub call_deadline_secs: u64,
    /// Longest silence in a streamed answer, in seconds.
    pub stream_idle_secs: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_base_delay_ms: 500,
            breaker_failure_threshold: 5,
            breaker_cooldown_secs: 30,
            request_timeout_secs: 300,
            call_deadline_secs: 180,
            stream_idle_secs: 90,
        }
    }
}

/// Spending limits over all agents; 0 means none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// Most USD spent per UTC day.
    pub daily_limit_usd: f64,
    /// Most USD spent per UTC month.
    pub monthly_limit_usd: f64,
}

/// The database file and what it may keep in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The database's page cache, in MiB: the most of the file kept in memory.
    pub cache_mib: u64,
    /// Disk space, in MiB, held back for the store to recover with when the disk fills.
    pub disk_reserve_mib: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            cache_mib: 32,
            disk_reserve_mib: 8,
        }
    }
}

/// The HTTP server's connections: how long a client may take, how many it
/// may hold open, and how long shutdown waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Seconds a client has to send a request's headers.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection with no request in flight stays open without traffic.
    pub idle_timeout_secs: u64,
    /// Seconds a request's whole body has to arrive, from its headers.
    pub body_read_timeout_secs: u64,
    /// Open connections at once from all clients; 0 derives it from the
    /// file-descriptor limit.
    pub max_connections: usize,
    /// Open connections at once from one client IP.
    pub max_connections_per_ip: usize,
    /// Seconds in-flight requests get to finish at shutdown.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 120,
            body_read_timeout_secs: 60,
            max_connections: 0,
            max_connections_per_ip: 128,
            shutdown_grace_secs: 10,
        }
    }
}

/// Plugin trust store and resource ceilings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Hex Ed25519 public keys of trusted publishers.
    pub trusted_keys: Vec<String>,
    /// Accept unsigned or untrusted packages.
    pub dev_mode: bool,
    /// Install and keep up to date the plugins the binary ships.
    pub bundled: bool,
    /// Bundled plugins not to install (uninstalled at start if they are).
    pub bundled_exclude: Vec<String>,
    /// Most fuel one call may burn.
    pub max_fuel: u64,
    /// Most linear memory one instance may hold, in MiB.
    pub max_memory_mb: u64,
    /// Longest wall-clock time one call may take, in milliseconds.
    pub max_timeout_ms: u64,
    /// Instances running at once, all plugins together (read at start).
    pub max_instances: u32,
    /// Instances of one plugin running at once.
    pub max_instances_per_plugin: u32,
    /// How long a call waits for a free instance slot, in milliseconds.
    pub slot_wait_ms: u64,
    /// Host resources one call may hold (resource-table entries).
    pub max_resources_per_call: usize,
    /// Bytes of one set of `wasi:http` fields, in KiB.
    pub max_http_fields_kib: usize,
    /// Largest result of one call, in KiB.
    pub max_result_kib: usize,
    /// Log lines one call may write.
    pub max_log_lines_per_call: u32,
    /// Log lines one plugin may write per second.
    pub max_log_lines_per_second: u32,
    /// Longest log line kept, in bytes.
    pub max_log_line_bytes: usize,
    /// Keys one plugin may keep in one agent's memory.
    pub max_memory_keys_per_agent: u64,
    /// KiB (keys and values) one plugin may keep in one agent's memory.
    pub max_memory_kib_per_agent: u64,
    /// MiB of files one agent's workspace may hold.
    pub max_workspace_mib_per_agent: u64,
    /// Longest time one plugin may take to load at start, in seconds.
    pub load_timeout_secs: u64,
    /// KiB of each linear memory an idle pool slot keeps resident (read at
    /// start).
    pub pool_memory_keep_resident_kib: usize,
    /// KiB of each table an idle pool slot keeps resident (read at start).
    pub pool_table_keep_resident_kib: usize,
    /// Idle pool slots holding pages past which calls reuse them rather than
    /// fresh slots (read at start).
    pub pool_warm_slots: u32,
    /// Compile tools and skills with Winch first, Cranelift in the
    /// background (x86_64 only; read at start).
    pub baseline_compiler: bool,
    /// A PEM file of extra CA certificates channels' TLS trusts on top of
    /// the public roots (read at start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<String>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            trusted_keys: Vec::new(),
            dev_mode: false,
            bundled: true,
            bundled_exclude: Vec::new(),
            max_fuel: 1_000_000_000,
            max_memory_mb: 256,
            max_timeout_ms: 30_000,
            max_instances: 128,
            max_instances_per_plugin: 16,
            slot_wait_ms: 1000,
            max_resources_per_call: 1024,
            max_http_fields_kib: 64,
            max_result_kib: 1024,
            max_log_lines_per_call: 200,
            max_log_lines_per_second: 100,
            max_log_line_bytes: 4096,
            max_memory_keys_per_agent: 10_000,
            max_memory_kib_per_agent: 16 * 1024,
            max_workspace_mib_per_agent: 256,
            load_timeout_secs: 120,
            pool_memory_keep_resident_kib: 0,
            pool_table_keep_resident_kib: 0,
            pool_warm_slots: 100,
            baseline_compiler: true,
            tls_ca_file: None,
        }
    }
}

/// An exposure switch and allowlist, closed by default: direct tool
/// invocation (`[tool_invoke]`, `POST /api/tools/{name}/invoke`) and the MCP
/// server (`[mcp_server]`, `/mcp`, whose list also names `agent_<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ToolInvokeConfig {
    /// Turns the endpoint on.
    pub enabled: bool,
    /// Tools it may run; `"*"` for all.
    pub allowlist: Vec<String>,
}

impl ToolInvokeConfig {
    /// Whether `tool` may be invoked directly.
    pub fn allows(&self, tool: &str) -> bool {
        self.enabled && self.allowlist.iter().any(|t| t == "*" || t == tool)
    }
}

/// GCRA rate limiting per client IP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Cost units each IP may spend per minute (also the burst size).
    pub api_requests_per_minute: u32,
    /// Do not limit clients on the loopback interface whose requests carry
    /// no forwarding header (default true, as in LibreFang).
    pub exempt_loopback: bool,
}

/// Size limits on requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
}

/// Cross-origin resource sharing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed in addition to the localhost ones.
    pub allowed_origins: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_listen: DEFAULT_LISTEN.to_string(),
            api_key: String::new(),
            allow_remote_without_key: false,
            log_level: "info".to_string(),
            log_format: LogFormat::Pretty,
            rate_limit: RateLimitConfig::default(),
            limits: LimitsConfig::default(),
            cors: CorsConfig::default(),
            plugins: PluginsConfig::default(),
            tool_invoke: ToolInvokeConfig::default(),
            scheduler: SchedulerConfig::default(),
            agents: AgentsConfig::default(),
            llm: LlmConfig::default(),
            budget: BudgetConfig::default(),
            storage: StorageConfig::default(),
            server: ServerConfig::default(),
            approvals: ApprovalsConfig::default(),
            webhooks: WebhooksConfig::default(),
            a2a: A2aConfig::default(),

            mcp_server: ToolInvokeConfig::default(),
            mcp_servers: std::collections::BTreeMap::new(),
            retention: RetentionConfig::default(),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            api_requests_per_minute: 500,
            exempt_loopback: true,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
        }
    }
}

/// Keys whose change only takes effect after a restart.
const RESTART_KEYS: &[&str] = &[
    "api_listen",
    "log_format",
    "log_level",
    "limits.max_body_bytes",
    // The runtime's instance pool is sized once, at start.
    "plugins.max_instances",
    "plugins.pool_memory_keep_resident_kib",
    "plugins.pool_table_keep_resident_kib",
    "plugins.pool_warm_slots",
    "plugins.baseline_compiler",
    "cors.allowed_origins",
    // The scheduler engine is built once at start with these.
    "scheduler.grace_secs",
    "scheduler.missed_policy",
    // The store is opened once, at start.
    "storage.cache_mib",
    "storage.disk_reserve_mib",
    // Breakers and connection pools are built once, at start.
    "llm.max_attempts",
    "llm.retry_base_delay_ms",
    "llm.breaker_failure_threshold",
    "llm.breaker_cooldown_secs",
    "llm.request_timeout_secs",
    "llm.call_deadline_secs",
    "llm.stream_idle_secs",
    // The listener's connection handling is set up once, at start.
    "server.header_read_timeout_secs",
    "server.idle_timeout_secs",
    "server.max_connections",
    "server.max_connections_per_ip",
    "server.shutdown_grace_secs",
];

impl Config {
    /// Whether a change of the dotted `key` only takes effect after a restart.
    pub fn requires_restart(key: &str) -> bool {
        RESTART_KEYS.contains(&key)
            || key == "scheduler.lanes"
            || key.starts_with("scheduler.lanes.")
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads `path`, writing the commented defaults there first if it does not exist.
    pub fn load_or_init(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            write_atomically(path, DEFAULT_CONFIG_TOML.as_bytes())?;
        }
        Self::load(path)
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_config_text(path)?)
    }

    /// Checks rules the types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.api_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "api_listen `{}` is not an address such as 127.0.0.1:4545",
                self.api_listen
            )));
        }
        if self.rate_limit.api_requests_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "rate_limit.api_requests_per_minute must be at least 1".into(),
            ));
        }
        for key in &self.plugins.trusted_keys {
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::Invalid(format!(
                    "plugins.trusted_keys: `{key}` is not a 64-character hex Ed25519 public key"
                )));
            }
        }
        if let Some((lane, _)) = self.scheduler.lanes.iter().find(|(_, n)| **n == 0) {
            return Err(ConfigError::Invalid(format!(
                "scheduler.lanes.{lane} must be at least 1"
            )));
        }
        if self.agents.max_iterations == 0 || self.llm.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "agents.max_iterations and llm.max_attempts must be at least 1".into(),
            ));
        }
        if !(1..=86_400).contains(&self.llm.call_deadline_secs)
            || !(1..=86_400).contains(&self.llm.stream_idle_secs)
        {
            return Err(ConfigError::Invalid(
                "llm.call_deadline_secs and llm.stream_idle_secs must be between 1 and 86400"
                    .into(),
            ));
        }
        if !(0.1..=1.0).contains(&self.agents.compact_at_ratio) {
            return Err(ConfigError::Invalid(
                "agents.compact_at_ratio must be between 0.1 and 1.0".into(),
            ));
        }
        if self.agents.window_cache_mib > 65_536 {
            return Err(ConfigError::Invalid(
                "agents.window_cache_mib must be at most 65536".into(),
            ));
        }
        if !(1..=65_536).contains(&self.storage.cache_mib) {
            return Err(ConfigError::Invalid(
                "storage.cache_mib must be between 1 and 65536".into(),
            ));
        }
        self.retention.validate()?;
        if self.storage.disk_reserve_mib > 65_536 {
            return Err(ConfigError::Invalid(
                "storage.disk_reserve_mib must be at most 65536".into(),
            ));
        }
        if self.budget.daily_limit_usd < 0.0 || self.budget.monthly_limit_usd < 0.0 {
            return Err(ConfigError::Invalid(
                "budget limits must not be negative".into(),
            ));
        }
        let server = &self.server;
        if server.header_read_timeout_secs == 0
            || server.idle_timeout_secs == 0
            || server.body_read_timeout_secs == 0
            || server.max_connections_per_ip == 0
        {
            return Err(ConfigError::Invalid(
                "server.header_read_timeout_secs, server.idle_timeout_secs, \
                 server.body_read_timeout_secs and server.max_connections_per_ip must be at least 1"
                    .into(),
            ));
        }
        if self.approvals.timeout_secs == 0 || self.webhooks.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "approvals.timeout_secs and webhooks.max_attempts must be at least 1".into(),
            ));
        }
        if self.a2a.timeout_secs == 0
            || !(self.a2a.public_url.is_empty()
                || self.a2a.public_url.starts_with("http://")
                || self.a2a.public_url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(
                "a2a.timeout_secs must be at least 1 and a2a.public_url empty or an http(s) URL"
                    .into(),
            ));
        }
        if self.limits.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "limits.max_body_bytes must be at least 1024".into(),
            ));
        }
        for (name, entry) in &self.mcp_servers {
            entry
                .check()
                .map_err(|e| ConfigError::Invalid(format!("mcp_servers.{name}: {e}")))?;
        }
        Ok(())
    }

    /// The configuration as JSON with secrets replaced by `"***"` (or `""` when unset).
    pub fn redacted(&self) -> serde_json::Value {
        let mut copy = self.clone();
        if !copy.api_key.is_empty() {
            copy.api_key = "***".to_string();
        }
        for token in [
            &mut copy.webhooks.wake_token,
            &mut copy.webhooks.agent_token,
        ] {
            if !token.is_empty() {
                *token = "***".to_string();
            }
        }
        serde_json::to_value(copy).unwrap_or_default()
    }

    /// The JSON Schema of the configuration file.
    pub fn schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default()
    }

    /// What changed between `self` (old) and `new`, as dotted key paths.
    pub fn diff(&self, new: &Config) -> ReloadPlan {
        // Only key names are reported, so comparing unredacted values leaks nothing.
        let as_json = |c: &Config| serde_json::to_value(c).unwrap_or_default();
        let (old, new) = (flatten(&as_json(self)), flatten(&as_json(new)));
        let mut changed: Vec<String> = old
            .iter()
            .filter(|(k, v)| new.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .chain(new.keys().filter(|k| !old.contains_key(*k)).cloned())
            .collect();
        changed.sort();
        changed.dedup();
        let (restart_required, applied) = changed
            .iter()
            .cloned()
            .partition(|k| Self::requires_restart(k));
        ReloadPlan {
            changed,
            applied,
            restart_required,
        }
    }
}

/// The result of comparing two configurations.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReloadPlan {
    /// Every key whose value differs.
    pub changed: Vec<String>,
    /// Changed keys that took effect at once.
    pub applied: Vec<String>,
    /// Changed keys that need a restart.
    pub restart_required: Vec<String>,
}

fn flatten(v: &serde_json::Value) -> std::collections::BTreeMap<String, serde_json::Value> {
    fn walk(
        prefix: &str,
        v: &serde_json::Value,
        out: &mut std::collections::BTreeMap<String, serde_json::Value>,
    ) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk("", v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_matches_default_struct() {
        assert_eq!(
            Config::parse(DEFAULT_CONFIG_TOML).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("api_listn = \"x\"").unwrap_err().to_string();
        assert!(err.contains("api_listn"), "{err}");
    }

    #[test]
    fn set_table_writes_and_removes_one_server_and_refuses_invalid_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        Config::load_or_init(&path).unwrap();
        let entry = serde_json::json!({"transport": "http", "url": "http://127.0.0.1:1/mcp",
                                       "auth_secret": "remote", "timeout_secs": 9});
        let cfg = set_table(&path, "mcp_servers", "remote", Some(&entry)).unwrap();
        let remote = &cfg.mcp_servers["remote"];
        assert_eq!(remote.transport, McpTransport::Http);
        assert_eq!(remote.timeout_secs, 9);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[mcp_servers.remote]"), "{text}");
        assert!(text.contains("# MCP servers Talon's agents may use"));
        // A stdio server without a command, or an http one without a URL,
        // is refused and nothing is written.
        for bad in [
            serde_json::json!({"transport": "stdio"}),
            serde_json::json!({"transport": "http", "url": "ftp://x"}),
            serde_json::json!({"command": "x", "timeout_secs": 0}),
            serde_json::json!({"command": "x", "surprise": 1}),
        ] {
            assert!(
                set_table(&path, "mcp_servers", "bad", Some(&bad)).is_err(),
                "{bad}"
            );
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let cfg = set_table(&path, "mcp_servers", "remote", None).unwrap();
        assert!(cfg.mcp_servers.is_empty());
    }

    #[test]
    fn set_value_keeps_comments_and_refuses_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        Config::load_or_init(&path).unwrap();
        let cfg = set_value(
            &path,
            "rate_limit.api_requests_per_minute",
            &serde_json::json!(42),
        )
        .unwrap();
        assert_eq!(cfg.rate_limit.api_requests_per_minute, 42);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# GCRA budget per client IP"));
        assert!(
            set_value(
                &path,
                "rate_limit.api_requests_per_minute",
                &serde_json::json!("many")
            )
            .is_err()
        );
        assert!(matches!(
            set_value(&path, "nope.key", &serde_json::json!(1)),
            Err(ConfigError::UnknownKey(_))
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn diff_separates_restart_keys() {
        let old = Config::default();
        let mut new = old.clone();
        new.api_listen = "127.0.0.1:9999".into();
        new.rate_limit.api_requests_per_minute = 7;
        let plan = old.diff(&new);
        assert_eq!(plan.restart_required, vec!["api_listen"]);
        assert_eq!(plan.applied, vec!["rate_limit.api_requests_per_minute"]);
    }

    #[test]
    fn the_page_cache_is_bounded_and_its_change_needs_a_restart() {
        for bad in ["[storage]\ncache_mib = 0", "[storage]\ncache_mib = 70000"] {
            let err = Config::parse(bad).unwrap_err().to_string();
            assert!(err.contains("storage.cache_mib"), "{err}");
        }
        assert_eq!(Config::parse("").unwrap().storage.cache_mib, 32);
        assert!(Config::requires_restart("storage.cache_mib"));
        assert!(Config::parse("[storage]\ncache_mbi = 1").is_err());
    }
}
