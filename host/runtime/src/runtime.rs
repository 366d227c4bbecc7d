//! The runtime: the engines (Cranelift's, and Winch's for a first build
//! of tools and skills), their linkers and compiled-component caches, the
//! epoch ticker and the host's ceilings, shared by every plugin.
//!
//! The engines are built when the first plugin is loaded, not with the
//! runtime: building them reserves the instance pools and links WASI and
//! Talon's interfaces, which is most of a plugin-less daemon's start-up work
//! and a good part of its resident memory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use serde::Serialize;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy,
};

use crate::bindings::Tool;
use crate::cache::Cache;
use crate::ceilings::Ceilings;
use crate::compiler::{Compiler, EngineShape};
use crate::error::LoadError;
use crate::host::{CallState, MemoryBackend};
use crate::slots::Slots;
use crate::ticker::Ticker;
use crate::tls::{TlsRoots, TlsRootsError};
use crate::workspace::Workspaces;

/// How to build a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Per-call ceilings (can be changed later with [`Runtime::set_ceilings`],
    /// except that memory never exceeds the pool's slot size set here).
    pub ceilings: Ceilings,
    /// Instances that may exist at once in the whole runtime (the pooling
    /// allocator is sized for them); more calls wait up to
    /// [`Ceilings::slot_wait`] for a slot, then are refused as busy. Each
    /// plugin also has its own share, [`Ceilings::per_plugin_instances`].
    pub max_instances: u32,
    /// What the pool keeps resident between calls.
    pub retention: PoolRetention,
    /// Whether tools and skills are compiled first with the baseline
    /// compiler (Winch) when no optimized build is cached.
    pub baseline: Baseline,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            ceilings: Ceilings::default(),
            max_instances: 128,
            retention: PoolRetention::default(),
            baseline: Baseline::default(),
        }
    }
}

/// Which compiler built the code a plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Winch, wasmtime's baseline compiler: compiles a Python or JavaScript
    /// component in a few seconds, into slower code.
    Baseline,
    /// Cranelift, optimizing: tens of seconds for a Python or JavaScript
    /// component on 2 cores, the fastest code.
    Optimized,
}

/// How tools and skills are compiled when no optimized build of their
/// component is cached.
///
/// Channels and hands keep one instance for their whole life, which a
/// better build could not replace, so they are always compiled with
/// Cranelift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Cranelift only: the plugin is callable once the optimized build is
    /// ready.
    Off,
    /// Winch first: the plugin is callable once the baseline build is
    /// ready; a background task then compiles it with Cranelift (one
    /// component at a time, at the lowest CPU priority when a compiler
    /// process is set), caches that build and swaps it in for new calls.
    /// Later loads use the cached optimized build directly.
    First,
    /// Winch only, never optimized: for tests and measurements of the
    /// baseline code.
    Only,
}

impl Default for Baseline {
    /// Winch first on x86_64, where Winch is a tier 1 compiler of wasmtime;
    /// off elsewhere.
    fn default() -> Self {
        if cfg!(target_arch = "x86_64") {
            Self::First
        } else {
            Self::Off
        }
    }
}

/// What the pooling allocator keeps of an instance's slot once its call has
/// ended: the trade between the next call's page faults and resident memory.
///
/// Every call runs in a fresh instance whose linear memory starts as a
/// copy-on-write mapping of the component's initial image. A call writes to
/// some of it (a Python or JavaScript interpreter's heap above all), and
/// each first write to a page costs a fault and a page copy. A
/// slot that keeps those pages resident resets only the pages written (found
/// with Linux's `PAGEMAP_SCAN`, 6.7 and later; older kernels reset the whole
/// kept range) by copying the image back, so the next call of the same
/// plugin in that slot takes no faults for them. Pages beyond
/// `memory_keep_resident` are returned to the system. Once `warm_slots` idle
/// slots hold pages, a call takes one of them (reset for its plugin if it
/// served another) rather than a fresh slot.
///
/// The slots holding pages are therefore no more than the peak number of
/// calls at once or `warm_slots`, whichever is more, each holding at most
/// `memory_keep_resident` written bytes per memory and
/// `table_keep_resident` per table, plus the pages of the component's
/// initial image it read before its last written page (mapped from the
/// cache file: shared with the page cache, but counted in RSS once per
/// slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRetention {
    /// Bytes of each linear memory kept resident (reset in place) when its
    /// instance ends; the rest is decommitted. 0 decommits everything, so
    /// every call faults its pages in again.
    pub memory_keep_resident: usize,
    /// The same for each table.
    pub table_keep_resident: usize,
    /// Idle slots holding pages past which a call reuses one of them rather
    /// than a fresh slot (a slot that served the same plugin first).
    pub warm_slots: u32,
}

