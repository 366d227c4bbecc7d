//! Prometheus metrics for `GET /api/metrics`.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of one HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route template (`/api/agents/{id}`), never the raw path,
    /// so the number of series stays bounded.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of a request's duration.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route template.
    pub route: String,
}

/// Labels of one plugin's figures.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    /// The plugin's name.
    pub plugin: String,
}

/// Per-plugin call figures, set on scrape from the kernel's running totals
/// (so calls made by agents and through the API are all counted).
#[derive(Default)]
pub struct PluginMetrics {
    /// Calls made.
    pub calls: Family<PluginLabels, Gauge>,
    /// Calls that returned no result.
    pub errors: Family<PluginLabels, Gauge>,
    /// Fuel burned.
    pub fuel: Family<PluginLabels, Gauge>,
    /// Wall-clock time of all calls, in microseconds.
    pub wall_us: Family<PluginLabels, Gauge>,
    /// The largest memory one call held.
    pub peak_memory: Family<PluginLabels, Gauge>,
}

/// The daemon's metrics registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Requests by method, route and status.
    pub http_requests: Family<RequestLabels, Counter>,
    /// Request latency by method and route.
    pub http_duration: Family<RouteLabels, Histogram>,
    /// Handler panics recovered as 500s.
    pub panics: Counter,
    /// Requests refused by the rate limiter.
    pub rate_limited: Counter,
    /// Seconds since start (set on scrape).
    pub uptime: Gauge,
    /// Number of agents (set on scrape).
    pub agents: Gauge,
    /// Resident set size in bytes (set on scrape).
    pub rss: Gauge,
    /// Size of the database file in bytes (set on scrape).
    pub database_size: Gauge,
    /// Plugin calls and what they cost (set on scrape).
    pub plugins: PluginMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered under the `talon_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("talon");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        let (panics, rate_limited) = (Counter::default(), Counter::default());
        let (uptime, agents, rss) = (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "http_requests",
            "HTTP requests answered",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_duration.clone(),
        );
        registry.register(
            "panics",
            "Handler panics answered with a 500",
            panics.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with a 429",
            rate_limited.clone(),
        );
        registry.register(
            "uptime_seconds",
            "Seconds since the daemon started",
            uptime.clone(),
        );
        registry.register("agents", "Agents in the registry", agents.clone());
        registry.register(
            "process_resident_memory_bytes",
            "Resident set size of the daemon",
            rss.clone(),
        );
        let database_size = Gauge::default();
        registry.register(
            "database_size_bytes",
            "Size of the database file",
            database_size.clone(),
        );
        let plugins = PluginMetrics::default();
        registry.register(
            "plugin_calls",
            "Tool calls per plugin since start",
            plugins.calls.clone(),
        );
        registry.register(
            "plugin_call_errors",
            "Tool calls that returned no result",
            plugins.errors.clone(),
        );
        registry.register(
            "plugin_fuel",
            "Fuel burned by a plugin's calls",
            plugins.fuel.clone(),
        );
        registry.register(
            "plugin_wall_microseconds",
            "Wall-clock time of a plugin's calls",
            plugins.wall_us.clone(),
        );
        registry.register(
            "plugin_peak_memory_bytes",
            "The largest linear memory one call of a plugin held",
            plugins.peak_memory.clone(),
        );
        Self {
            plugins,
            registry: Mutex::new(registry),
            http_requests,
            http_duration,
            panics,
            rate_limited,
            uptime,
            agents,
            rss,
            database_size,
        }
    }

    /// The registry in Prometheus text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let registry = match self.registry.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

/// Resident set size of this process in bytes, from `/proc/self/status`.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
