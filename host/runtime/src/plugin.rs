//! A loaded plugin and how it is called: a fresh store per call, metered for
//! fuel, wall-clock time and memory, with only what the operator granted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::component::{Instance, InstancePre};
use wasmtime::{Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::bindings::talon::plugin::types::ToolError;
use crate::bindings::{Tool, ToolPre};
use crate::error::{InvokeError, LoadError};
use crate::host::{CallState, Grants, HttpGate, Limiter, MemoryLimitHit, truncate};
use crate::manifest::{Kind, Manifest, Permissions, ToolSpec};
use crate::permissions::NetworkPolicy;
use crate::runtime::{Ceilings, FUEL_YIELD_INTERVAL, Runtime};
use crate::ticker::ticks_for;

/// Bytes of a guest's stderr kept per call (shown when it traps).
const STDERR_CAPACITY: usize = 64 * 1024;
/// Grace given to the async timeout beyond the epoch deadline, so the more
/// precise epoch trap normally fires first.
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);

/// Who is calling a tool, and with what.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The calling agent; plugin memory is scoped to it. `None` for direct
    /// invocations, which have no memory.
    pub agent_id: Option<String>,
    /// The agent's workspace, preopened as `/` if the plugin was granted
    /// filesystem access.
    pub workspace: Option<PathBuf>,
}

/// Where the network gate leaves the reason it refused a request.
type DeniedReason = Arc<Mutex<Option<String>>>;

/// What one call cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Fuel burned (roughly, WebAssembly instructions executed).
    pub fuel: u64,
    /// Wall-clock time, instantiation included, in microseconds.
    pub wall_us: u64,
    /// Peak linear memory of the instance, in bytes.
    pub peak_memory: u64,
}

/// The result of one call and what it cost.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The tool's JSON output, or why there is none.
    pub result: Result<String, InvokeError>,
    /// What the call cost, also when it failed.
    pub cost: Cost,
}

/// The limits one call of a plugin runs under: the manifest's, capped by the
/// host's ceilings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EffectiveLimits {
    /// Fuel for one call.
    pub fuel: u64,
    /// Linear memory in bytes.
    pub memory_bytes: usize,
    /// Wall-clock deadline in milliseconds.
    pub timeout_ms: u64,
}

impl EffectiveLimits {
    /// The manifest's limits, capped by the host's ceilings.
    pub fn new(manifest: &Manifest, ceilings: &Ceilings) -> Self {
        let limits = &manifest.limits;
        Self {
            fuel: limits.fuel.map_or(ceilings.fuel, |f| f.min(ceilings.fuel)),
            memory_bytes: limits.memory_mb.map_or(ceilings.memory_bytes, |mb| {
                (mb as usize)
                    .saturating_mul(1 << 20)
                    .min(ceilings.memory_bytes)
            }),
            timeout_ms: limits
                .timeout_ms
                .map_or(ceilings.timeout.as_millis() as u64, |t| {
                    t.min(ceilings.timeout.as_millis() as u64)
                }),
        }
    }
}

/// A plugin compiled, linked and described, ready to be called. Cheap to
/// clone; calls in flight keep the version they started with alive, so
/// replacing a plugin never fails them.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    manifest: Manifest,
    granted: Permissions,
    grants: Arc<Grants>,
    env: Vec<(String, String)>,
    /// Linked, with the exports' indices resolved once, so a call only
    /// instantiates and calls.
    pre: ToolPre<CallState>,
    instructions: Option<String>,
    cached: bool,
}

impl Plugin {
    /// The manifest the plugin was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// What the operator granted.
    pub fn granted(&self) -> &Permissions {
        &self.inner.granted
    }

    /// The tools it offers.
    pub fn tools(&self) -> &[ToolSpec] {
        &self.inner.manifest.tools
    }

    /// A skill's instructions for agents.
    pub fn instructions(&self) -> Option<&str> {
        self.inner.instructions.as_deref()
    }

    /// Whether the compiled component came from the disk cache.
    pub fn was_cached(&self) -> bool {
        self.inner.cached
    }

    /// The limits its calls run under, given the host's ceilings.
    pub fn limits(&self, ceilings: &Ceilings) -> EffectiveLimits {
        EffectiveLimits::new(&self.inner.manifest, ceilings)
    }
}

/// What a component says about itself: its tools, and its instructions if
/// it is a skill.
#[derive(Debug, Clone)]
pub struct Description {
    /// The tools, with their JSON Schemas parsed.
    pub tools: Vec<ToolSpec>,
    /// The instructions, for skills.
    pub instructions: Option<String>,
}