impl Default for PoolRetention {
    /// Nothing kept: every slot's pages are returned when its call ends.
    /// Keeping 1 MiB per memory made a JavaScript call about 20 % faster in
    /// process but, with 8 calls at once, added 20–30 MiB of RSS per Python
    /// or JavaScript plugin (docs/BENCHMARKS.md), past the 25 MiB bound.
    fn default() -> Self {
        Self {
            memory_keep_resident: 0,
            table_keep_resident: 0,
            warm_slots: 100,
        }
    }
}

/// Fuel a running guest burns between yields to the async executor. The
/// epoch deadline yields at every tick too, which also covers a guest whose
/// time goes to host calls rather than to fuel.
pub(crate) const FUEL_YIELD_INTERVAL: u64 = 2_000_000;

/// The plugin runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The engines, built by the first load (see the module's comment); an
    /// error building them is kept and given to every load.
    engines: OnceLock<Result<Engines, String>>,
    /// What the engines are built from.
    retention: PoolRetention,
    cache_dir: Option<PathBuf>,
    pub baseline_mode: Baseline,
    /// Held by the background compile running now: one at a time, so they
    /// never take both cores from the calls.
    pub optimizing: tokio::sync::Mutex<()>,
    pub ceilings: RwLock<Ceilings>,
    pub pool_memory_bytes: usize,
    /// Advances the engines' epochs while calls run (its thread starts with
    /// the engines).
    pub ticker: Ticker,
    pub slots: Slots,
    pub memory: RwLock<Option<Arc<dyn MemoryBackend>>>,
    /// Socket addresses no plugin may reach, whatever it was granted.
    pub denied_addrs: RwLock<Arc<[SocketAddr]>>,
    /// The roots channels' TLS handshakes trust.
    pub tls: RwLock<TlsRoots>,
    /// The workspace counts of the calls writing now.
    pub workspaces: Workspaces,
    /// The engine's settings, for a compiler process to share.
    pub shape: EngineShape,
    /// Where components are compiled, if not in this process.
    pub compiler: RwLock<Option<Compiler>>,
}

/// The runtime's engines.
pub(crate) struct Engines {
    /// Cranelift's: every plugin's code in the end.
    pub optimized: TierEngine,
    /// Winch's, configured alike, for the first build of tools and skills.
    pub baseline: Option<TierEngine>,
}

/// One compiler's engine, with its own linker (a linker serves one engine)
/// and cache (its artifacts have their own compatibility hash).
pub(crate) struct TierEngine {
    pub engine: Engine,
    pub linker: Linker<CallState>,
    pub cache: Option<Cache>,
}

impl TierEngine {
    fn new(
        shape: EngineShape,
        retention: PoolRetention,
        tier: Tier,
        cache_dir: Option<&PathBuf>,
    ) -> wasmtime::Result<Self> {
        let engine = Engine::new(&engine_config(shape, retention, tier))?;
        Ok(Self {
            linker: new_linker(&engine)?,
            cache: cache_dir.map(|dir| Cache::new(dir.clone(), &engine)),
            engine,
        })
    }

    /// Its cache, which compiling in a child process needs.
    fn cache(&self) -> Result<&Cache, LoadError> {
        self.cache
            .as_ref()
            .ok_or_else(|| LoadError::Engine("no component cache".into()))
    }
}

impl Engines {
    fn new(inner: &Inner) -> Result<Self, String> {
        let tier =
            |tier| TierEngine::new(inner.shape, inner.retention, tier, inner.cache_dir.as_ref());
        let optimized = tier(Tier::Optimized).map_err(|e| format!("{e:#}"))?;
        let baseline = match inner.baseline_mode {
            Baseline::Off => None,
            Baseline::First | Baseline::Only => match tier(Tier::Baseline) {
                Ok(baseline) => Some(baseline),
                // Winch does not support every target: compile with
                // Cranelift alone there.
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "the baseline compiler is not available; plugins are compiled with Cranelift only");
                    None
                }
            },
        };
        let mut engines = vec![optimized.engine.clone()];
        engines.extend(baseline.as_ref().map(|b| b.engine.clone()));
        inner.ticker.start(&engines);
        Ok(Self {
            optimized,
            baseline,
        })
    }
}

