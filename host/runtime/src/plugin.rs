//! A loaded plugin and its entries: tool calls, `describe`, `instructions`
//! and probes, each in a fresh instance through the guard (`guard.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};

use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre};

use crate::Ceilings;
use crate::bindings::ToolIndices;
use crate::bindings::talon::plugin::types::ToolError;
use crate::error::{InvokeError, LoadError};
use crate::guard::{GuestCall, GuestFuture, check_result_size};
use crate::host::{CallState, Grants};
use crate::manifest::{Kind, Manifest, Permissions, ToolSpec};
use crate::permissions::NetworkPolicy;
use crate::runtime::{Baseline, Runtime, Tier};
use crate::slots::PerPlugin;

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

/// What one call cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Fuel burned (roughly, WebAssembly instructions executed).
    pub fuel: u64,
    /// Wall-clock time, instantiation included, in microseconds.
    pub wall_us: u64,
    /// Peak linear memory of the instance, in bytes.
    pub peak_memory: u64,
    /// Log lines the call wrote beyond its limits, dropped.
    pub log_lines_dropped: u32,
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

/// A build of a plugin's component, linked: what a call instantiates.
pub(crate) struct Linked {
    /// Which compiler built it.
    pub tier: Tier,
    /// Linked, so a call only instantiates...
    pub instance_pre: InstancePre<CallState>,
    /// ...and finds the exports by the indices resolved once (they belong
    /// to this build's component).
    pub indices: ToolIndices,
    /// A skill's `instructions` function, resolved once.
    pub instructions_export: Option<ComponentExportIndex>,
}

pub(crate) struct PluginInner {
    pub manifest: Manifest,
    pub granted: Permissions,
    pub grants: Arc<Grants>,
    pub env: Vec<(String, String)>,
    /// The build calls start on: a baseline one until the optimized one
    /// replaces it. A call holds the build it started on to its end.
    pub linked: RwLock<Arc<Linked>>,
    /// Tells waiters the tier of each build swapped in.
    pub swapped: tokio::sync::watch::Sender<Tier>,
    /// Which compiler built the code it was loaded with.
    pub loaded_tier: Tier,
    /// Slots and log budget, shared with every version of the plugin.
    pub shared: Arc<PerPlugin>,
    pub instructions: Option<String>,
    pub cached: bool,
}

