//! The guard: the one path into guest code.
//!
//! Every entry into a plugin (a tool call, `describe`, `instructions`, a
//! health probe, and the hand and channel lifecycles to come) is a
//! [`GuestCall`] run by [`Runtime::guarded`], which
//!
//! 1. takes one of the plugin's instance slots and one of the runtime's,
//!    waiting at most `Ceilings::slot_wait`, else refuses with
//!    [`GuardError::Busy`] (and a warning naming the plugin);
//! 2. builds a fresh store: fuel, linear memory and table limits, a capped
//!    resource table and `wasi:http` field size, the network gate, the log
//!    budget;
//! 3. sets an epoch deadline that *yields* to the executor at every tick
//!    (5 ms) and traps once the call's wall-clock time is up, so a guest
//!    never holds a worker thread, even one looping in cheap host calls;
//! 4. instantiates (guest code runs there too) and makes the call under an
//!    outer tokio timeout, which also ends a guest blocked in a host call;
//! 5. turns whatever stopped it into a named [`GuardError`] and reports
//!    what the call cost.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Instance, ResourceTableError};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};
use wasmtime_wasi_http::{FieldMapError, WasiHttpCtx};

use crate::ceilings::Ceilings;
use crate::error::GuardError;
use crate::host::{CallCaps, CallState, Grants, HttpGate, Limiter, MemoryLimitHit, truncate};
use crate::log::CallLog;
use crate::permissions::SocketPolicy;
use crate::plugin::{CallContext, Cost, EffectiveLimits, Linked, PluginInner};
use crate::runtime::{FUEL_YIELD_INTERVAL, Runtime};
use crate::slots::PerPlugin;

/// Bytes of a guest's stderr kept per call (shown when it traps).
const STDERR_CAPACITY: usize = 64 * 1024;
/// Grace given to the async timeout beyond the epoch deadline, so the more
/// precise epoch trap normally fires first.
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);

/// The future of a [`GuestCall`], borrowing the store.
pub(crate) type GuestFuture<'s, T> = Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 's>>;

/// What the guard does once the instance exists: call one or more of its
/// exports. Host-side refusals inside it (a result too large) are returned
/// as a [`GuardError`] wrapped in the `wasmtime::Error`.
pub(crate) trait GuestCall: Send {
    /// What the call answers.
    type Output: Send;
    /// What is entered, for logs and refusals: `invoke`, `describe`...
    const ENTRY: &'static str;

    /// Makes the call on a fresh instance of `linked`.
    fn call<'s>(
        self,
        store: &'s mut Store<CallState>,
        instance: Instance,
        linked: &'s Linked,
    ) -> GuestFuture<'s, Self::Output>
    where
        Self: 's;
}

/// What a guarded call answered and what it cost.
pub(crate) struct Guarded<T> {
    pub result: Result<T, GuardError>,
    pub cost: Cost,
}

/// Refuses a result larger than the call's cap, from inside a [`GuestCall`].
pub(crate) fn check_result_size(store: &Store<CallState>, size: usize) -> wasmtime::Result<()> {
    let limit = store.data().caps.result_bytes;
    if size > limit {
        return Err(wasmtime::Error::new(GuardError::ResultTooLarge {
            size,
            limit,
        }));
    }
    Ok(())
}

