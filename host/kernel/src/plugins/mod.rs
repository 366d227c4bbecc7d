//! Installed plugins: package files in `plugins/`, records (grants, settings,
//! enabled) in the store, loaded components in the runtime, and the index of
//! tools by name that agents and the API call through.
//!
//! Owns the `plugins.v1` table, the `plugins/` folder and the compiled
//! component cache. Uses the agents domain to check a tool call's agent and
//! find its workspace, and the agents' key-value memory as plugin memory;
//! the conversation domain above calls tools through [`Plugins`].
//!
//! A call in flight holds its own handle to the plugin it started with, so
//! reloading or removing a plugin never fails calls already running.

mod bundled;
mod locks;
mod memory;
mod package_file;
pub mod records;
mod registry;
mod startup;
mod tools;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use talon_runtime::{Kind, LoadError, Manifest, Package, Runtime, SecretKey, Trust, TrustStore};

use crate::KernelError;
use crate::agents::Agents;
use crate::events::Event;
use crate::shared::Shared;
use crate::store::audit::AuditEvent;
use crate::store::{self, StoreError};
use locks::{Claim, Locks};
use memory::StoreMemory;
use package_file::{read_package_file, refuse_downgrade};
use records::{Removed, granted_for, narrow, save_record};
use registry::{Entry, Loaded, Registry};

pub use bundled::BundledPlugin;
pub use records::{Grant, Origin, PluginRecord};
pub use registry::{CallStats, PermissionsView, PluginView, ToolView};

/// The plugins domain: the runtime and the registry of installed plugins.
pub struct Plugins {
    shared: Arc<Shared>,
    agents: Arc<Agents>,
    registry: Registry,
    locks: Locks,
    /// The package digest of each plugin the binary ships, by name, as built
    /// at start: a package with that name and digest is trusted without a key.
    bundled: RwLock<BTreeMap<String, String>>,
    /// The plugins the binary ships, as given at start, once the start has
    /// installed and loaded them: what [`Plugins::restore_bundled`] can
    /// bring back and a config change can add or take away.
    shipped: RwLock<Option<Vec<BundledPlugin>>>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins").finish_non_exhaustive()
    }
}

/// Where an install's package comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The package's bytes.
    Bytes(Vec<u8>),
    /// A package file on the daemon's machine.
    Path(PathBuf),
}

fn load_error(e: LoadError) -> KernelError {
    match e {
        LoadError::Io { .. } | LoadError::Engine(_) => {
            KernelError::Store(StoreError::Task(e.to_string()))
        }
        LoadError::Unsigned | LoadError::Untrusted { .. } => KernelError::Forbidden(e.to_string()),
        other => KernelError::Invalid(other.to_string()),
    }
}