impl PluginInner {
    /// The build calls start on now.
    pub(crate) fn linked(&self) -> Arc<Linked> {
        match self.linked.read() {
            Ok(linked) => linked.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn swap(&self, linked: Linked) {
        let tier = linked.tier;
        let linked = Arc::new(linked);
        match self.linked.write() {
            Ok(mut slot) => *slot = linked,
            Err(poisoned) => *poisoned.into_inner() = linked,
        }
        self.swapped.send_replace(tier);
    }
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

    /// Which compiler built the code it was loaded with (new calls may run
    /// on a better build since: [`compiler`](Self::compiler)).
    pub fn loaded_with(&self) -> Tier {
        self.inner.loaded_tier
    }

    /// Which compiler built the code new calls run on.
    pub fn compiler(&self) -> Tier {
        self.inner.linked().tier
    }

    /// Waits until new calls run on the optimized build. Returns at once if
    /// they do; never returns for a plugin left on its baseline build (the
    /// background compile failed, or the runtime compiles with Winch
    /// only), so callers bound the wait.
    pub async fn optimized(&self) {
        let mut swapped = self.inner.swapped.subscribe();
        let _ = swapped.wait_for(|tier| *tier == Tier::Optimized).await;
        if self.compiler() != Tier::Optimized {
            std::future::pending::<()>().await;
        }
    }

    /// The limits its calls run under, given the host's ceilings.
    pub fn limits(&self, ceilings: &Ceilings) -> EffectiveLimits {
        EffectiveLimits::new(&self.inner.manifest, ceilings)
    }

    /// Calls of this plugin (of any of its versions) running now.
    pub fn running_calls(&self) -> u32 {
        self.inner.shared.running()
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

fn world_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Skill => "skill",
        _ => "tool",
    }
}

impl Runtime {
    /// Loads a plugin: compiles (or loads from the cache) its component,
    /// and links it (for a skill, also reads its instructions, through the
    /// guard like every other entry into guest code).
    /// `granted` must be a subset of what the manifest requests.
    pub async fn load(
        &self,
        manifest: Manifest,
        component: Arc<Vec<u8>>,
        granted: Permissions,
        settings: BTreeMap<String, String>,
    ) -> Result<Plugin, LoadError> {
        if manifest.kind == Kind::Hand {
            return Err(LoadError::Manifest(
                "kind \"hand\": a hand is not a tool; it runs as a long-lived instance \
                 (Runtime::load_hand, docs/HANDS.md)"
                    .into(),
            ));
        }
        let (grants, env) = admit(&manifest, &granted, settings)?;
        let (compiled, tier, cached) = self.compile_first(component.clone()).await?;
        let linked = self.link(&compiled, tier, manifest.kind)?;
        let mut plugin = PluginInner {
            shared: self.inner.slots.plugin(&manifest.name),
            manifest,
            granted,
            grants,
            env,
            linked: RwLock::new(Arc::new(linked)),
            swapped: tokio::sync::watch::Sender::new(tier),
            loaded_tier: tier,
            instructions: None,
            cached,
        };
        // The tools are not described again here: `pack` wrote them into the
        // manifest from the component itself, and the signature binds the
        // two. Loading stays cheap; `probe` instantiates on demand.
        if plugin.linked().instructions_export.is_some() {
            let text = self
                .guarded(&plugin, &CallContext::default(), ReadInstructions)
                .await
                .result?;
            plugin.instructions = Some(text);
        }
        let plugin = Plugin {
            inner: Arc::new(plugin),
        };
        if tier == Tier::Baseline && self.inner.baseline_mode == Baseline::First {
            self.optimize_later(&plugin, component);
        }
        Ok(plugin)
    }

    /// Compiles `plugin`'s component with Cranelift in the background (one
    /// component at a time in the runtime), caches that build and swaps it
    /// in for new calls; calls running finish on the baseline build. A
    /// plugin dropped meanwhile (reloaded, removed) is not swapped, but the
    /// build is cached for the version that replaced it. A failure leaves
    /// the plugin on its baseline build, with a warning.
    fn optimize_later(&self, plugin: &Plugin, bytes: Arc<Vec<u8>>) {
        let runtime = self.clone();
        let weak: Weak<PluginInner> = Arc::downgrade(&plugin.inner);
        let name = plugin.inner.manifest.name.clone();
        let kind = plugin.inner.manifest.kind;
        tokio::spawn(async move {
            let _turn = runtime.inner.optimizing.lock().await;
            if weak.strong_count() == 0 {
                return;
            }
            let started = std::time::Instant::now();
            let linked = match runtime
                .compile_with(Tier::Optimized, bytes.clone(), true)
                .await
                .and_then(|(compiled, _)| runtime.link(&compiled, Tier::Optimized, kind))
            {
                Ok(linked) => linked,
                Err(e) => {
                    tracing::warn!(plugin = %name, error = %e, "the optimized build failed; the plugin stays on its baseline build");
                    return;
                }
            };
            runtime.forget_baseline(&bytes);
            if let Some(plugin) = weak.upgrade() {
                plugin.swap(linked);
                tracing::info!(
                    plugin = %name,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "optimized build swapped in"
                );
            }
        });
    }

    /// Compiles a component and asks it what it offers, without any grant:
    /// what `talon plugin pack` writes into the manifest.
    pub async fn describe(
        &self,
        manifest: &Manifest,
        component: Arc<Vec<u8>>,
    ) -> Result<Description, LoadError> {
        // Built by the compiler whose build the runtime keeps: a load that
        // follows (packing, then installing) finds it in the cache.
        let (compiled, tier, cached) = if self.inner.baseline_mode == Baseline::Only {
            self.compile_first(component).await?
        } else {
            let (compiled, cached) = self.compile(component).await?;
            (compiled, Tier::Optimized, cached)
        };
        let linked = self.link(&compiled, tier, manifest.kind)?;
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
            linked: RwLock::new(Arc::new(linked)),
            swapped: tokio::sync::watch::Sender::new(tier),
            loaded_tier: tier,
            shared: self.inner.slots.plugin(&manifest.name),
            instructions: None,
            cached,
        };
        self.describe_with(&plugin).await
    }

    /// Completes an author's manifest for packing: asks the component for
    /// its tools (and a skill's instructions, which must exist) and writes
    /// the tools into the manifest.
    pub async fn complete_manifest(
        &self,
        mut manifest: Manifest,
        component: Arc<Vec<u8>>,
    ) -> Result<Manifest, LoadError> {
        if manifest.kind == Kind::Channel {
            // A channel offers no tools: packing checks that it links as a
            // channel and describes itself, with nothing granted.
            self.load_channel(
                manifest.clone(),
                component,
                Permissions::default(),
                BTreeMap::new(),
            )
            .await?;
            manifest.tools.clear();
            manifest.validate()?;
            return Ok(manifest);
        }
        if manifest.kind == Kind::Hand {
            // Nor does a hand: packing checks that it links as a hand and
            // describes itself (settings schema, agent role, interval).
            self.load_hand(
                manifest.clone(),
                component,
                Permissions::default(),
                BTreeMap::new(),
            )
            .await?;
            manifest.tools.clear();
            manifest.validate()?;
            return Ok(manifest);
        }
        let description = self.describe(&manifest, component).await?;
        if description.tools.is_empty() && manifest.kind == Kind::Tool {
            return Err(LoadError::Describe(
                "the component describes no tools".into(),
            ));
        }
        // The component describes its tools; the risk classes are the
        // author's word in the manifest, kept by name.
        let declared = std::mem::take(&mut manifest.tools);
        manifest.tools = description
            .tools
            .into_iter()
            .map(|mut tool| {
                tool.risk = declared
                    .iter()
                    .find(|d| d.name == tool.name)
                    .and_then(|d| d.risk.clone());
                tool
            })
            .collect();
        manifest.validate()?;
        Ok(manifest)
    }

    /// Instantiates a loaded plugin and asks it to describe itself: proof
    /// that it still starts and answers. Takes a slot like any call, so
    /// probes cannot pile up beyond the plugin's share.
    pub async fn probe(&self, plugin: &Plugin) -> Result<Description, LoadError> {
        self.describe_with(&plugin.inner).await
    }

    /// Links a component of `tier` against the host's imports (with that
    /// tier's linker) and checks it exports the `tools` interface (and a
    /// skill, `instructions`).
    fn link(
        &self,
        component: &wasmtime::component::Component,
        tier: Tier,
        kind: Kind,
    ) -> Result<Linked, LoadError> {
        let world = world_of(kind);
        let world_err = |detail: String| LoadError::World {
            world,
            version: crate::WIT_VERSION,
            detail,
        };
        let pre: InstancePre<CallState> = self
            .engine_of(tier)?
            .linker
            .instantiate_pre(component)
            .map_err(|e| world_err(format!("{e:#}")))?;
        let indices = ToolIndices::new(&pre).map_err(|e| world_err(format!("{e:#}")))?;
        let instructions = match kind {
            Kind::Skill => {
                let interface = component
                    .get_export_index(None, "talon:plugin/instructions@0.1.0")
                    .ok_or_else(|| {
                        world_err("a skill must export talon:plugin/instructions@0.1.0".into())
                    })?;
                let func = component
                    .get_export_index(Some(&interface), "instructions")
                    .ok_or_else(|| {
                        world_err("talon:plugin/instructions has no `instructions` function".into())
                    })?;
                Some(func)
            }
            _ => None,
        };
        Ok(Linked {
            tier,
            instance_pre: pre,
            indices,
            instructions_export: instructions,
        })
    }

    async fn describe_with(&self, plugin: &PluginInner) -> Result<Description, LoadError> {
        let call = Describe;
        let (descriptors, instructions) = self
            .guarded(plugin, &CallContext::default(), call)
            .await
            .result?;
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
                risk: None,
            });
        }
        Ok(Description {
            tools,
            instructions,
        })
    }

    /// Calls one tool of a plugin in a fresh instance, through the guard.
    pub async fn invoke(
        &self,
        plugin: &Plugin,
        tool: &str,
        arguments: &str,
        ctx: &CallContext,
    ) -> Invocation {
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
        let call = Invoke { tool, arguments };
        let guarded = self.guarded(inner, ctx, call).await;
        let result = match guarded.result {
            Ok(answer) => answer,
            Err(stopped) => Err(InvokeError::Guard(stopped)),
        };
        Invocation {
            result,
            cost: guarded.cost,
        }
    }
}

