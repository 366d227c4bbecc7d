//! Timeouts, the call deadline, retries with backoff, and circuit breakers
//! per provider endpoint.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::LlmError;

/// How often and how patiently to retry a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles for each further retry.
    pub base_delay: Duration,
    /// Upper bound of the exponential backoff.
    pub max_delay: Duration,
    /// Longest `Retry-After` we are willing to sleep through; a provider
    /// asking for more gets the [`LlmError::RateLimited`] returned at once,
    /// so the caller can decide (fall back to another model, tell the user).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1 for the first retry):
    /// exponential, capped, with "equal jitter" (half fixed, half random) so
    /// that many clients failing together do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let half = full / 2;
        half + half.mul_f64(random_unit())
    }
}

/// Time limits of one provider's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection.
    pub connect: Duration,
    /// A whole blocking request, reading the answer included.
    pub request: Duration,
    /// Longest silence in a streaming call: before the response headers and
    /// between two chunks. Providers send keep-alives, so silence this long
    /// means the stream is dead.
    pub stream_idle: Duration,
    /// The whole call: every attempt, the backoff between them and, when
    /// streamed, reading the stream to its end. Whatever the other limits
    /// say, a call fails with [`LlmError::Deadline`] once this is over.
    pub call_deadline: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(300),
            stream_idle: Duration::from_secs(90),
            call_deadline: Duration::from_secs(180),
        }
    }
}

/// When one call must be over, fixed when the call starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    /// A deadline `limit` after `now`.
    pub fn starting(now: Instant, limit: Duration) -> Self {
        Deadline {
            // A limit too far to represent is as good as none.
            at: now
                .checked_add(limit)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
            limit,
        }
    }

    /// The instant it expires.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The configured length, for error messages.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }

    /// Whether a retry after `delay` would still start before the deadline.
    /// A retry that could only begin as the deadline expires is pointless:
    /// the caller gets the last real error instead of a deadline error.
    pub fn allows_retry_after(&self, now: Instant, delay: Duration) -> bool {
        delay < self.remaining(now)
    }

    /// How long to wait for something allowed `wait` at `now`, and whether
    /// it is the deadline (rather than `wait`) that ends the wait.
    pub fn bound(&self, now: Instant, wait: Duration) -> (Duration, bool) {
        let remaining = self.remaining(now);
        if remaining <= wait {
            (remaining, true)
        } else {
            (wait, false)
        }
    }
}

/// When a provider's circuit breaker opens and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed calls that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before one probe call is let through.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// Everything about how calls to one provider cope with failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResilienceConfig {
    /// Retries.
    pub retry: RetryPolicy,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast with [`LlmError::CircuitOpen`].
    Open,
    /// The cooldown is over: the next call is a probe that decides.
    HalfOpen,
}

/// A snapshot of one provider endpoint's breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerStatus {
    /// The provider.
    pub provider: String,
    /// The base URL the breaker guards; `None` for a provider never called
    /// (reported closed).
    pub endpoint: Option<String>,
    /// Its state.
    pub state: BreakerState,
    /// Failed calls since the last success.
    pub consecutive_failures: u32,
    /// When the breaker last opened (Unix time, seconds), while not closed.
    pub opened_at: Option<u64>,
    /// Seconds until a probe is allowed (rounded up), while open.
    pub retry_in_secs: Option<u64>,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened: Option<(Instant, SystemTime)>,
    probe_in_flight: bool,
}