/// Writes a file durably under a temporary name, then renames it.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("talon.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Plugins {
    /// The domain over `shared`: a runtime with the ceilings of the config
    /// in force, the compiled-component cache in the data directory, and
    /// plugin memory over the agents' key-value store. Installed plugins
    /// load with [`Plugins::load_plugins`].
    pub(crate) fn new(shared: Arc<Shared>, agents: Arc<Agents>) -> Result<Self, KernelError> {
        let runtime = Runtime::new(talon_runtime::RuntimeConfig {
            cache_dir: Some(shared.home().component_cache_dir()),
            ceilings: ceilings(&shared.config()),
            max_instances: shared.config().plugins.max_instances.max(1),
            retention: retention(&shared.config()),
            baseline: baseline(&shared.config()),
        })
        .map_err(load_error)?;
        runtime.set_memory_backend(Arc::new(StoreMemory(shared.clone())));
        if let Some(path) = &shared.config().plugins.tls_ca_file {
            let bad = |e: String| KernelError::Invalid(format!("plugins.tls_ca_file {path}: {e}"));
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            runtime
                .trust_tls_roots(&pem)
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(Self {
            shared,
            agents,
            registry: Registry::new(runtime),
            locks: Locks::default(),
            bundled: RwLock::default(),
            shipped: RwLock::default(),
        })
    }

    fn plugin_dir(&self) -> PathBuf {
        self.shared.home().plugins_dir()
    }

    fn package_path(&self, name: &str) -> PathBuf {
        self.plugin_dir()
            .join(format!("{name}.{}", talon_runtime::package::EXTENSION))
    }

    fn trust(&self) -> Result<(TrustStore, bool), KernelError> {
        let config = self.shared.config();
        let store = TrustStore::from_config(&config.plugins.trusted_keys).map_err(load_error)?;
        Ok((store, config.plugins.dev_mode))
    }

    /// Reads and checks a package (checksum, signature, trust) off the
    /// async threads: hashing a large component takes a while. The very
    /// package the binary ships under that name is trusted as bundled.
    async fn open_package(&self, source: Source) -> Result<(Package, Trust, Vec<u8>), KernelError> {
        let (trust_store, dev_mode) = self.trust()?;
        let bundled = self
            .bundled
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        tokio::task::spawn_blocking(move || {
            let bytes = match source {
                Source::Bytes(bytes) => bytes,
                Source::Path(path) => read_package_file(&path)?,
            };
            let package = Package::parse(&bytes).map_err(load_error)?;
            if bundled.get(&package.manifest.name) == Some(&package.digest) {
                return Ok((package, Trust::Bundled, bytes));
            }
            let trust = package
                .check_trust(&trust_store, dev_mode)
                .map_err(load_error)?;
            Ok((package, trust, bytes))
        })
        .await
        .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
    }

    /// Installs a package: checks it, loads it with the grant, stores the
    /// file and the record, and audits the install and the grant.
    pub async fn install_plugin(
        &self,
        source: Source,
        grant: Grant,
        settings: BTreeMap<String, String>,
        expect: Option<Kind>,
    ) -> Result<PluginView, KernelError> {
        let (package, trust, bytes) = self.open_package(source).await?;
        self.install_opened(
            package,
            trust,
            bytes,
            grant,
            settings,
            expect,
            Origin::Package,
        )
        .await
    }

    /// [`Plugins::install_plugin`] of a package already read and trusted.
    #[allow(clippy::too_many_arguments)]
    async fn install_opened(
        &self,
        package: Package,
        trust: Trust,
        bytes: Vec<u8>,
        grant: Grant,
        settings: BTreeMap<String, String>,
        expect: Option<Kind>,
        source: Origin,
    ) -> Result<PluginView, KernelError> {
        let manifest = package.manifest.clone();
        if let Some(kind) = expect
            && manifest.kind != kind
        {
            return Err(KernelError::Invalid(format!(
                "{} is a {} plugin, not a {}; install it through /api/plugins/install",
                manifest.name,
                manifest.kind.as_str(),
                kind.as_str()
            )));
        }
        let Some(_lock) = self.locks.try_lock(&manifest.name) else {
            return Err(KernelError::Conflict(format!(
                "plugin {} is being installed or changed right now; try again when that is done",
                manifest.name
            )));
        };
        if self.registry.read().contains_key(&manifest.name) {
            return Err(KernelError::Conflict(format!(
                "plugin {} is already installed; uninstall it first, or reload it with the new package",
                manifest.name
            )));
        }
        let _claim = self.claim_tools(&manifest)?;
        let granted = granted_for(&grant, &manifest)?;
        let compiling = self.locks.compiling(&manifest.name);
        let plugin = self
            .load_component(
                manifest.clone(),
                package.component,
                granted.clone(),
                settings.clone(),
            )
            .await
            .map_err(load_error)?;
        drop(compiling);
        release_freed_memory_soon();
        let now = self.shared.now();
        let record = PluginRecord {
            name: manifest.name.clone(),
            digest: package.digest.clone(),
            granted: granted.clone(),
            settings,
            enabled: true,
            installed_at: now,
            updated_at: now,
            source,
        };
        let path = self.package_path(&manifest.name);
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
            .map_err(|e| KernelError::Store(StoreError::Io(e)))?;
        let details = serde_json::json!({
            "plugin": manifest.name, "version": manifest.version, "digest": record.digest,
            "signature": trust, "granted": granted, "source": source,
        });
        // Installing a bundled plugin (again) undoes the operator's removal.
        let removed = match source {
            Origin::Bundled => Removed::Forget,
            Origin::Package => Removed::Unchanged,
        };
        self.save_plugin_with(
            &manifest.name,
            Some(&record),
            removed,
            AuditEvent::new("plugin_installed", details.to_string()),
        )
        .await?;
        let mut entry = Entry {
            record,
            manifest,
            trust: Some(trust),
            loaded: None,
            channel: None,
            hand: None,
            error: None,
            loading: false,
            stats: Arc::default(),
        };
        entry.set_loaded(plugin);
        let view = entry.view(&self.registry.runtime);
        self.registry.write().insert(view.name.clone(), entry);
        self.shared.events().publish(Event::PluginInstalled {
            name: view.name.clone(),
            at: self.shared.now(),
        });
        Ok(view)
    }

    async fn save_plugin(
        &self,
        name: &str,
        record: Option<&PluginRecord>,
        event: AuditEvent,
    ) -> Result<(), KernelError> {
        self.save_plugin_with(name, record, Removed::Unchanged, event)
            .await
    }

    /// [`Plugins::save_plugin`], also remembering a bundled plugin's removal.
    async fn save_plugin_with(
        &self,
        name: &str,
        record: Option<&PluginRecord>,
        removed: Removed,
        event: AuditEvent,
    ) -> Result<(), KernelError> {
        let store = self.shared.store().clone();
        let (name, record) = (name.to_string(), record.cloned());
        let entry =
            store::blocking(move || save_record(&store, &name, record.as_ref(), removed, event))
                .await?;
        self.shared.events().publish(Event::Audit(entry));
        Ok(())
    }

    /// Claims the manifest's tool names for the change in flight; refused
    /// when another installed plugin offers one, or another change claims it.
    fn claim_tools(&self, manifest: &Manifest) -> Result<Claim<'_>, KernelError> {
        let tools: Vec<String> = manifest.tools.iter().map(|t| t.name.clone()).collect();
        let offered_by = |tool: &str| {
            self.registry
                .read()
                .iter()
                .filter(|(name, _)| **name != manifest.name)
                .find(|(_, entry)| entry.manifest.tools.iter().any(|t| t.name == tool))
                .map(|(name, _)| name.clone())
        };
        self.locks
            .claim(&manifest.name, &tools, offered_by)
            .map_err(|(tool, holder)| {
                KernelError::Conflict(format!(
                    "tool {tool} is already offered by plugin {holder}; tool names are unique"
                ))
            })
    }

    /// Uninstalls a plugin: removes its record and package file. Calls in
    /// flight finish with the version they started with. A bundled plugin
    /// is remembered as removed, so later starts do not install it again
    /// (until [`Plugins::restore_bundled`]). Returns where it came from.
    pub async fn uninstall_plugin(
        &self,
        name: &str,
        expect: Option<Kind>,
    ) -> Result<Origin, KernelError> {
        let _lock = self.locks.lock(name).await;
        let source = {
            let entries = self.registry.read();
            let entry = entries
                .get(name)
                .ok_or_else(|| KernelError::NotFound(format!("no plugin named {name}")))?;
            if expect.is_some_and(|k| k != entry.manifest.kind) {
                return Err(KernelError::NotFound(format!("no skill named {name}")));
            }
            entry.record.source
        };
        let removed = match source {
            Origin::Bundled => Removed::Remember,
            Origin::Package => Removed::Unchanged,
        };
        let details = serde_json::json!({ "plugin": name, "source": source });
        self.save_plugin_with(
            name,
            None,
            removed,
            AuditEvent::new("plugin_uninstalled", details.to_string()),
        )
        .await?;
        self.registry.write().remove(name);
        self.shared.events().publish(Event::PluginUninstalled {
            name: name.to_string(),
            at: self.shared.now(),
        });
        let path = self.package_path(name);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            tracing::warn!(path = %path.display(), error = %e, "could not remove the package file");
        }
        Ok(source)
    }

    /// Every installed plugin.
    pub fn list(&self) -> Vec<PluginView> {
        let runtime = &self.registry.runtime;
        self.registry
            .read()
            .values()
            .map(|e| e.view(runtime))
            .collect()
    }

    /// For how long `name` has been compiling and loading (an install, a
    /// reload or the start's load in progress), if it is.
    pub fn compiling_for(&self, name: &str) -> Option<std::time::Duration> {
        self.locks.compiling_for(name)
    }

    /// One installed plugin.
    pub fn plugin(&self, name: &str) -> Result<PluginView, KernelError> {
        let entries = self.registry.read();
        entries
            .get(name)
            .map(|e| e.view(&self.registry.runtime))
            .ok_or_else(|| KernelError::NotFound(format!("no plugin named {name}")))
    }

    /// A plugin's manifest.
    pub fn plugin_manifest(&self, name: &str) -> Result<Manifest, KernelError> {
        let entries = self.registry.read();
        entries
            .get(name)
            .map(|e| e.manifest.clone())
            .ok_or_else(|| KernelError::NotFound(format!("no plugin named {name}")))
    }

    /// A skill's instructions, when it is loaded.
    pub fn skill_instructions(&self, name: &str) -> Option<String> {
        let entries = self.registry.read();
        entries
            .get(name)
            .and_then(|e| e.loaded.as_ref())
            .and_then(|p| p.instructions().map(str::to_string))
    }

    /// A plugin's record (grants, settings).
    pub fn plugin_record(&self, name: &str) -> Result<PluginRecord, KernelError> {
        let entries = self.registry.read();
        entries
            .get(name)
            .map(|e| e.record.clone())
            .ok_or_else(|| KernelError::NotFound(format!("no plugin named {name}")))
    }

    /// Turns a plugin's tools on or off.
    pub async fn set_plugin_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<PluginView, KernelError> {
        let _lock = self.locks.lock(name).await;
        let mut record = self.plugin_record(name)?;
        if record.enabled == enabled {
            return self.plugin(name);
        }
        record.enabled = enabled;
        record.updated_at = self.shared.now();
        let details = serde_json::json!({ "plugin": name, "enabled": enabled });
        let event = if enabled {
            "plugin_enabled"
        } else {
            "plugin_disabled"
        };
        self.save_plugin(
            name,
            Some(&record),
            AuditEvent::new(event, details.to_string()),
        )
        .await?;
        if let Some(entry) = self.registry.write().get_mut(name) {
            entry.record = record;
            if !enabled {
                entry.loaded = None;
                entry.channel = None;
                entry.hand = None;
                entry.error = None;
            }
        }
        if enabled {
            return self.reload_locked(name, None, false).await;
        }
        self.plugin(name)
    }

    /// Loads a plugin again, from a new package if one is given (an upgrade;
    /// grants are kept where the new version still requests them) or else
    /// from its package file. The new version replaces the old in one step;
    /// calls in flight finish on the old one.
    ///
    /// A package of a lower version than the installed one is refused
    /// unless `force`: a downgrade is a decision, not an accident.
    pub async fn reload_plugin(
        &self,
        name: &str,
        source: Option<Source>,
        force: bool,
    ) -> Result<PluginView, KernelError> {
        let _lock = self.locks.lock(name).await;
        self.reload_locked(name, source, force).await
    }

    /// Replaces what an installed plugin is granted, never beyond what its
    /// manifest requests, with an audit entry naming the grants before and
    /// after. A loaded plugin is loaded again with the new grant in one
    /// step: the next call runs on an instance that has only it (calls in
    /// flight finish with the old one). A disabled plugin keeps the grant
    /// for when it is enabled.
    pub async fn set_grants(&self, name: &str, grant: Grant) -> Result<PluginView, KernelError> {
        let _lock = self.locks.lock(name).await;
        let manifest = self.plugin_manifest(name)?;
        let mut record = self.plugin_record(name)?;
        let granted = granted_for(&grant, &manifest)?;
        let details = serde_json::json!({
            "plugin": name, "before": record.granted, "after": granted,
        });
        let event = AuditEvent::new("plugin_grants_changed", details.to_string());
        if !record.enabled {
            record.granted = granted;
            record.updated_at = self.shared.now();
            self.save_plugin(name, Some(&record), event).await?;
            if let Some(entry) = self.registry.write().get_mut(name) {
                entry.record = record;
            }
            return self.plugin(name);
        }
        self.load_again(name, None, false, Some((granted, event)))
            .await
    }

    /// [`Plugins::reload_plugin`] with `name`'s lock held.
    async fn reload_locked(
        &self,
        name: &str,
        source: Option<Source>,
        force: bool,
    ) -> Result<PluginView, KernelError> {
        self.load_again(name, source, force, None).await
    }

    /// Loads a plugin again (`name`'s lock held): from `source` or its
    /// package file, with `regrant`'s permissions and audit event when
    /// given, else with its grants narrowed to what the package requests.
    async fn load_again(
        &self,
        name: &str,
        source: Option<Source>,
        force: bool,
        regrant: Option<(talon_runtime::Permissions, AuditEvent)>,
    ) -> Result<PluginView, KernelError> {
        let mut record = self.plugin_record(name)?;
        let upgrade = source.is_some();
        let source = source.unwrap_or_else(|| Source::Path(self.package_path(name)));
        let (package, trust, bytes) = self.open_package(source).await?;
        if package.manifest.name != name {
            return Err(KernelError::Invalid(format!(
                "the package is plugin {}, not {name}",
                package.manifest.name
            )));
        }
        if upgrade && !force {
            let installed = self.plugin_manifest(name)?.version;
            refuse_downgrade(name, &installed, &package.manifest.version)?;
        }
        let _claim = self.claim_tools(&package.manifest)?;
        let (granted, event) = match regrant {
            Some((granted, event)) => (granted, Some(event)),
            None => (narrow(&record.granted, &package.manifest.permissions), None),
        };
        let compiling = self.locks.compiling(name);
        let plugin = self
            .load_component(
                package.manifest.clone(),
                package.component,
                granted.clone(),
                record.settings.clone(),
            )
            .await
            .map_err(load_error)?;
        drop(compiling);
        release_freed_memory_soon();
        if upgrade {
            let path = self.package_path(name);
            tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
                .await
                .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
                .map_err(|e| KernelError::Store(StoreError::Io(e)))?;
        }
        record.digest = package.digest.clone();
        record.granted = granted;
        record.enabled = true;
        // Running anything but the package the binary ships makes it the
        // operator's: later starts no longer replace it with the bundled copy.
        if trust != Trust::Bundled {
            record.source = Origin::Package;
        }
        record.updated_at = self.shared.now();
        let event = event.unwrap_or_else(|| {
            let details = serde_json::json!({
                "plugin": name, "version": package.manifest.version, "digest": record.digest, "upgrade": upgrade,
            });
            AuditEvent::new("plugin_reloaded", details.to_string())
        });
        self.save_plugin(name, Some(&record), event).await?;
        {
            let mut entries = self.registry.write();
            if let Some(entry) = entries.get_mut(name) {
                entry.record = record;
                entry.manifest = package.manifest;
                entry.trust = Some(trust);
                entry.set_loaded(plugin);
                entry.error = None;
                entry.loading = false;
            }
        }
        self.plugin(name)
    }

    /// Re-signs an installed plugin's package with a secret key file on the
    /// daemon's machine. The key must be trusted (or development mode on),
    /// or the package would no longer load.
    pub async fn sign_plugin(
        &self,
        name: &str,
        key_path: PathBuf,
    ) -> Result<PluginView, KernelError> {
        let _lock = self.locks.lock(name).await;
        let _ = self.plugin_record(name)?;
        let key = tokio::task::spawn_blocking(move || SecretKey::read(&key_path))
            .await
            .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
            .map_err(load_error)?;
        let (package, _, _) = self
            .open_package(Source::Path(self.package_path(name)))
            .await?;
        let bytes = Package::build(&package.manifest, &package.component, Some(&key))
            .map_err(load_error)?;
        let (trust_store, dev_mode) = self.trust()?;
        if !dev_mode && !trust_store.trusts(&key.public()) {
            return Err(KernelError::Invalid(format!(
                "key {} is not in plugins.trusted_keys, so the signed package would not load; trust it first \
                 (add {} to plugins.trusted_keys)",
                key.public().id(),
                key.public().to_hex()
            )));
        }
        let path = self.package_path(name);
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
            .map_err(|e| KernelError::Store(StoreError::Io(e)))?;
        let details = serde_json::json!({ "plugin": name, "key_id": key.public().id() });
        self.shared
            .audit(AuditEvent::new("plugin_signed", details.to_string()))
            .await?;
        self.reload_locked(name, None, false).await
    }

    /// Instantiates a plugin and asks it to describe itself.
    pub async fn probe_plugin(&self, name: &str) -> Result<std::time::Duration, KernelError> {
        let plugin = {
            let entries = self.registry.read();
            let entry = entries
                .get(name)
                .ok_or_else(|| KernelError::NotFound(format!("no plugin named {name}")))?;
            entry.loaded.clone().ok_or_else(|| {
                KernelError::Conflict(format!(
                    "plugin {name} is not loaded: {}",
                    entry
                        .error
                        .clone()
                        .unwrap_or_else(|| "it is disabled".into())
                ))
            })?
        };
        let started = std::time::Instant::now();
        self.registry
            .runtime
            .probe(&plugin)
            .await
            .map_err(load_error)?;
        Ok(started.elapsed())
    }

    /// Loads a component for its kind: a channel as a channel (described,
    /// ready to start), anything else for its tools.
    async fn load_component(
        &self,
        manifest: Manifest,
        component: Vec<u8>,
        granted: talon_runtime::Permissions,
        settings: BTreeMap<String, String>,
    ) -> Result<Loaded, LoadError> {
        let runtime = &self.registry.runtime;
        let component = Arc::new(component);
        if manifest.kind == Kind::Channel {
            let channel = runtime
                .load_channel(manifest, component, granted, settings)
                .await?;
            return Ok(Loaded::Channel(channel));
        }
        if manifest.kind == Kind::Hand {
            let hand = runtime
                .load_hand(manifest, component, granted, settings)
                .await?;
            return Ok(Loaded::Hand(hand));
        }
        let plugin = runtime.load(manifest, component, granted, settings).await?;
        Ok(Loaded::Tool(plugin))
    }

    /// The loaded channel component named `name`, to start: not found when
    /// no plugin has the name, invalid when it is not a channel, a conflict
    /// when it is disabled or did not load.
    pub fn channel_plugin(
        &self,
        name: &str,
    ) -> Result<talon_runtime::channel::ChannelPlugin, KernelError> {
        let entries = self.registry.read();
        let entry = entries.get(name).ok_or_else(|| {
            KernelError::NotFound(format!(
                "no plugin named {name} is installed; install the channel's package first"
            ))
        })?;
        if entry.manifest.kind != Kind::Channel && !entry.loading {
            return Err(KernelError::Invalid(format!(
                "plugin {name} is a {} plugin, not a channel",
                entry.manifest.kind.as_str()
            )));
        }
        entry.channel.clone().ok_or_else(|| {
            KernelError::Conflict(format!(
                "channel plugin {name} is not loaded: {}",
                not_loaded_reason(entry)
            ))
        })
    }

    /// The loaded hand component named `name`, to activate: not found when
    /// no plugin has the name, invalid when it is not a hand, a conflict
    /// when it is disabled or did not load.
    pub fn hand_plugin(&self, name: &str) -> Result<talon_runtime::hand::HandPlugin, KernelError> {
        let entries = self.registry.read();
        let entry = entries
            .get(name)
            .ok_or_else(|| KernelError::NotFound(format!("no hand named {name} is installed")))?;
        if entry.manifest.kind != Kind::Hand && !entry.loading {
            return Err(KernelError::Invalid(format!(
                "plugin {name} is a {} plugin, not a hand",
                entry.manifest.kind.as_str()
            )));
        }
        entry.hand.clone().ok_or_else(|| {
            KernelError::Conflict(format!(
                "hand plugin {name} is not loaded: {}",
                not_loaded_reason(entry)
            ))
        })
    }

    /// The names of the installed plugins of kind `hand` (loaded or not).
    pub fn hand_names(&self) -> Vec<String> {
        self.registry
            .read()
            .values()
            .filter(|e| e.manifest.kind == Kind::Hand)
            .map(|e| e.record.name.clone())
            .collect()
    }

    /// Every loaded channel component with its plugin's name, for the
    /// registry of what can be configured.
    pub fn channel_plugins(&self) -> Vec<(String, talon_runtime::channel::ChannelPlugin)> {
        self.registry
            .read()
            .iter()
            .filter_map(|(name, e)| e.channel.clone().map(|c| (name.clone(), c)))
            .collect()
    }

    /// The plugin runtime, which runs channels' long-lived instances.
    pub fn runtime(&self) -> &Runtime {
        &self.registry.runtime
    }

    /// Keeps plugins away from the daemon's own listening addresses, whatever
    /// they are granted: a plugin must never reach the admin API.
    pub fn deny_addresses(&self, addresses: impl IntoIterator<Item = std::net::SocketAddr>) {
        self.registry.runtime.deny_addresses(addresses);
    }

    /// Compiles components in child processes running `program` (the
    /// daemon's own executable, which implements `talon_runtime::compiler`'s
    /// subcommand), so the compiler's memory is returned when each ends. A
    /// compile may take up to `[plugins] load_timeout_secs`.
    pub fn compile_with(&self, program: PathBuf) {
        let timeout =
            std::time::Duration::from_secs(self.shared.config().plugins.load_timeout_secs.max(1));
        self.registry
            .runtime
            .set_compiler(talon_runtime::Compiler::new(program, timeout));
    }

    /// Applies new `[plugins]` ceilings after a config reload.
    pub fn apply_ceilings(&self) {
        self.registry
            .runtime
            .set_ceilings(ceilings(&self.shared.config()));
    }
}

