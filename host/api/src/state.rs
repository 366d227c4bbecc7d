//! State shared by every handler.

use std::sync::Arc;

use talon_kernel::Kernel;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::middleware::rate_limit::RateLimiter;

/// What handlers and middleware share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The kernel every request ends up in.
    pub kernel: Arc<Kernel>,
    /// Prometheus counters and gauges.
    pub metrics: Arc<Metrics>,
    /// Per-IP GCRA limiter.
    pub limiter: Arc<RateLimiter>,
    /// Cancelled to ask the server to shut down gracefully.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// State for `kernel`, with fresh metrics and limiter.
    pub fn new(kernel: Arc<Kernel>) -> Self {
        Self {
            kernel,
            metrics: Arc::new(Metrics::new()),
            limiter: Arc::new(RateLimiter::default()),
            shutdown: CancellationToken::new(),
        }
    }
}
