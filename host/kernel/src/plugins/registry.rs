//! The registry of installed plugins: one entry per plugin (its record,
//! manifest, trust and loaded component), running call figures, and the
//! views the API shows.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use talon_runtime::{
    EffectiveLimits, Kind, Manifest, Permissions, Plugin, Runtime, ToolSpec, Trust,
};

use super::records::{Origin, PluginRecord};

use talon_runtime::channel::ChannelPlugin;
use talon_runtime::hand::HandPlugin;

/// A component just loaded: a tool's or skill's, a channel's or a hand's.
pub(super) enum Loaded {
    /// Tools (and a skill's instructions), one instance per call.
    Tool(Plugin),
    /// A channel, started by the channels domain as a long-lived instance.
    Channel(ChannelPlugin),
    /// A hand, activated by the hands domain as long-lived instances.
    Hand(HandPlugin),
}

/// Running totals of one plugin's calls.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) calls: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) fuel: AtomicU64,
    pub(super) wall_us: AtomicU64,
    pub(super) peak_memory: AtomicU64,
}

/// Call figures of one plugin since the daemon started.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that did not return a result.
    pub errors: u64,
    /// Fuel burned by all calls.
    pub fuel_total: u64,
    /// Wall-clock time of all calls, in microseconds.
    pub wall_us_total: u64,
    /// The largest memory any call held, in bytes.
    pub peak_memory_max: u64,
}

/// One installed plugin: what is stored, its manifest, and the loaded
/// component when it loaded.
pub(super) struct Entry {
    pub(super) record: PluginRecord,
    pub(super) manifest: Manifest,
    pub(super) trust: Option<Trust>,
    pub(super) loaded: Option<Plugin>,
    /// The loaded component of a channel (which has no tools to call).
    pub(super) channel: Option<ChannelPlugin>,
    /// The loaded component of a hand.
    pub(super) hand: Option<HandPlugin>,
    pub(super) error: Option<String>,
    /// Waiting for (or in) its load at start.
    pub(super) loading: bool,
    pub(super) stats: Arc<Stats>,
}

/// The plugin registry the kernel owns.
pub(crate) struct Registry {
    pub(super) runtime: Runtime,
    entries: RwLock<BTreeMap<String, Entry>>,
}

/// Requested and granted permissions, side by side.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PermissionsView {
    /// What the manifest asks for.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub requested: Permissions,
    /// What the operator granted.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub granted: Permissions,
}

/// An installed plugin as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginView {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `tool`, `skill`, `hand` or `channel`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: Kind,
    /// One line for operators.
    pub description: String,
    /// Publisher, if the manifest names one.
    pub author: Option<String>,
    /// Whether its tools are offered.
    pub enabled: bool,
    /// `loaded`, `loading` (at start), `disabled` or `error`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: &'static str,
    /// Why it is not loaded, when `status` is `error`.
    pub error: Option<String>,
    /// SHA-256 of the package file.
    pub digest: String,
    /// Who signed it, as the trust store sees it (absent when untrusted
    /// now); `bundled` for the copy the binary ships.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub signature: Option<Trust>,
    /// `package` (installed by the operator) or `bundled` (shipped with
    /// the binary, installed and upgraded by it).
    pub source: Origin,
    /// Its tools' names.
    pub tools: Vec<String>,
    /// Requested and granted permissions.
    pub permissions: PermissionsView,
    /// The limits its calls run under.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub limits: EffectiveLimits,
    /// When it was installed.
    pub installed_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Calls since the daemon started.
    pub stats: CallStats,
    /// Which compiler built the code new calls run on, while loaded:
    /// `baseline` (Winch, the first build of a tool or skill) until
    /// `optimized` (Cranelift) replaces it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub compiler: Option<talon_runtime::Tier>,
}

/// A tool as the API and agents see it.
#[derive(Debug, Clone, Serialize)]
pub struct ToolView {
    /// Unique name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub input_schema: serde_json::Value,
    /// The plugin offering it.
    pub plugin: String,
    /// The plugin's kind.
    pub kind: Kind,
    /// The risk class its manifest declares, which approval rules may name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
}

impl Registry {
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            entries: RwLock::new(BTreeMap::new()),
        }
    }

    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Entry {
    /// Keeps a loaded component in the field of its kind.
    pub(super) fn set_loaded(&mut self, loaded: Loaded) {
        match loaded {
            Loaded::Tool(plugin) => {
                self.loaded = Some(plugin);
                self.channel = None;
                self.hand = None;
            }
            Loaded::Channel(channel) => {
                self.loaded = None;
                self.channel = Some(channel);
                self.hand = None;
            }
            Loaded::Hand(hand) => {
                self.loaded = None;
                self.channel = None;
                self.hand = Some(hand);
            }
        }
    }

    pub(super) fn view(&self, runtime: &Runtime) -> PluginView {
        let loaded = self.loaded.is_some() || self.channel.is_some() || self.hand.is_some();
        let status = match (loaded, self.record.enabled) {
            (_, false) => "disabled",
            (false, true) if self.loading => "loading",
            (true, true) => "loaded",
            (false, true) => "error",
        };
        let limits = self
            .loaded
            .as_ref()
            .map(|p| p.limits(&runtime.ceilings()))
            .unwrap_or_else(|| EffectiveLimits::new(&self.manifest, &runtime.ceilings()));
        PluginView {
            name: self.record.name.clone(),
            version: self.manifest.version.clone(),
            kind: self.manifest.kind,
            description: self.manifest.description.clone(),
            author: self.manifest.author.clone(),
            enabled: self.record.enabled,
            status,
            error: self.error.clone(),
            digest: self.record.digest.clone(),
            signature: self.trust.clone(),
            source: self.record.source,
            tools: self.manifest.tools.iter().map(|t| t.name.clone()).collect(),
            permissions: PermissionsView {
                requested: self.manifest.permissions.clone(),
                granted: self.record.granted.clone(),
            },
            limits,
            installed_at: self.record.installed_at,
            updated_at: self.record.updated_at,
            stats: CallStats {
                calls: self.stats.calls.load(Ordering::Relaxed),
                errors: self.stats.errors.load(Ordering::Relaxed),
                fuel_total: self.stats.fuel.load(Ordering::Relaxed),
                wall_us_total: self.stats.wall_us.load(Ordering::Relaxed),
                peak_memory_max: self.stats.peak_memory.load(Ordering::Relaxed),
            },
            compiler: match (&self.loaded, &self.channel) {
                (Some(plugin), _) => Some(plugin.compiler()),
                // Channels keep one instance for life: always optimized.
                (None, Some(_)) => Some(talon_runtime::Tier::Optimized),
                (None, None) => None,
            },
        }
    }
}

pub(super) fn tool_view(tool: &ToolSpec, entry: &Entry) -> ToolView {
    ToolView {
        name: tool.name.clone(),
        description: tool.description.clone(),
        input_schema: tool.parameters.clone(),
        plugin: entry.record.name.clone(),
        kind: entry.manifest.kind,
        risk: tool.risk.clone(),
    }
}

/// A stand-in manifest for a plugin whose package could not be read, so it
/// can still be listed (with its error) and uninstalled.
pub(super) fn placeholder_manifest(name: &str) -> Manifest {
    Manifest {
        name: name.to_string(),
        version: "0.0.0".into(),
        kind: Kind::Tool,
        wit: talon_runtime::WIT_VERSION.into(),
        description: String::new(),
        author: None,
        tools: Vec::new(),
        permissions: Permissions::default(),
        limits: Default::default(),
        hand: None,
    }
}