/// `tools.invoke` of one tool.
struct Invoke<'a> {
    tool: &'a str,
    arguments: &'a str,
}

impl GuestCall for Invoke<'_> {
    type Output = Result<String, InvokeError>;
    const ENTRY: &'static str = "invoke";

    fn call<'s>(
        self,
        store: &'s mut Store<CallState>,
        instance: Instance,
        linked: &'s Linked,
    ) -> GuestFuture<'s, Self::Output>
    where
        Self: 's,
    {
        Box::pin(async move {
            let tool = linked.indices.load(&mut *store, &instance)?;
            let answer = tool
                .talon_plugin_tools()
                .call_invoke(&mut *store, self.tool, self.arguments)
                .await?;
            Ok(match answer {
                Ok(output) => {
                    check_result_size(store, output.len())?;
                    Ok(output)
                }
                Err(error) => {
                    let state = store.data();
                    let error = from_tool_error(error, &state.gate.denied);
                    Err(match crate::guard::quota_refusal(state) {
                        // The tool failed after a write was refused: the
                        // quota is the cause, the tool's message the detail.
                        Some(refusal) => InvokeError::Guard(refusal(error.to_string())),
                        None => error,
                    })
                }
            })
        })
    }
}

/// A tool's descriptor as the guest describes it.
type Descriptor = crate::bindings::talon::plugin::types::ToolDescriptor;