/// The engine configuration: the compiler of `tier`, fuel, epochs, the
/// stack limit and the pooling allocator sized for `shape`, keeping what
/// `retention` says between calls. A compiler process builds its engine
/// from the same function (the retention does not shape compiled code), so
/// its output fits this one.
pub(crate) fn engine_config(shape: EngineShape, retention: PoolRetention, tier: Tier) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    let instances = shape.max_instances;
    // A component is a handful of core instances and memories (Python
    // and JavaScript ones more than Rust ones); size the pool for that.
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .total_memories(instances * 4)
        .total_tables(instances * 8)
        .total_stacks(instances)
        .max_memories_per_component(16)
        .max_tables_per_component(32)
        .max_core_instances_per_component(64)
        .max_memory_size(shape.memory_bytes)
        .linear_memory_keep_resident(retention.memory_keep_resident)
        .table_keep_resident(retention.table_keep_resident)
        .max_unused_warm_slots(retention.warm_slots)
        // Resets only the pages a call wrote, where the kernel can say which.
        .pagemap_scan(Enabled::Auto);
    let mut wasm = Config::new();
    wasm.consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(1 << 20)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .strategy(match tier {
            Tier::Baseline => Strategy::Winch,
            Tier::Optimized => Strategy::Cranelift,
        });
    wasm
}

/// A linker with WASI, `wasi:http` and Talon's host interfaces, for `engine`.
fn new_linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker: Linker<CallState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    let mut tls_options = wasmtime_wasi_tls::p2::LinkOptions::default();
    tls_options.tls(true);
    wasmtime_wasi_tls::p2::add_to_linker(&mut linker, &tls_options)?;
    Tool::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    crate::bindings::v0_2_0::Channel::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    // The hand world's other imports are the channel world's, linked above.
    crate::bindings::v0_2_0_hand::talon::plugin::agent::add_to_linker::<_, HasSelf<_>>(
        &mut linker,
        |state| state,
    )?;
    // 0.1.0 hands: their log, memory and settings are the tool world's,
    // linked above; `agent@0.1.0` is a separate import (0.x versions are
    // not semver-compatible with each other).
    crate::bindings::v0_1_0_hand::talon::plugin::agent::add_to_linker::<_, HasSelf<_>>(
        &mut linker,
        |state| state,
    )?;
    crate::workspace::shadow_writes(&mut linker)?;
    crate::wake::shadow_clock(&mut linker)?;
    Ok(linker)
}