impl Runtime {
    /// Loads a plugin: compiles (or loads from the cache) its component,
    /// and links it (for a skill, also reads its instructions).
    /// `granted` must be a subset of what the manifest requests.
    pub async fn load(
        &self,
        manifest: Manifest,
        component: Arc<Vec<u8>>,
        granted: Permissions,
        settings: BTreeMap<String, String>,
    ) -> Result<Plugin, LoadError> {
        if let Some(extra) = granted.first_not_in(&manifest.permissions) {
            return Err(LoadError::Manifest(format!(
                "cannot grant {extra}: the plugin did not request it"
            )));
        }
        granted.validate().map_err(LoadError::Manifest)?;
        let (component, cached) = self.compile(component).await?;
        let world = if manifest.kind == Kind::Skill {
            "skill"
        } else {
            "tool"
        };
        let pre = self.link(&component, world)?;
        let env = granted
            .env
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|value| (name.clone(), value)))
            .collect();
        let grants = Arc::new(Grants {
            plugin: manifest.name.as_str().into(),
            memory_keys: granted.memory.clone(),
            settings,
            network: Arc::new(NetworkPolicy::new(&granted.network)),
        });
        let mut plugin = PluginInner {
            manifest,
            granted,
            grants,
            env,
            pre,
            instructions: None,
            cached,
        };
        // The tools are not described again here: `pack` wrote them into the
        // manifest from the component itself, and the signature binds the
        // two. Loading stays cheap; `probe` instantiates on demand.
        if plugin.manifest.kind == Kind::Skill {
            plugin.instructions = Some(self.instructions_of(&plugin).await?);
        }
        Ok(Plugin {
            inner: Arc::new(plugin),
        })
    }

    /// Compiles a component and asks it what it offers, without any grant:
    /// what `talon plugin pack` writes into the manifest.
    pub async fn describe(
        &self,
        manifest: &Manifest,
        component: Arc<Vec<u8>>,
    ) -> Result<Description, LoadError> {
        let (compiled, cached) = self.compile(component).await?;
        let world = if manifest.kind == Kind::Skill {
            "skill"
        } else {
            "tool"
        };
        let pre = self.link(&compiled, world)?;
        let plugin = PluginInner {
            manifest: manifest.clone(),
            granted: Permissions::default(),
            grants: Arc::new(Grants {
                plugin: manifest.name.as_str().into(),
                memory_keys: Vec::new(),
                settings: BTreeMap::new(),
                network: Arc::new(NetworkPolicy::default()),
            }),
            env: Vec::new(),
            pre,
            instructions: None,
            cached,
        };
        self.describe_with(&plugin, world).await
    }

    /// Completes an author's manifest for packing: asks the component for
    /// its tools (and a skill's instructions, which must exist) and writes
    /// the tools into the manifest.
    pub async fn complete_manifest(
        &self,
        mut manifest: Manifest,
        component: Arc<Vec<u8>>,
    ) -> Result<Manifest, LoadError> {
        let description = self.describe(&manifest, component).await?;
        if description.tools.is_empty() && manifest.kind == Kind::Tool {
            return Err(LoadError::Describe(
                "the component describes no tools".into(),
            ));
        }
        manifest.tools = description.tools;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Instantiates a loaded plugin and asks it to describe itself: proof
    /// that it still starts and answers.
    pub async fn probe(&self, plugin: &Plugin) -> Result<Description, LoadError> {
        let world = if plugin.inner.manifest.kind == Kind::Skill {
            "skill"
        } else {
            "tool"
        };
        self.describe_with(&plugin.inner, world).await
    }

    /// Links a component against the host's imports and checks it exports
    /// the `tools` interface.
    fn link(
        &self,
        component: &wasmtime::component::Component,
        world: &'static str,
    ) -> Result<ToolPre<CallState>, LoadError> {
        let world_err = |e: wasmtime::Error| LoadError::World {
            world,
            detail: format!("{e:#}"),
        };
        let pre: InstancePre<CallState> = self
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(world_err)?;
        ToolPre::new(pre).map_err(world_err)
    }

    /// A fresh instance with no caller: for reading instructions and
    /// descriptions. The caller holds a ticker guard while using it.
    async fn bare_instance(
        &self,
        plugin: &PluginInner,
    ) -> Result<(Store<CallState>, Instance), LoadError> {
        let limits = EffectiveLimits::new(&plugin.manifest, &self.ceilings());
        let (mut store, _) = self
            .new_store(plugin, &CallContext::default(), &limits)
            .map_err(LoadError::Describe)?;
        let instance = plugin
            .pre
            .instance_pre()
            .instantiate_async(&mut store)
            .await
            .map_err(|e| LoadError::Describe(format!("{e:#}")))?;
        Ok((store, instance))
    }

    async fn instructions_of(&self, plugin: &PluginInner) -> Result<String, LoadError> {
        let _running = self.inner.ticker.running();
        let (mut store, instance) = self.bare_instance(plugin).await?;
        read_instructions(&mut store, &instance)
            .await
            .map_err(|e| LoadError::World {
                world: "skill",
                detail: format!("{e:#}"),
            })
    }

    async fn describe_with(
        &self,
        plugin: &PluginInner,
        world: &'static str,
    ) -> Result<Description, LoadError> {
        let describe_err = |e: wasmtime::Error| LoadError::Describe(format!("{e:#}"));
        let _running = self.inner.ticker.running();
        let (mut store, instance) = self.bare_instance(plugin).await?;
        let tool = Tool::new(&mut store, &instance).map_err(|e| LoadError::World {
            world,
            detail: format!("{e:#}"),
        })?;
        let descriptors = tool
            .talon_plugin_tools()
            .call_describe(&mut store)
            .await
            .map_err(describe_err)?;
        let mut tools = Vec::with_capacity(descriptors.len());
        for d in descriptors {
            let parameters: serde_json::Value = serde_json::from_str(&d.parameters_schema)
                .map_err(|e| {
                    LoadError::Describe(format!(
                        "tool {:?}: parameters schema is not JSON: {e}",
                        d.name
                    ))
                })?;
            tools.push(ToolSpec {
                name: d.name,
                description: d.description,
                parameters,
            });
        }
        let instructions =
            match plugin.manifest.kind {
                Kind::Skill => Some(read_instructions(&mut store, &instance).await.map_err(
                    |e| LoadError::World {
                        world,
                        detail: format!("{e:#}"),
                    },
                )?),
                _ => None,
            };
        Ok(Description {
            tools,
            instructions,
        })
    }

    /// Calls one tool of a plugin in a fresh instance.
    pub async fn invoke(
        &self,
        plugin: &Plugin,
        tool: &str,
        arguments: &str,
        ctx: &CallContext,
    ) -> Invocation {
        let started = Instant::now();
        let inner = &*plugin.inner;
        if !inner.manifest.tools.iter().any(|t| t.name == tool) {
            return Invocation {
                result: Err(InvokeError::NotFound(format!(
                    "plugin {} has no tool {tool:?}",
                    inner.manifest.name
                ))),
                cost: Cost::default(),
            };
        }
        let limits = plugin.limits(&self.ceilings());
        // Bounded concurrency: the pool has a fixed number of slots.
        let Ok(_slot) = self.inner.slots.acquire().await else {
            return Invocation {
                result: Err(InvokeError::Instantiate("runtime is shutting down".into())),
                cost: Cost::default(),
            };
        };
        let (mut store, denied) = match self.new_store(inner, ctx, &limits) {
            Ok(store) => store,
            Err(e) => {
                return Invocation {
                    result: Err(InvokeError::Instantiate(e)),
                    cost: Cost::default(),
                };
            }
        };
        let _running = self.inner.ticker.running();
        let timeout = Duration::from_millis(limits.timeout_ms);
        let call = async {
            let tool_instance = inner.pre.instantiate_async(&mut store).await?;
            tool_instance
                .talon_plugin_tools()
                .call_invoke(&mut store, tool, arguments)
                .await
        };
        let outcome = tokio::time::timeout(timeout + TIMEOUT_GRACE, call).await;
        let fuel_left = store.get_fuel().unwrap_or(0);
        let state = store.data();
        let cost = Cost {
            fuel: limits.fuel.saturating_sub(fuel_left),
            wall_us: started.elapsed().as_micros() as u64,
            peak_memory: state.limiter.peak as u64,
        };
        let result = match outcome {
            Err(_elapsed) => Err(InvokeError::Timeout { limit: timeout }),
            Ok(Ok(Ok(output))) => Ok(output),
            Ok(Ok(Err(tool_error))) => Err(from_tool_error(tool_error, &denied)),
            Ok(Err(trap)) => Err(classify(trap, &limits, &state.stderr)),
        };
        if let Err(e) = &result {
            tracing::debug!(plugin = %inner.manifest.name, tool, error = %e, "tool call failed");
        }
        Invocation { result, cost }
    }

    /// A store for one call: WASI with only the granted preopen and
    /// environment, no sockets, the network gate, the limiter and the fuel
    /// and epoch deadline.
    fn new_store(
        &self,
        plugin: &PluginInner,
        ctx: &CallContext,
        limits: &EffectiveLimits,
    ) -> Result<(Store<CallState>, DeniedReason), String> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stderr(stderr.clone());
        for (name, value) in &plugin.env {
            wasi.env(name, value);
        }
        if plugin.granted.filesystem.is_some()
            && let Some(workspace) = &ctx.workspace
        {
            wasi.preopened_dir(workspace, "/", FsPerms::ReadWrite)
                .map_err(|e| format!("cannot open the agent's workspace: {e:#}"))?;
        }
        let denied = Arc::new(Mutex::new(None));
        let memory = match (&ctx.agent_id, self.memory_backend()) {
            (Some(agent), Some(backend)) => Some((backend, agent.clone())),
            _ => None,
        };
        let state = CallState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: Default::default(),
            gate: HttpGate {
                policy: plugin.grants.network.clone(),
                denied: denied.clone(),
            },
            limiter: Limiter {
                max_memory: limits.memory_bytes,
                total: 0,
                peak: 0,
            },
            grants: plugin.grants.clone(),
            memory,
            stderr,
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_fuel(limits.fuel).map_err(|e| e.to_string())?;
        store
            .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
            .map_err(|e| e.to_string())?;
        store.set_epoch_deadline(ticks_for(Duration::from_millis(limits.timeout_ms)));
        store.epoch_deadline_trap();
        Ok((store, denied))
    }
}