/// `tools.describe`, and a skill's `instructions` in the same instance.
struct Describe;

impl GuestCall for Describe {
    type Output = (Vec<Descriptor>, Option<String>);
    const ENTRY: &'static str = "describe";

    fn call<'s>(
        self,
        store: &'s mut Store<CallState>,
        instance: Instance,
        linked: &'s Linked,
    ) -> GuestFuture<'s, Self::Output>
    where
        Self: 's,
    {
        Box::pin(async move {
            let tool = linked.indices.load(&mut *store, &instance)?;
            let descriptors = tool.talon_plugin_tools().call_describe(&mut *store).await?;
            let mut size: usize = descriptors
                .iter()
                .map(|d| d.name.len() + d.description.len() + d.parameters_schema.len())
                .sum();
            check_result_size(store, size)?;
            let instructions = match linked.instructions_export {
                Some(export) => {
                    let text = read_instructions(store, &instance, &export).await?;
                    size += text.len();
                    check_result_size(store, size)?;
                    Some(text)
                }
                None => None,
            };
            Ok((descriptors, instructions))
        })
    }
}

/// A skill's `instructions`.
struct ReadInstructions;

impl GuestCall for ReadInstructions {
    type Output = String;
    const ENTRY: &'static str = "instructions";

    fn call<'s>(
        self,
        store: &'s mut Store<CallState>,
        instance: Instance,
        linked: &'s Linked,
    ) -> GuestFuture<'s, Self::Output>
    where
        Self: 's,
    {
        Box::pin(async move {
            let Some(export) = &linked.instructions_export else {
                return Err(wasmtime::Error::msg(
                    "the component exports no instructions",
                ));
            };
            let text = read_instructions(store, &instance, export).await?;
            check_result_size(store, text.len())?;
            Ok(text)
        })
    }
}

/// Calls a skill's `instructions` export through the dynamic API (the
/// generated bindings are for the `tool` world, which skills also implement).
async fn read_instructions(
    store: &mut Store<CallState>,
    instance: &Instance,
    export: &ComponentExportIndex,
) -> wasmtime::Result<String> {
    let func = instance.get_typed_func::<(), (String,)>(&mut *store, export)?;
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

/// What every kind of plugin (tool, skill, channel, hand) checks and builds
/// from its grants before it links: `granted` must be a valid subset of
/// what the manifest requests; the plugin's grants for its calls, and the
/// granted environment variables the daemon has.
pub(crate) fn admit(
    manifest: &Manifest,
    granted: &Permissions,
    settings: BTreeMap<String, String>,
) -> Result<(Arc<Grants>, Vec<(String, String)>), LoadError> {
    if let Some(extra) = granted.first_not_in(&manifest.permissions) {
        return Err(LoadError::Manifest(format!(
            "cannot grant {extra}: the plugin did not request it"
        )));
    }
    granted.validate().map_err(LoadError::Manifest)?;
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
    Ok((grants, env))
}