/// Why a long-lived plugin (channel, hand) has no loaded component.
fn not_loaded_reason(entry: &registry::Entry) -> String {
    match (&entry.error, entry.record.enabled, entry.loading) {
        (_, false, _) => "it is disabled".to_string(),
        (_, true, true) => "it is still loading".to_string(),
        (Some(e), _, _) => e.clone(),
        (None, _, _) => "it did not load".to_string(),
    }
}

/// Gives the heap an install or reload used back to the system, once the
/// request that carried the package is done: the compiler's working memory,
/// the package and its base64 text are freed by then, but glibc keeps freed
/// heap mapped, and a Python or JavaScript component leaves tens of MiB.
fn release_freed_memory_soon() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        // SAFETY: malloc_trim only returns free memory to the kernel; it is
        // thread-safe and has no preconditions.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    });
}

/// How the runtime compiles tools and skills first, from `[plugins]
/// baseline_compiler`: Winch first where Winch is a tier 1 compiler
/// (x86_64), Cranelift only elsewhere or when the config says so.
pub fn baseline(config: &crate::config::Config) -> talon_runtime::Baseline {
    if config.plugins.baseline_compiler && cfg!(target_arch = "x86_64") {
        talon_runtime::Baseline::First
    } else {
        talon_runtime::Baseline::Off
    }
}