/// Calls a skill's `instructions` export through the dynamic API (the
/// generated bindings are for the `tool` world, which skills also implement).
async fn read_instructions(
    store: &mut Store<CallState>,
    instance: &Instance,
) -> wasmtime::Result<String> {
    let interface = instance
        .get_export_index(&mut *store, None, "talon:plugin/instructions@0.1.0")
        .ok_or_else(|| {
            wasmtime::format_err!("a skill must export talon:plugin/instructions@0.1.0")
        })?;
    let func = instance
        .get_export_index(&mut *store, Some(&interface), "instructions")
        .ok_or_else(|| {
            wasmtime::format_err!("talon:plugin/instructions has no `instructions` function")
        })?;
    let func = instance.get_typed_func::<(), (String,)>(&mut *store, &func)?;
    let (text,) = func.call_async(&mut *store, ()).await?;
    Ok(text)
}

fn from_tool_error(error: ToolError, denied: &Mutex<Option<String>>) -> InvokeError {
    match error {
        ToolError::InvalidArguments(m) => InvokeError::InvalidArguments(m),
        ToolError::NotFound(m) => InvokeError::NotFound(m),
        ToolError::PermissionDenied(m) => match denied.lock().ok().and_then(|mut d| d.take()) {
            // The host's reason is more precise than what the guest saw.
            Some(reason) => InvokeError::PermissionDenied(format!("{m} ({reason})")),
            None => InvokeError::PermissionDenied(m),
        },
        ToolError::Failed(m) => InvokeError::Failed(m),
    }
}