impl Runtime {
    /// Runs `call` on a fresh instance of `plugin`, under every limit.
    pub(crate) async fn guarded<C: GuestCall>(
        &self,
        plugin: &PluginInner,
        ctx: &CallContext,
        call: C,
    ) -> Guarded<C::Output> {
        let started = Instant::now();
        let ceilings = self.ceilings();
        let limits = EffectiveLimits::new(&plugin.manifest, &ceilings);
        let refused = |result| Guarded {
            result: Err(result),
            cost: Cost::default(),
        };
        let _permit = match self
            .inner
            .slots
            .acquire(
                &plugin.shared,
                ceilings.per_plugin_instances,
                ceilings.slot_wait,
                C::ENTRY,
            )
            .await
        {
            Ok(permit) => permit,
            Err(e) => return refused(e),
        };
        let spec = StoreSpec {
            env: &plugin.env,
            filesystem: plugin.granted.filesystem.is_some(),
            grants: &plugin.grants,
            shared: &plugin.shared,
            sockets: None,
        };
        let deadline = Deadline::after(Duration::from_millis(limits.timeout_ms));
        // The build in force now; a swap to a better one during the call
        // applies to the next call.
        let linked = plugin.linked();
        let mut store = match self.new_store(
            linked.instance_pre.engine(),
            spec,
            ctx,
            &limits,
            &ceilings,
            deadline,
        ) {
            Ok(store) => store,
            Err(e) => return refused(GuardError::Instantiate(e)),
        };
        let _running = self.inner.ticker.running();
        let timeout = Duration::from_millis(limits.timeout_ms);
        let mut instantiated = false;
        let outcome = tokio::time::timeout(timeout + TIMEOUT_GRACE, async {
            let instance = linked.instance_pre.instantiate_async(&mut store).await?;
            instantiated = true;
            call.call(&mut store, instance, &linked).await
        })
        .await;
        let fuel_left = store.get_fuel().unwrap_or(0);
        let state = store.data();
        let cost = Cost {
            fuel: limits.fuel.saturating_sub(fuel_left),
            wall_us: started.elapsed().as_micros() as u64,
            peak_memory: state.limiter.peak as u64,
            log_lines_dropped: state.log.dropped,
        };
        let plugin_name = &*plugin.grants.plugin;
        if state.log.dropped > 0 {
            tracing::warn!(
                plugin = plugin_name,
                entry = C::ENTRY,
                written = state.log.written,
                dropped = state.log.dropped,
                "plugin log lines dropped: over its per-call or per-second limit"
            );
        }
        let result = match outcome {
            Err(_elapsed) => Err(GuardError::Timeout { limit: timeout }),
            Ok(Ok(output)) => Ok(output),
            Ok(Err(error)) => Err(classify(error, &limits, state, instantiated)),
        };
        // A guest that traps after a refused write (a panic on the error)
        // was stopped by the quota.
        let result = match (result, quota_refusal(state)) {
            (Err(GuardError::Trap(detail)), Some(refusal)) => Err(refusal(detail)),
            (result, _) => result,
        };
        if let Err(e) = &result {
            tracing::debug!(plugin = plugin_name, entry = C::ENTRY, error = %e, "plugin call stopped");
        }
        Guarded { result, cost }
    }

    /// A store for one call (a tool's) or one instance's life (a
    /// channel's): WASI with only the granted preopen, environment and
    /// sockets, the network gate, the limiter, the capped resource table,
    /// fuel and the yielding epoch deadline, which traps once `deadline`
    /// has passed (a channel moves it before every call).
    pub(crate) fn new_store(
        &self,
        engine: &wasmtime::Engine,
        spec: StoreSpec<'_>,
        ctx: &CallContext,
        limits: &EffectiveLimits,
        ceilings: &Ceilings,
        deadline: Deadline,
    ) -> Result<Store<CallState>, String> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stderr(stderr.clone());
        if let Some(policy) = spec.sockets.filter(|p| !p.is_empty()) {
            self.gate_sockets(&mut wasi, policy.clone());
        }
        for (name, value) in spec.env {
            wasi.env(name, value);
        }
        let mut quota = None;
        if spec.filesystem
            && let Some(workspace) = &ctx.workspace
        {
            wasi.preopened_dir(workspace, "/", FsPerms::ReadWrite)
                .map_err(|e| format!("cannot open the agent's workspace: {e:#}"))?;
            quota = Some(
                self.inner
                    .workspaces
                    .call(workspace, ceilings.workspace_bytes),
            );
        }
        let memory = match (&ctx.agent_id, self.memory_backend()) {
            (Some(agent), Some(backend)) => Some((backend, agent.clone())),
            _ => None,
        };
        let mut table = wasmtime::component::ResourceTable::new();
        table.set_max_capacity(ceilings.resource_entries);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(ceilings.http_fields_bytes);
        let state = CallState {
            wasi: wasi.build(),
            http,
            tls: self.tls_ctx(),
            table,
            gate: HttpGate {
                policy: spec.grants.network.clone(),
                denied_addrs: self.denied_addresses(),
                denied: Arc::new(Mutex::new(None)),
            },
            limiter: Limiter {
                max_memory: limits.memory_bytes,
                total: 0,
                peak: 0,
            },
            grants: spec.grants.clone(),
            memory,
            stderr,
            caps: CallCaps {
                result_bytes: ceilings.result_bytes,
                resource_entries: ceilings.resource_entries,
                http_fields_bytes: ceilings.http_fields_bytes,
                log_lines_per_call: ceilings.log_lines_per_call,
                log_lines_per_second: ceilings.log_lines_per_second,
                log_line_bytes: ceilings.log_line_bytes,
            },
            log: CallLog::default(),
            shared: spec.shared.clone(),
            workspace: quota,
            hand: None,
            receive_wake: None,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_fuel(limits.fuel).map_err(|e| e.to_string())?;
        store
            .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
            .map_err(|e| e.to_string())?;
        // Every tick the guest yields to the executor, so other tasks on its
        // worker thread run; once the call's time is up it traps. Fuel alone
        // cannot do this: a loop of cheap host calls burns little fuel.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if deadline.passed() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        Ok(store)
    }
}

/// What a store is built from: the parts of a loaded plugin it needs.
pub(crate) struct StoreSpec<'a> {
    pub env: &'a [(String, String)],
    /// Whether the workspace preopen was granted.
    pub filesystem: bool,
    pub grants: &'a Arc<Grants>,
    pub shared: &'a Arc<PerPlugin>,
    /// Granted TCP connections (channels only).
    pub sockets: Option<&'a Arc<SocketPolicy>>,
}