/// The runtime ceilings a config asks for.
/// What the runtime's instance pool keeps between calls, from `[plugins]`.
pub fn retention(config: &crate::config::Config) -> talon_runtime::PoolRetention {
    let p = &config.plugins;
    talon_runtime::PoolRetention {
        memory_keep_resident: p.pool_memory_keep_resident_kib.saturating_mul(1 << 10),
        table_keep_resident: p.pool_table_keep_resident_kib.saturating_mul(1 << 10),
        warm_slots: p.pool_warm_slots,
    }
}

pub fn ceilings(config: &crate::config::Config) -> talon_runtime::Ceilings {
    let p = &config.plugins;
    talon_runtime::Ceilings {
        fuel: p.max_fuel,
        memory_bytes: (p.max_memory_mb as usize).saturating_mul(1 << 20),
        timeout: std::time::Duration::from_millis(p.max_timeout_ms),
        per_plugin_instances: p.max_instances_per_plugin.max(1),
        slot_wait: std::time::Duration::from_millis(p.slot_wait_ms),
        resource_entries: p.max_resources_per_call.max(1),
        http_fields_bytes: p.max_http_fields_kib.saturating_mul(1024),
        result_bytes: p.max_result_kib.saturating_mul(1024),
        log_lines_per_call: p.max_log_lines_per_call,
        log_lines_per_second: p.max_log_lines_per_second,
        log_line_bytes: p.max_log_line_bytes.max(64),
        workspace_bytes: p.max_workspace_mib_per_agent.saturating_mul(1 << 20),
    }
}