/// Turns a trap into the error an author can act on.
fn classify(
    error: wasmtime::Error,
    limits: &EffectiveLimits,
    stderr: &MemoryOutputPipe,
) -> InvokeError {
    if let Some(hit) = error.downcast_ref::<MemoryLimitHit>() {
        return InvokeError::MemoryLimit {
            requested: hit.requested,
            limit: hit.limit,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => InvokeError::OutOfFuel { limit: limits.fuel },
        Some(Trap::Interrupt) => InvokeError::Timeout {
            limit: Duration::from_millis(limits.timeout_ms),
        },
        Some(Trap::StackOverflow) => InvokeError::StackOverflow,
        Some(Trap::MemoryOutOfBounds) => InvokeError::Trap(format!(
            "{}; often the plugin's own stack in linear memory overflowing (deep recursion)",
            Trap::MemoryOutOfBounds
        )),
        Some(trap) => {
            // A Rust panic prints its message to stderr before trapping.
            let output = stderr.contents();
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
                true => InvokeError::Trap(trap.to_string()),
                false => InvokeError::Trap(format!(
                    "{trap}; stderr: {}",
                    truncate(&tail.join(" "), 1000)
                )),
            }
        }
        None => InvokeError::Instantiate(truncate(&format!("{error:#}"), 2000).to_string()),
    }
}