/// When the running call's time is up: fixed for a tool's one call, moved
/// before each call into a long-lived channel instance.
#[derive(Clone)]
pub(crate) struct Deadline(Arc<Mutex<Instant>>);

impl Deadline {
    /// A deadline `after` from now.
    pub fn after(after: Duration) -> Self {
        Self(Arc::new(Mutex::new(Instant::now() + after)))
    }

    /// Moves it to `after` from now.
    pub fn reset(&self, after: Duration) {
        if let Ok(mut at) = self.0.lock() {
            *at = Instant::now() + after;
        }
    }

    fn passed(&self) -> bool {
        self.0.lock().map_or(true, |at| Instant::now() >= *at)
    }
}

impl Runtime {
    /// Opens `wasi:sockets` TCP to the granted pairs only: every connection
    /// is checked after DNS by [`SocketPolicy::allows`], name lookups are
    /// linked only when a name is granted, and the only bind allowed is
    /// the implicit one a connect makes. No UDP, no listening.
    fn gate_sockets(&self, wasi: &mut WasiCtxBuilder, policy: Arc<SocketPolicy>) {
        let denied = self.denied_addresses();
        wasi.allow_tcp(true)
            .allow_ip_name_lookup(policy.needs_name_lookup())
            .socket_addr_check(move |addr, usage| {
                let policy = policy.clone();
                let denied = denied.clone();
                Box::pin(async move {
                    match usage {
                        SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                        SocketAddrUse::TcpConnect => match policy.allows(addr, &denied).await {
                            Ok(()) => true,
                            Err(reason) => {
                                tracing::warn!(%addr, %reason, "plugin socket refused");
                                false
                            }
                        },
                        _ => false,
                    }
                })
            });
    }
}

/// If a write of the call was refused by the workspace quota, the error
/// naming it, around the guest's own account of what failed.
pub(crate) fn quota_refusal(state: &CallState) -> Option<impl FnOnce(String) -> GuardError> {
    let quota = state.workspace.as_ref().filter(|q| q.was_refused())?;
    let limit = quota.limit;
    Some(move |detail: String| GuardError::WorkspaceQuota {
        limit,
        detail: truncate(&detail, 1000).to_string(),
    })
}

/// Turns what stopped a call into the error an author can act on.
pub(crate) fn classify(
    error: wasmtime::Error,
    limits: &EffectiveLimits,
    state: &CallState,
    instantiated: bool,
) -> GuardError {
    if let Some(refusal) = error.downcast_ref::<GuardError>() {
        return refusal.clone();
    }
    if let Some(hit) = error.downcast_ref::<MemoryLimitHit>() {
        return GuardError::MemoryLimit {
            requested: hit.requested,
            limit: hit.limit,
        };
    }
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return GuardError::Exited(exit.0);
    }
    if let Some(ResourceTableError::Full) = error.downcast_ref::<ResourceTableError>() {
        return GuardError::ResourceLimit {
            what: "host resources (WASI handles such as wasi:http fields, requests, bodies, streams)",
            limit: state.caps.resource_entries,
        };
    }
    if let Some(FieldMapError::TotalSizeTooBig | FieldMapError::TooManyFields) =
        error.downcast_ref::<FieldMapError>()
    {
        return GuardError::ResourceLimit {
            what: "bytes of headers in one wasi:http fields resource",
            limit: state.caps.http_fields_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => GuardError::OutOfFuel { limit: limits.fuel },
        Some(Trap::Interrupt) => GuardError::Timeout {
            limit: Duration::from_millis(limits.timeout_ms),
        },
        Some(Trap::StackOverflow) => GuardError::StackOverflow,
        Some(Trap::MemoryOutOfBounds) => GuardError::Trap(format!(
            "{}; often the plugin's own stack in linear memory overflowing (deep recursion)",
            Trap::MemoryOutOfBounds
        )),
        Some(trap) => {
            // A Rust panic prints its message to stderr before trapping.
            let output = state.stderr.contents();
            let text = String::from_utf8_lossy(&output);
            // Its last lines, without Rust's hint about backtraces.
            let mut tail: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
                .rev()
                .take(2)
                .collect();
            tail.reverse();
            match tail.is_empty() {
                true => GuardError::Trap(trap.to_string()),
                false => GuardError::Trap(format!(
                    "{trap}; stderr: {}",
                    truncate(&tail.join(" "), 1000)
                )),
            }
        }
        // Not a trap: a host call failed in a way the guest cannot handle
        // (a bad handle, for example), or the instance could not be made.
        None => {
            let text = truncate(&format!("{error:#}"), 2000).to_string();
            match instantiated {
                true => GuardError::Trap(text),
                false => GuardError::Instantiate(text),
            }
        }
    }
}