/// A circuit breaker guarding one provider endpoint: a provider name at one
/// base URL. Agents may point the same provider name at different servers;
/// one of them failing says nothing about the others.
///
/// Closed → open after [`BreakerConfig::failure_threshold`] consecutive
/// failed calls → after [`BreakerConfig::cooldown`], half-open: exactly one
/// probe call goes through, the others still fail fast → closed if the
/// probe succeeds, open again (for another cooldown) if it fails.
///
/// A call is one logical request, retries included; what counts as a
/// failure is an error that says the provider is unhealthy (5xx, 429,
/// timeouts, connection errors, garbage responses), not client errors.
#[derive(Debug)]
pub struct CircuitBreaker {
    provider: String,
    endpoint: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker for `provider` at `endpoint` (its base URL).
    pub fn new(
        provider: impl Into<String>,
        endpoint: impl Into<String>,
        config: BreakerConfig,
    ) -> Self {
        CircuitBreaker {
            provider: provider.into(),
            endpoint: endpoint.into(),
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened: None,
                probe_in_flight: false,
            }),
        }
    }

    /// The provider it guards.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The base URL it guards.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a few plain fields that are never left half-updated,
        // so a panic elsewhere while holding the lock does not invalidate it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks to make a call. The permit must be told how the call went; a
    /// permit dropped without an outcome only frees the probe slot.
    pub fn acquire(self: &Arc<Self>) -> Result<BreakerPermit, LlmError> {
        let mut inner = self.lock();
        let probe = match inner.state {
            BreakerState::Closed => false,
            BreakerState::Open => {
                let remaining = self.remaining_cooldown(&inner);
                if !remaining.is_zero() {
                    return Err(self.open_error(remaining));
                }
                tracing::info!(provider = %self.provider, endpoint = %self.endpoint, "circuit breaker half-open: letting one probe call through");
                inner.state = BreakerState::HalfOpen;
                inner.probe_in_flight = true;
                true
            }
            BreakerState::HalfOpen => {
                if inner.probe_in_flight {
                    return Err(self.open_error(Duration::ZERO));
                }
                inner.probe_in_flight = true;
                true
            }
        };
        Ok(BreakerPermit {
            breaker: Arc::clone(self),
            probe,
            settled: false,
        })
    }

    fn open_error(&self, retry_in: Duration) -> LlmError {
        LlmError::CircuitOpen {
            provider: self.provider.clone(),
            endpoint: self.endpoint.clone(),
            retry_in,
        }
    }

    fn remaining_cooldown(&self, inner: &Inner) -> Duration {
        match inner.opened {
            Some((at, _)) => self.config.cooldown.saturating_sub(at.elapsed()),
            None => Duration::ZERO,
        }
    }

    fn on_success(&self, probe: bool) {
        let mut inner = self.lock();
        if inner.state != BreakerState::Closed {
            tracing::info!(provider = %self.provider, endpoint = %self.endpoint, "circuit breaker closed");
        }
        inner.state = BreakerState::Closed;
        inner.consecutive_failures = 0;
        inner.opened = None;
        if probe {
            inner.probe_in_flight = false;
        }
    }

    fn on_failure(&self, probe: bool) {
        let mut inner = self.lock();
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        if probe {
            inner.probe_in_flight = false;
        }
        let reopen = match inner.state {
            BreakerState::Closed => inner.consecutive_failures >= self.config.failure_threshold,
            // A failed probe, or a call started before the breaker opened:
            // either way (re)start the cooldown from now.
            BreakerState::HalfOpen => probe,
            BreakerState::Open => false,
        };
        if reopen {
            tracing::warn!(
                provider = %self.provider,
                endpoint = %self.endpoint,
                failures = inner.consecutive_failures,
                cooldown = ?self.config.cooldown,
                "circuit breaker open"
            );
            inner.state = BreakerState::Open;
            inner.opened = Some((Instant::now(), SystemTime::now()));
        }
    }

    fn on_abandon(&self, probe: bool) {
        if probe {
            self.lock().probe_in_flight = false;
        }
    }

    /// The current state. An open breaker whose cooldown is over reports
    /// [`BreakerState::HalfOpen`]: that is what the next call will see.
    pub fn status(&self) -> BreakerStatus {
        let inner = self.lock();
        let remaining = self.remaining_cooldown(&inner);
        let state = match inner.state {
            BreakerState::Open if remaining.is_zero() => BreakerState::HalfOpen,
            state => state,
        };
        BreakerStatus {
            provider: self.provider.clone(),
            endpoint: Some(self.endpoint.clone()),
            state,
            consecutive_failures: inner.consecutive_failures,
            opened_at: inner
                .opened
                .and_then(|(_, wall)| wall.duration_since(UNIX_EPOCH).ok())
                .map(|since| since.as_secs()),
            retry_in_secs: (state == BreakerState::Open)
                .then(|| remaining.as_secs_f64().ceil() as u64),
        }
    }

    /// Closes the breaker and forgets past failures.
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.state = BreakerState::Closed;
        inner.consecutive_failures = 0;
        inner.opened = None;
        inner.probe_in_flight = false;
    }
}

/// Permission to make one call, obtained from [`CircuitBreaker::acquire`].
#[derive(Debug)]
pub struct BreakerPermit {
    breaker: Arc<CircuitBreaker>,
    probe: bool,
    settled: bool,
}

impl BreakerPermit {
    /// The call succeeded (the provider is healthy).
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.on_success(self.probe);
    }

    /// The call failed because of the provider.
    pub fn failure(mut self) {
        self.settled = true;
        self.breaker.on_failure(self.probe);
    }

    /// Settles the permit from a call's outcome: errors that say nothing
    /// about the provider's health (bad request, missing key) count as the
    /// provider having answered.
    pub fn record<T>(self, outcome: &Result<T, LlmError>) {
        match outcome {
            Err(error) if error.counts_against_provider() => self.failure(),
            _ => self.success(),
        }
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.settled {
            // The call was cancelled: no verdict, but a probe slot must not
            // stay taken forever.
            self.breaker.on_abandon(self.probe);
        }
    }
}