impl Runtime {
    /// A runtime whose engines (fuel, epochs, the pooling allocator, the
    /// linker with WASI, `wasi:http` and Talon's host interfaces) are built
    /// when the first plugin loads.
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let instances = config.max_instances.max(1);
        let shape = EngineShape {
            max_instances: instances,
            memory_bytes: config.ceilings.memory_bytes,
        };
        let tls = TlsRoots::new(&[]).map_err(|e| LoadError::Engine(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                engines: OnceLock::new(),
                retention: config.retention,
                cache_dir: config.cache_dir,
                baseline_mode: config.baseline,
                optimizing: tokio::sync::Mutex::new(()),
                ceilings: RwLock::new(config.ceilings),
                pool_memory_bytes: config.ceilings.memory_bytes,
                ticker: Ticker::new(),
                slots: Slots::new(instances),
                memory: RwLock::new(None),
                denied_addrs: RwLock::new(Arc::from(Vec::new())),
                tls: RwLock::new(tls),
                workspaces: Workspaces::default(),
                shape,
                compiler: RwLock::new(None),
            }),
        })
    }

    /// The engines, built now if this is the first load.
    pub(crate) fn engines(&self) -> Result<&Engines, LoadError> {
        self.inner
            .engines
            .get_or_init(|| Engines::new(&self.inner))
            .as_ref()
            .map_err(|e| LoadError::Engine(e.clone()))
    }

    /// The engines, built on a blocking thread if this is the first load
    /// (building them takes milliseconds of system calls).
    async fn engines_built(&self) -> Result<&Engines, LoadError> {
        if self.inner.engines.get().is_none() {
            let runtime = self.clone();
            tokio::task::spawn_blocking(move || runtime.engines().map(|_| ()))
                .await
                .map_err(|e| LoadError::Engine(e.to_string()))??;
        }
        self.engines()
    }

    /// Changes the per-call ceilings (after a config reload). Memory stays
    /// within the pool's slot size chosen at start.
    pub fn set_ceilings(&self, mut ceilings: Ceilings) {
        ceilings.memory_bytes = ceilings.memory_bytes.min(self.inner.pool_memory_bytes);
        if let Ok(mut slot) = self.inner.ceilings.write() {
            *slot = ceilings;
        }
    }

    /// The ceilings in force.
    pub fn ceilings(&self) -> Ceilings {
        self.inner.ceilings.read().map(|c| *c).unwrap_or_default()
    }

    /// Socket addresses no plugin may reach whatever it was granted, on top
    /// of the address policy (non-public addresses need a literal IP and
    /// port grant): the daemon passes its own listen addresses. An
    /// unspecified IP (`0.0.0.0:4545`, `[::]:4545`) denies that port on
    /// every address, since the daemon then answers on all of them.
    /// Applies to calls that start afterwards.
    pub fn deny_addresses(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let addrs: Arc<[SocketAddr]> = addrs.into_iter().collect();
        if let Ok(mut slot) = self.inner.denied_addrs.write() {
            *slot = addrs;
        }
    }

    /// Trusts the CA certificates in `pem` (PEM text, one or more
    /// `CERTIFICATE` blocks) for channels' TLS, on top of the public roots;
    /// an empty `pem` trusts the public roots only. Replaces the extra CAs
    /// set before; applies to channel instances started afterwards.
    pub fn trust_tls_roots(&self, pem: &[u8]) -> Result<(), TlsRootsError> {
        let roots = TlsRoots::new(pem)?;
        if let Ok(mut slot) = self.inner.tls.write() {
            *slot = roots;
        }
        Ok(())
    }

    pub(crate) fn tls_ctx(&self) -> wasmtime_wasi_tls::WasiTlsCtx {
        // A poisoned lock still holds a complete root store.
        let roots = self.inner.tls.read().unwrap_or_else(|p| p.into_inner());
        roots.ctx()
    }

    pub(crate) fn denied_addresses(&self) -> Arc<[SocketAddr]> {
        self.inner
            .denied_addrs
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|_| Arc::from(Vec::new()))
    }

    /// Connects plugin memory to the kernel's store.
    pub fn set_memory_backend(&self, backend: Arc<dyn MemoryBackend>) {
        if let Ok(mut slot) = self.inner.memory.write() {
            *slot = Some(backend);
        }
    }

    pub(crate) fn memory_backend(&self) -> Option<Arc<dyn MemoryBackend>> {
        self.inner.memory.read().ok().and_then(|m| m.clone())
    }

    /// Compiles components in a child process from now on (the daemon
    /// passes its own executable; see `compiler.rs`). Needs the cache
    /// directory, where the child writes; without one, or without a
    /// compiler, components are compiled in this process.
    pub fn set_compiler(&self, compiler: Compiler) {
        if let Ok(mut slot) = self.inner.compiler.write() {
            *slot = Some(compiler);
        }
    }

    /// Compiles a component with Cranelift, or loads it from the cache.
    /// Returns whether it was a cache hit. Compiling takes a while: it runs
    /// in the compiler process if there is one, else on a blocking thread.
    pub(crate) async fn compile(
        &self,
        bytes: Arc<Vec<u8>>,
    ) -> Result<(wasmtime::component::Component, bool), LoadError> {
        self.compile_with(Tier::Optimized, bytes, false).await
    }

    /// The engine of `tier` (the optimized one if there is no baseline
    /// engine).
    pub(crate) fn engine_of(&self, tier: Tier) -> Result<&TierEngine, LoadError> {
        let engines = self.engines()?;
        Ok(match (tier, &engines.baseline) {
            (Tier::Baseline, Some(baseline)) => baseline,
            _ => &engines.optimized,
        })
    }

    /// Compiles a tool's or skill's component for its first load: the
    /// cached optimized build if there is one; else, with the baseline
    /// compiler on, the baseline build (cached or compiled now); else the
    /// optimized build compiled now. Returns the component, its tier and
    /// whether it came from the cache.
    pub(crate) async fn compile_first(
        &self,
        bytes: Arc<Vec<u8>>,
    ) -> Result<(wasmtime::component::Component, Tier, bool), LoadError> {
        if self.engines_built().await?.baseline.is_none() {
            let (component, cached) = self.compile(bytes).await?;
            return Ok((component, Tier::Optimized, cached));
        }
        let first = self.inner.baseline_mode == Baseline::First;
        if first && let Some(component) = self.cached(Tier::Optimized, bytes.clone()).await? {
            return Ok((component, Tier::Optimized, true));
        }
        if let Some(component) = self.cached(Tier::Baseline, bytes.clone()).await? {
            return Ok((component, Tier::Baseline, true));
        }
        // A background compile writes the optimized build before it removes
        // the baseline one: both missing means it was just written.
        if first && let Some(component) = self.cached(Tier::Optimized, bytes.clone()).await? {
            return Ok((component, Tier::Optimized, true));
        }
        let (component, cached) = self.compile_with(Tier::Baseline, bytes, false).await?;
        Ok((component, Tier::Baseline, cached))
    }

    /// The cached build of `tier`, if there is a usable one.
    async fn cached(
        &self,
        tier: Tier,
        bytes: Arc<Vec<u8>>,
    ) -> Result<Option<wasmtime::component::Component>, LoadError> {
        let runtime = self.clone();
        tokio::task::spawn_blocking(move || {
            let tier = runtime.engine_of(tier)?;
            match &tier.cache {
                Some(cache) => cache.cached(&tier.engine, &bytes).map(|(_, hit)| hit),
                None => Ok(None),
            }
        })
        .await
        .map_err(|e| LoadError::Engine(e.to_string()))?
    }

    /// Compiles a component with the compiler of `tier`, or loads it from
    /// that tier's cache; `background` lowers the compiler process's CPU
    /// priority. Returns whether it was a cache hit.
    pub(crate) async fn compile_with(
        &self,
        tier: Tier,
        bytes: Arc<Vec<u8>>,
        background: bool,
    ) -> Result<(wasmtime::component::Component, bool), LoadError> {
        let compiler = self.inner.compiler.read().ok().and_then(|c| c.clone());
        let blocking = |e: tokio::task::JoinError| LoadError::Engine(e.to_string());
        self.engines_built().await?;
        if let (Some(compiler), Some(_)) = (compiler, &self.engine_of(tier)?.cache) {
            let (path, hit) = {
                let runtime = self.clone();
                let bytes = bytes.clone();
                tokio::task::spawn_blocking(move || {
                    let tier = runtime.engine_of(tier)?;
                    tier.cache()?.cached(&tier.engine, &bytes)
                })
                .await
                .map_err(blocking)??
            };
            if let Some(component) = hit {
                return Ok((component, true));
            }
            let started = std::time::Instant::now();
            let job = crate::compiler::Job {
                shape: self.inner.shape,
                tier,
                background,
            };
            if compiler.compile(job, bytes.clone(), &path).await? {
                tracing::info!(
                    bytes = bytes.len(),
                    ?tier,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "component compiled in a child process"
                );
                let runtime = self.clone();
                let component = tokio::task::spawn_blocking(move || {
                    let tier = runtime.engine_of(tier)?;
                    tier.cache()?.map(&tier.engine, &path)
                })
                .await
                .map_err(blocking)??;
                return Ok((component, false));
            }
        }
        let runtime = self.clone();
        tokio::task::spawn_blocking(move || {
            let tier = runtime.engine_of(tier)?;
            match &tier.cache {
                Some(cache) => cache.load(&tier.engine, &bytes),
                None => wasmtime::component::Component::new(&tier.engine, &**bytes)
                    .map(|c| (c, false))
                    .map_err(|e| LoadError::Compile(format!("{e:#}"))),
            }
        })
        .await
        .map_err(blocking)?
    }

    /// Removes the baseline build of a component from the cache once its
    /// optimized build is cached: later loads use that one.
    pub(crate) fn forget_baseline(&self, bytes: &[u8]) {
        // No engines yet: nothing was compiled, so nothing is cached.
        if let Some(Ok(Engines {
            baseline: Some(TierEngine {
                cache: Some(cache), ..
            }),
            ..
        })) = self.inner.engines.get()
        {
            cache.remove(bytes);
        }
    }
}
