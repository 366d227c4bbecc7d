//! The runtime: one engine, one linker, the compiled-component cache, the
//! epoch ticker and the host's ceilings, shared by every plugin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            ceilings: Ceilings::default(),
            max_instances: 128,
            retention: PoolRetention::default(),
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
    pub engine: Engine,
    pub linker: Linker<CallState>,
    pub cache: Option<Cache>,
    pub ceilings: RwLock<Ceilings>,
    pub pool_memory_bytes: usize,
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

/// The engine configuration: fuel, epochs, the stack limit and the pooling
/// allocator sized for `shape`, keeping what `retention` says between
/// calls. A compiler process builds its engine from the same function (the
/// retention does not shape compiled code), so its output fits this one.
pub(crate) fn engine_config(shape: EngineShape, retention: PoolRetention) -> Config {
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
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm
}

impl Runtime {
    /// Builds the engine (fuel, epochs, the pooling allocator) and the linker
    /// with WASI, `wasi:http` and Talon's host interfaces.
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let engine_err = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        let instances = config.max_instances.max(1);
        let shape = EngineShape {
            max_instances: instances,
            memory_bytes: config.ceilings.memory_bytes,
        };
        let wasm = engine_config(shape, config.retention);
        let engine = Engine::new(&wasm).map_err(engine_err)?;

        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_err)?;
        let mut tls_options = wasmtime_wasi_tls::p2::LinkOptions::default();
        tls_options.tls(true);
        wasmtime_wasi_tls::p2::add_to_linker(&mut linker, &tls_options).map_err(engine_err)?;
        let tls = TlsRoots::new(&[]).map_err(|e| LoadError::Engine(e.to_string()))?;
        Tool::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(engine_err)?;
        crate::bindings::v0_2_0::Channel::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| {
            state
        })
        .map_err(engine_err)?;
        // The hand world's other imports are the channel world's, linked above.
        crate::bindings::v0_2_0_hand::talon::plugin::agent::add_to_linker::<_, HasSelf<_>>(
            &mut linker,
            |state| state,
        )
        .map_err(engine_err)?;
        crate::workspace::shadow_writes(&mut linker).map_err(engine_err)?;

        let cache = config.cache_dir.map(|dir| Cache::new(dir, &engine));
        let ticker = Ticker::start(&engine);
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache,
                ceilings: RwLock::new(config.ceilings),
                pool_memory_bytes: config.ceilings.memory_bytes,
                ticker,
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

    /// Compiles a component, or loads it from the cache. Returns whether it
    /// was a cache hit. Compiling takes a while: it runs in the compiler
    /// process if there is one, else on a blocking thread.
    pub(crate) async fn compile(
        &self,
        bytes: Arc<Vec<u8>>,
    ) -> Result<(wasmtime::component::Component, bool), LoadError> {
        let inner = self.inner.clone();
        let compiler = inner.compiler.read().ok().and_then(|c| c.clone());
        let blocking = |e: tokio::task::JoinError| LoadError::Engine(e.to_string());
        if let (Some(compiler), Some(_)) = (compiler, &inner.cache) {
            let (path, hit) = {
                let inner = inner.clone();
                let bytes = bytes.clone();
                tokio::task::spawn_blocking(move || match &inner.cache {
                    Some(cache) => cache.cached(&inner.engine, &bytes),
                    None => Err(LoadError::Engine("no component cache".into())),
                })
                .await
                .map_err(blocking)??
            };
            if let Some(component) = hit {
                return Ok((component, true));
            }
            let started = std::time::Instant::now();
            if compiler.compile(inner.shape, bytes.clone(), &path).await? {
                tracing::info!(
                    bytes = bytes.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "component compiled in a child process"
                );
                let component = tokio::task::spawn_blocking(move || match &inner.cache {
                    Some(cache) => cache.map(&inner.engine, &path),
                    None => Err(LoadError::Engine("no component cache".into())),
                })
                .await
                .map_err(blocking)??;
                return Ok((component, false));
            }
        }
        tokio::task::spawn_blocking(move || match &inner.cache {
            Some(cache) => cache.load(&inner.engine, &bytes),
            None => wasmtime::component::Component::new(&inner.engine, &**bytes)
                .map(|c| (c, false))
                .map_err(|e| LoadError::Compile(format!("{e:#}"))),
        })
        .await
        .map_err(blocking)?
    }
}