/// A number in [0, 1) that differs between calls and processes, for jitter
/// and unique ids. `RandomState` is seeded from the OS once per thread and
/// changes for every instance; mixing in a counter and the clock keeps
/// consecutive values apart without a dependency on a random-number crate.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, cooldown: Duration) -> Arc<CircuitBreaker> {
        Arc::new(CircuitBreaker::new(
            "p",
            "http://p",
            BreakerConfig {
                failure_threshold: threshold,
                cooldown,
            },
        ))
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_retry_after: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let second = policy.backoff(2);
            assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
            let capped = policy.backoff(20);
            assert!(capped >= Duration::from_millis(175) && capped <= Duration::from_millis(350));
        }
        let values: std::collections::HashSet<_> = (0..20).map(|_| policy.backoff(3)).collect();
        assert!(values.len() > 1, "jitter must vary");
    }

    #[test]
    fn deadline_arithmetic() {
        let start = Instant::now();
        let deadline = Deadline::starting(start, Duration::from_secs(10));
        assert_eq!(deadline.limit(), Duration::from_secs(10));
        assert_eq!(deadline.at(), start + Duration::from_secs(10));
        assert_eq!(deadline.remaining(start), Duration::from_secs(10));
        let later = start + Duration::from_secs(7);
        assert_eq!(deadline.remaining(later), Duration::from_secs(3));
        // Past the deadline: nothing left, never negative.
        assert_eq!(
            deadline.remaining(start + Duration::from_secs(60)),
            Duration::ZERO
        );
        // A retry must be able to start before the deadline.
        assert!(deadline.allows_retry_after(later, Duration::from_secs(2)));
        assert!(!deadline.allows_retry_after(later, Duration::from_secs(3)));
        assert!(!deadline.allows_retry_after(later, Duration::from_secs(4)));
        // A wait is cut to what is left, and says so.
        assert_eq!(
            deadline.bound(later, Duration::from_secs(1)),
            (Duration::from_secs(1), false)
        );
        assert_eq!(
            deadline.bound(later, Duration::from_secs(90)),
            (Duration::from_secs(3), true)
        );
        assert_eq!(
            deadline.bound(start + Duration::from_secs(11), Duration::from_secs(1)),
            (Duration::ZERO, true)
        );
        // An absurd limit does not overflow.
        let far = Deadline::starting(start, Duration::MAX);
        assert!(far.remaining(start) > Duration::from_secs(86_400 * 300));
    }

    #[test]
    fn opens_after_threshold_and_fails_fast() {
        let breaker = breaker(2, Duration::from_secs(60));
        breaker.acquire().expect("closed").failure();
        assert_eq!(breaker.status().state, BreakerState::Closed);
        breaker.acquire().expect("closed").failure();
        let status = breaker.status();
        assert_eq!(status.state, BreakerState::Open);
        assert_eq!(status.consecutive_failures, 2);
        assert!(status.opened_at.is_some());
        assert_eq!(status.retry_in_secs, Some(60));
        match breaker.acquire() {
            Err(LlmError::CircuitOpen { retry_in, .. }) => {
                assert!(retry_in > Duration::from_secs(59))
            }
            other => panic!("expected CircuitOpen, got {other:?}"),
        }
    }

    #[test]
    fn success_resets_the_count() {
        let breaker = breaker(2, Duration::from_secs(60));
        breaker.acquire().expect("closed").failure();
        breaker.acquire().expect("closed").success();
        breaker.acquire().expect("closed").failure();
        assert_eq!(breaker.status().state, BreakerState::Closed);
        assert_eq!(breaker.status().consecutive_failures, 1);
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let breaker = breaker(1, Duration::ZERO);
        breaker.acquire().expect("closed").failure();
        assert_eq!(breaker.status().state, BreakerState::HalfOpen);
        let probe = breaker.acquire().expect("probe");
        assert!(matches!(
            breaker.acquire(),
            Err(LlmError::CircuitOpen { .. })
        ));
        // An abandoned probe frees the slot without a verdict.
        drop(probe);
        let probe = breaker.acquire().expect("second probe");
        probe.failure();
        // A failed probe reopens (cooldown zero: half-open again at once).
        assert_eq!(breaker.status().consecutive_failures, 2);
        breaker.acquire().expect("third probe").success();
        let status = breaker.status();
        assert_eq!(status.state, BreakerState::Closed);
        assert_eq!(status.consecutive_failures, 0);
        assert_eq!(status.opened_at, None);
    }

    #[test]
    fn reset_closes() {
        let breaker = breaker(1, Duration::from_secs(60));
        breaker.acquire().expect("closed").failure();
        assert!(breaker.acquire().is_err());
        breaker.reset();
        assert_eq!(breaker.status().state, BreakerState::Closed);
        breaker.acquire().expect("closed after reset").success();
    }

    #[test]
    fn record_ignores_client_errors() {
        let breaker = breaker(1, Duration::from_secs(60));
        let outcome: Result<(), LlmError> = Err(LlmError::Http {
            provider: "p".into(),
            status: 400,
            message: "bad".into(),
        });
        breaker.acquire().expect("closed").record(&outcome);
        assert_eq!(breaker.status().state, BreakerState::Closed);
        let outcome: Result<(), LlmError> = Err(LlmError::Http {
            provider: "p".into(),
            status: 503,
            message: "down".into(),
        });
        breaker.acquire().expect("closed").record(&outcome);
        assert_eq!(breaker.status().state, BreakerState::Open);
    }
}
