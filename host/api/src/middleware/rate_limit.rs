//! GCRA rate limiting per client IP with a per-route cost (governor).
//!
//! Each IP has a budget of `rate_limit.api_requests_per_minute` cost units that
//! refills continuously; cheap reads cost 1 and expensive operations more, as
//! in the reference. The limiter is rebuilt when the configured budget changes,
//! so `config/set` and `config/reload` take effect at once.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;
use crate::state::AppState;

/// What one request costs, in budget units, by method and path.
pub fn operation_cost(method: &Method, path: &str) -> u32 {
    let get = method == Method::GET;
    match path {
        "/api/health" | "/api/ready" | "/api/version" | "/api/versions" => 1,
        "/api/status" | "/api/tools" | "/api/providers" | "/api/metrics" if get => 1,
        "/api/agents" | "/api/skills" | "/api/config" if get => 2,
        "/api/usage" if get => 3,
        "/api/agents" | "/api/skills/install" if method == Method::POST => 50,
        _ if get && path.starts_with("/api/audit") => 5,
        _ if method == Method::POST && path.contains("/message") => 30,
        "/v1/chat/completions" if method == Method::POST => 30,
        _ if method == Method::POST && path.ends_with("/run") => 100,
        _ => 5,
    }
}

/// A keyed GCRA limiter whose quota follows the configuration.
#[derive(Default)]
pub struct RateLimiter {
    inner: RwLock<Option<(u32, Arc<DefaultKeyedRateLimiter<IpAddr>>)>>,
}

impl RateLimiter {
    fn limiter(&self, per_minute: u32) -> Arc<DefaultKeyedRateLimiter<IpAddr>> {
        if let Ok(guard) = self.inner.read()
            && let Some((budget, limiter)) = guard.as_ref()
            && *budget == per_minute
        {
            return limiter.clone();
        }
        let budget = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let limiter = Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(budget)));
        if let Ok(mut guard) = self.inner.write() {
            *guard = Some((per_minute, limiter.clone()));
        }
        limiter
    }

    /// Spends `cost` from `ip`'s budget; on refusal, how long until it would pass.
    pub fn check(&self, ip: IpAddr, cost: u32, per_minute: u32) -> Result<(), Duration> {
        let limiter = self.limiter(per_minute);
        let cost = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(&ip, cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
            // More than the whole budget: it can never pass; tell the client to wait a full window.
            Err(_) => Err(Duration::from_secs(60)),
        }
    }

    /// Forgets IPs whose budget has fully refilled, so the map does not grow forever.
    pub fn cleanup(&self) {
        if let Ok(guard) = self.inner.read()
            && let Some((_, limiter)) = guard.as_ref()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Headers a proxy adds: a loopback peer that sends one is relaying someone else.
const FORWARDING_HEADERS: [&str; 3] = ["x-forwarded-for", "x-real-ip", "forwarded"];

/// Whether the request came through a proxy (it carries a forwarding header).
fn forwarded(request: &Request) -> bool {
    FORWARDING_HEADERS
        .iter()
        .any(|name| request.headers().contains_key(*name))
}

/// Refuses requests over budget with 429 and `Retry-After`. Loopback
/// callers without forwarding headers (a dashboard or a script on this
/// machine) are exempt when `rate_limit.exempt_loopback` is on, as in LibreFang.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.kernel.config();
    let Some(ip) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
    else {
        return next.run(request).await;
    };
    let loopback = ip.is_loopback() && !forwarded(&request);
    if loopback && config.rate_limit.exempt_loopback {
        return next.run(request).await;
    }
    let cost = operation_cost(request.method(), request.uri().path());
    let per_minute = config.rate_limit.api_requests_per_minute;
    match state.limiter.check(ip, cost, per_minute) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            state.metrics.rate_limited.inc();
            let retry_after_secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            ApiError::RateLimited {
                retry_after_secs,
                per_minute,
                cost,
                loopback_hint: if loopback {
                    "; clients on this machine are exempt with rate_limit.exempt_loopback = true"
                } else {
                    ""
                },
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_reference() {
        assert_eq!(operation_cost(&Method::GET, "/api/health"), 1);
        assert_eq!(operation_cost(&Method::POST, "/api/agents"), 50);
        assert_eq!(operation_cost(&Method::POST, "/api/agents/x/message"), 30);
        assert_eq!(operation_cost(&Method::POST, "/v1/chat/completions"), 30);
        assert_eq!(operation_cost(&Method::POST, "/api/workflows/x/run"), 100);
        assert_eq!(operation_cost(&Method::DELETE, "/api/agents/x"), 5);
    }

    #[test]
    fn budget_is_spent_and_refused_with_a_wait() {
        let limiter = RateLimiter::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(limiter.check(ip, 5, 10).is_ok());
        assert!(limiter.check(ip, 5, 10).is_ok());
        let wait = limiter.check(ip, 5, 10).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
        // Another IP has its own budget.
        assert!(limiter.check([10, 0, 0, 2].into(), 5, 10).is_ok());
        // A new budget takes effect at once.
        assert!(limiter.check(ip, 5, 1000).is_ok());
    }
}
