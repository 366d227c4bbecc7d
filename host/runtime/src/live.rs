//! Long-lived instances: one store kept for an instance's whole life,
//! shared by the supervisors of channels (`channel.rs`) and hands
//! (`hand.rs`).
//!
//! A tool gets a fresh instance per call; a channel holds a connection and
//! a hand holds its working state, so each keeps one instance. What stays
//! the same is the guard: the supervisor holds one of the plugin's and one
//! of the runtime's instance slots while the instance lives, its memory
//! limit holds for its whole life (the store's limiter), and every entry
//! gets fresh fuel and its own yielding epoch deadline, under an outer
//! timeout. Any failed entry means the instance is dropped and a new one
//! started after a [`Backoff`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::Store;

use crate::ceilings::Ceilings;
use crate::error::GuardError;
use crate::guard::{Deadline, StoreSpec, classify};
use crate::host::CallState;
use crate::plugin::{CallContext, Cost, EffectiveLimits};
use crate::runtime::Runtime;

/// The first pause before a reconnect or a restart; it doubles each time
/// up to [`MAX_BACKOFF`] and starts over once the instance works again.
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// The longest pause before a reconnect or a restart.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Grace given to the async timeout beyond the epoch deadline.
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);

/// The future of a call into a live instance, borrowing the store.
pub(crate) type CallFuture<'s, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = wasmtime::Result<T>> + Send + 's>>;

/// A world's pre-instantiated component, instantiated once per life.
pub(crate) trait LivePre: Send + Sync {
    /// The world's typed exports.
    type World: Send + Sync;

    /// The engine it was compiled for.
    fn engine(&self) -> &wasmtime::Engine;

    /// Instantiates the component in `store`.
    fn instantiate<'s>(&'s self, store: &'s mut Store<CallState>) -> CallFuture<'s, Self::World>;
}

/// One live instance: its store (fuel, memory limiter, WASI) and exports.
pub(crate) struct Live<W> {
    store: Store<CallState>,
    world: W,
    deadline: Deadline,
    limits: EffectiveLimits,
}

impl<W: Send + Sync> Live<W> {
    /// Instantiates under the guard's limits (the caller holds the slots).
    /// `prepare` adds to the store's state what the world's imports need
    /// before any guest code runs.
    pub(crate) async fn start<P: LivePre<World = W>>(
        runtime: &Runtime,
        pre: &P,
        spec: StoreSpec<'_>,
        ctx: &CallContext,
        limits: EffectiveLimits,
        ceilings: &Ceilings,
        prepare: impl FnOnce(&mut CallState),
    ) -> Result<Self, GuardError> {
        let timeout = Duration::from_millis(limits.timeout_ms);
        let deadline = Deadline::after(timeout);
        let mut store = runtime
            .new_store(pre.engine(), spec, ctx, &limits, ceilings, deadline.clone())
            .map_err(GuardError::Instantiate)?;
        prepare(store.data_mut());
        let _running = runtime.inner.ticker.running();
        let made = tokio::time::timeout(timeout + TIMEOUT_GRACE, pre.instantiate(&mut store)).await;
        let world = match made {
            Err(_) => return Err(GuardError::Timeout { limit: timeout }),
            Ok(Ok(world)) => world,
            Ok(Err(e)) => return Err(classify(e, &limits, store.data(), false)),
        };
        Ok(Self {
            store,
            world,
            deadline,
            limits,
        })
    }

    /// Enters the instance once: fresh fuel, a new deadline, the outer
    /// timeout. Any error means the instance can no longer be trusted (a
    /// trap leaves it unusable) and must be dropped.
    pub(crate) async fn enter<T: Send>(
        &mut self,
        runtime: &Runtime,
        call: impl for<'s> FnOnce(&'s W, &'s mut Store<CallState>) -> CallFuture<'s, T>,
    ) -> Result<T, GuardError> {
        self.enter_costed(runtime, call).await.0
    }

    /// [`enter`](Self::enter), also reporting what the entry cost.
    pub(crate) async fn enter_costed<T: Send>(
        &mut self,
        runtime: &Runtime,
        call: impl for<'s> FnOnce(&'s W, &'s mut Store<CallState>) -> CallFuture<'s, T>,
    ) -> (Result<T, GuardError>, Cost) {
        let started = Instant::now();
        let timeout = Duration::from_millis(self.limits.timeout_ms);
        if let Err(e) = self.store.set_fuel(self.limits.fuel) {
            return (Err(GuardError::Instantiate(e.to_string())), Cost::default());
        }
        self.deadline.reset(timeout);
        let _running = runtime.inner.ticker.running();
        let outcome =
            tokio::time::timeout(timeout + TIMEOUT_GRACE, call(&self.world, &mut self.store)).await;
        let cost = Cost {
            fuel: self
                .limits
                .fuel
                .saturating_sub(self.store.get_fuel().unwrap_or(0)),
            wall_us: started.elapsed().as_micros() as u64,
            peak_memory: self.peak_memory() as u64,
            log_lines_dropped: self.store.data().log.dropped,
        };
        let result = match outcome {
            Err(_) => Err(GuardError::Timeout { limit: timeout }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify(e, &self.limits, self.store.data(), true)),
        };
        (result, cost)
    }

    /// Peak linear memory of the instance so far, in bytes.
    pub(crate) fn peak_memory(&self) -> usize {
        self.store.data().limiter.peak
    }
}

/// The pause before the next reconnect or restart: doubles from
/// [`MIN_BACKOFF`] up to [`MAX_BACKOFF`], and starts over on success.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(MIN_BACKOFF)
    }
}

impl Backoff {
    /// The pause to take now; the next one is twice as long.
    pub(crate) fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        now
    }

    /// The instance works again: the next pause is the shortest.
    pub(crate) fn reset(&mut self) {
        self.0 = MIN_BACKOFF;
    }
}

/// Milliseconds since the Unix epoch, for statuses.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
