//! Installed plugins: package files in `plugins/`, records (grants, settings,
//! enabled) in the store, loaded components in the runtime, and the index of
//! tools by name that agents and the API call through.
//!
//! A call in flight holds its own handle to the plugin it started with, so
//! reloading or removing a plugin never fails calls already running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use talon_runtime::{
    CallContext, EffectiveLimits, Invocation, Kind, LoadError, Manifest, MemoryBackend, Package,
    Permissions, Plugin, Runtime, SecretKey, ToolSpec, Trust, TrustStore,
};
use uuid::Uuid;

use crate::KernelError;
use crate::audit::AuditEvent;
use crate::kernel::Kernel;
use crate::store::{self, Store, StoreError};

/// Installed plugins by name: JSON [`PluginRecord`].
pub(crate) const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins.v1");
const TABLE: &str = "plugins.v1";

/// What the store keeps about an installed plugin; the package file holds
/// the rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginRecord {
    /// The plugin's name (also its package file's name).
    pub name: String,
    /// SHA-256 of the package file installed.
    pub digest: String,
    /// What the operator granted.
    pub granted: Permissions,
    /// Settings the plugin reads through `talon:plugin/settings`.
    pub settings: BTreeMap<String, String>,
    /// Whether its tools are offered.
    pub enabled: bool,
    /// When it was installed.
    pub installed_at: DateTime<Utc>,
    /// When its package, grants or state last changed.
    pub updated_at: DateTime<Utc>,
}

/// What the operator grants at install.
#[derive(Debug, Clone, Default)]
pub enum Grant {
    /// Nothing: the plugin runs with no files, hosts, keys or variables.
    #[default]
    Nothing,
    /// Everything the manifest requests.
    All,
    /// Exactly this, which must be within what the manifest requests.
    Exactly(Permissions),
}

/// Where an install's package comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The package's bytes.
    Bytes(Vec<u8>),
    /// A package file on the daemon's machine.
    Path(PathBuf),
}

/// Running totals of one plugin's calls.
#[derive(Debug, Default)]
struct Stats {
    calls: AtomicU64,
    errors: AtomicU64,
    fuel: AtomicU64,
    wall_us: AtomicU64,
    peak_memory: AtomicU64,
}

/// Call figures of one plugin since the daemon started.
#[derive(Debug, Clone, Serialize)]
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

struct Entry {
    record: PluginRecord,
    manifest: Manifest,
    trust: Option<Trust>,
    loaded: Option<Plugin>,
    error: Option<String>,
    stats: Arc<Stats>,
}

/// The plugin registry the kernel owns.
pub(crate) struct Registry {
    runtime: Runtime,
    entries: RwLock<BTreeMap<String, Entry>>,
}

/// Requested and granted permissions, side by side.
#[derive(Debug, Clone, Serialize)]
pub struct PermissionsView {
    /// What the manifest asks for.
    pub requested: Permissions,
    /// What the operator granted.
    pub granted: Permissions,
}

/// An installed plugin as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginView {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `tool` or `skill`.
    pub kind: Kind,
    /// One line for operators.
    pub description: String,
    /// Publisher, if the manifest names one.
    pub author: Option<String>,
    /// Whether its tools are offered.
    pub enabled: bool,
    /// `loaded`, `disabled` or `error`.
    pub status: &'static str,
    /// Why it is not loaded, when `status` is `error`.
    pub error: Option<String>,
    /// SHA-256 of the package file.
    pub digest: String,
    /// Who signed it, as the trust store sees it (absent when untrusted now).
    pub signature: Option<Trust>,
    /// Its tools' names.
    pub tools: Vec<String>,
    /// Requested and granted permissions.
    pub permissions: PermissionsView,
    /// The limits its calls run under.
    pub limits: EffectiveLimits,
    /// When it was installed.
    pub installed_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Calls since the daemon started.
    pub stats: CallStats,
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
}

impl Registry {
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            entries: RwLock::new(BTreeMap::new()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Entry {
    fn view(&self, runtime: &Runtime) -> PluginView {
        let status = match (&self.loaded, self.record.enabled) {
            (_, false) => "disabled",
            (Some(_), true) => "loaded",
            (None, true) => "error",
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
        }
    }
}

/// Plugin memory over the agents' key-value store: values are JSON strings.
pub(crate) struct StoreMemory(pub Store);

fn agent_uuid(agent: &str) -> Result<Uuid, String> {
    agent
        .parse()
        .map_err(|_| format!("{agent:?} is not an agent id"))
}

impl MemoryBackend for StoreMemory {
    fn get(&self, agent_id: &str, key: &str) -> Result<Option<String>, String> {
        let value =
            crate::memory::get(&self.0, agent_uuid(agent_id)?, key).map_err(|e| e.to_string())?;
        Ok(value.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }))
    }

    fn set(&self, agent_id: &str, key: &str, value: &str) -> Result<(), String> {
        let value = serde_json::Value::String(value.to_string());
        crate::memory::set(&self.0, agent_uuid(agent_id)?, key, &value).map_err(|e| e.to_string())
    }

    fn delete(&self, agent_id: &str, key: &str) -> Result<bool, String> {
        crate::memory::delete(&self.0, agent_uuid(agent_id)?, key).map_err(|e| e.to_string())
    }

    fn list(&self, agent_id: &str, prefix: &str) -> Result<Vec<String>, String> {
        let all = crate::memory::list(&self.0, agent_uuid(agent_id)?).map_err(|e| e.to_string())?;
        Ok(all
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(prefix))
            .collect())
    }
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

fn read_records(store: &Store) -> Result<Vec<PluginRecord>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = match tx.open_table(PLUGINS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, value) = row?;
        out.push(store::decode(TABLE, value.value())?);
    }
    Ok(out)
}

/// Writes (or with `None`, removes) a record and its audit entry in one
/// transaction.
fn save_record(
    store: &Store,
    name: &str,
    record: Option<&PluginRecord>,
    event: AuditEvent,
) -> Result<crate::audit::AuditEntry, StoreError> {
    let tx = store.db().begin_write()?;
    {
        let mut table = tx.open_table(PLUGINS)?;
        match record {
            Some(record) => {
                let bytes = store::encode(TABLE, record)?;
                table.insert(name, bytes.as_slice())?;
            }
            None => {
                table.remove(name)?;
            }
        }
    }
    let entry = crate::audit::append_in(&tx, event)?;
    tx.commit()?;
    Ok(entry)
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

fn granted_for(grant: &Grant, manifest: &Manifest) -> Result<Permissions, KernelError> {
    let granted = match grant {
        Grant::Nothing => Permissions::default(),
        Grant::All => manifest.permissions.clone(),
        Grant::Exactly(p) => p.clone(),
    };
    granted.validate().map_err(KernelError::Invalid)?;
    if let Some(extra) = granted.first_not_in(&manifest.permissions) {
        return Err(KernelError::Invalid(format!(
            "cannot grant {extra}: plugin {} did not request it (it requests {})",
            manifest.name,
            serde_json::to_string(&manifest.permissions).unwrap_or_default()
        )));
    }
    Ok(granted)
}

/// Grants kept across an upgrade: only what the new version still requests.
fn narrow(granted: &Permissions, requested: &Permissions) -> Permissions {
    let within = |probe: Permissions| probe.first_not_in(requested).is_none();
    Permissions {
        filesystem: granted
            .filesystem
            .filter(|_| requested.filesystem.is_some()),
        network: granted
            .network
            .iter()
            .filter(|h| {
                within(Permissions {
                    network: vec![(*h).clone()],
                    ..Default::default()
                })
            })
            .cloned()
            .collect(),
        memory: granted
            .memory
            .iter()
            .filter(|k| {
                within(Permissions {
                    memory: vec![(*k).clone()],
                    ..Default::default()
                })
            })
            .cloned()
            .collect(),
        env: granted
            .env
            .iter()
            .filter(|e| requested.env.contains(e))
            .cloned()
            .collect(),
    }
}

impl Kernel {
    fn plugin_dir(&self) -> PathBuf {
        self.home().plugins_dir()
    }

    fn package_path(&self, name: &str) -> PathBuf {
        self.plugin_dir()
            .join(format!("{name}.{}", talon_runtime::package::EXTENSION))
    }

    fn trust(&self) -> Result<(TrustStore, bool), KernelError> {
        let config = self.config();
        let store = TrustStore::from_config(&config.plugins.trusted_keys).map_err(load_error)?;
        Ok((store, config.plugins.dev_mode))
    }

    /// Reads and checks a package (checksum, signature, trust) off the
    /// async threads: hashing a large component takes a while.
    async fn open_package(&self, source: Source) -> Result<(Package, Trust, Vec<u8>), KernelError> {
        let (trust_store, dev_mode) = self.trust()?;
        tokio::task::spawn_blocking(move || {
            let bytes = match source {
                Source::Bytes(bytes) => bytes,
                Source::Path(path) => std::fs::read(&path).map_err(|e| {
                    KernelError::Invalid(format!("cannot read {}: {e}", path.display()))
                })?,
            };
            let package = Package::parse(&bytes).map_err(load_error)?;
            let trust = package
                .check_trust(&trust_store, dev_mode)
                .map_err(load_error)?;
            Ok((package, trust, bytes))
        })
        .await
        .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
    }

    /// Loads every enabled installed plugin. A plugin that fails (a missing
    /// or altered file, a key no longer trusted) is kept with its error so
    /// `GET /api/plugins` and the doctor show it; the daemon still starts.
    pub async fn load_plugins(&self) -> Result<usize, KernelError> {
        let store = self.store().clone();
        let records = store::blocking(move || read_records(&store)).await?;
        let mut loaded = 0;
        for record in records {
            let name = record.name.clone();
            let outcome = match self
                .open_package(Source::Path(self.package_path(&name)))
                .await
            {
                Ok((package, trust, _)) if package.manifest.name == name => {
                    let manifest = package.manifest.clone();
                    let result = match record.enabled {
                        true => self
                            .registry()
                            .runtime
                            .load(
                                manifest.clone(),
                                Arc::new(package.component),
                                record.granted.clone(),
                                record.settings.clone(),
                            )
                            .await
                            .map(Some)
                            .map_err(|e| e.to_string()),
                        false => Ok(None),
                    };
                    (Some(manifest), Some(trust), result)
                }
                Ok((package, _, _)) => (
                    None,
                    None,
                    Err(format!(
                        "the package file holds plugin {:?}",
                        package.manifest.name
                    )),
                ),
                Err(e) => (None, None, Err(e.to_string())),
            };
            let (manifest, trust, result) = outcome;
            if result.as_ref().is_ok_and(Option::is_some) {
                loaded += 1;
            }
            let (loaded_plugin, error) = match result {
                Ok(plugin) => (plugin, None),
                Err(e) => {
                    tracing::error!(plugin = %name, error = %e, "plugin not loaded");
                    (None, Some(e))
                }
            };
            let manifest = manifest.unwrap_or_else(|| placeholder_manifest(&name));
            self.registry().write().insert(
                name,
                Entry {
                    record,
                    manifest,
                    trust,
                    loaded: loaded_plugin,
                    error,
                    stats: Arc::default(),
                },
            );
        }
        Ok(loaded)
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
        if self.registry().read().contains_key(&manifest.name) {
            return Err(KernelError::Conflict(format!(
                "plugin {} is already installed; uninstall it first, or reload it with the new package",
                manifest.name
            )));
        }
        self.check_tool_names(&manifest)?;
        let granted = granted_for(&grant, &manifest)?;
        let plugin = self
            .registry()
            .runtime
            .load(
                manifest.clone(),
                Arc::new(package.component),
                granted.clone(),
                settings.clone(),
            )
            .await
            .map_err(load_error)?;
        let now = Utc::now();
        let record = PluginRecord {
            name: manifest.name.clone(),
            digest: package.digest.clone(),
            granted: granted.clone(),
            settings,
            enabled: true,
            installed_at: now,
            updated_at: now,
        };
        let path = self.package_path(&manifest.name);
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
            .map_err(|e| KernelError::Store(StoreError::Io(e)))?;
        let details = serde_json::json!({
            "plugin": manifest.name, "version": manifest.version, "digest": record.digest,
            "signature": trust, "granted": granted,
        });
        self.save_plugin(
            &manifest.name,
            Some(&record),
            AuditEvent::new("PluginInstalled", details.to_string()),
        )
        .await?;
        let entry = Entry {
            record,
            manifest,
            trust: Some(trust),
            loaded: Some(plugin),
            error: None,
            stats: Arc::default(),
        };
        let view = entry.view(&self.registry().runtime);
        self.registry().write().insert(view.name.clone(), entry);
        self.events()
            .publish(crate::events::Event::PluginInstalled {
                name: view.name.clone(),
                at: chrono::Utc::now(),
            });
        Ok(view)
    }

    async fn save_plugin(
        &self,
        name: &str,
        record: Option<&PluginRecord>,
        event: AuditEvent,
    ) -> Result<(), KernelError> {
        let store = self.store().clone();
        let (name, record) = (name.to_string(), record.cloned());
        let entry =
            store::blocking(move || save_record(&store, &name, record.as_ref(), event)).await?;
        self.events().publish(crate::events::Event::Audit(entry));
        Ok(())
    }

    /// Refuses a manifest whose tools another installed plugin already offers.
    fn check_tool_names(&self, manifest: &Manifest) -> Result<(), KernelError> {
        let entries = self.registry().read();
        for (name, entry) in entries.iter().filter(|(n, _)| **n != manifest.name) {
            if let Some(tool) = entry
                .manifest
                .tools
                .iter()
                .find(|t| manifest.tools.iter().any(|m| m.name == t.name))
            {
                return Err(KernelError::Conflict(format!(
                    "tool {} is already offered by plugin {name}; tool names are unique",
                    tool.name
                )));
            }
        }
        Ok(())
    }

    /// Uninstalls a plugin: removes its record and package file. Calls in
    /// flight finish with the version they started with.
    pub async fn uninstall_plugin(
        &self,
        name: &str,
        expect: Option<Kind>,
    ) -> Result<(), KernelError> {
        {
            let entries = self.registry().read();
            let entry = entries
                .get(name)
                .ok_or_else(|| KernelError::NotFound(format!("no plugin named {name}")))?;
            if expect.is_some_and(|k| k != entry.manifest.kind) {
                return Err(KernelError::NotFound(format!("no skill named {name}")));
            }
        }
        let details = serde_json::json!({ "plugin": name });
        self.save_plugin(
            name,
            None,
            AuditEvent::new("PluginUninstalled", details.to_string()),
        )
        .await?;
        self.registry().write().remove(name);
        self.events()
            .publish(crate::events::Event::PluginUninstalled {
                name: name.to_string(),
                at: chrono::Utc::now(),
            });
        let path = self.package_path(name);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            tracing::warn!(path = %path.display(), error = %e, "could not remove the package file");
        }
        Ok(())
    }

    /// Every installed plugin.
    pub fn plugins(&self) -> Vec<PluginView> {
        let runtime = &self.registry().runtime;
        self.registry()
            .read()
            .values()
            .map(|e| e.view(runtime))
            .collect()
    }

    /// One installed plugin.
    pub fn plugin(&self, name: &str) -> Result<PluginView, KernelError> {
        let entries = self.registry().read();
        entries
            .get(name)
            .map(|e| e.view(&self.registry().runtime))
            .ok_or_else(|| KernelError::NotFound(format!("no plugin named {name}")))
    }

    /// A plugin's manifest.
    pub fn plugin_manifest(&self, name: &str) -> Result<Manifest, KernelError> {
        let entries = self.registry().read();
        entries
            .get(name)
            .map(|e| e.manifest.clone())
            .ok_or_else(|| KernelError::NotFound(format!("no plugin named {name}")))
    }

    /// A skill's instructions, when it is loaded.
    pub fn skill_instructions(&self, name: &str) -> Option<String> {
        let entries = self.registry().read();
        entries
            .get(name)
            .and_then(|e| e.loaded.as_ref())
            .and_then(|p| p.instructions().map(str::to_string))
    }

    /// A plugin's record (grants, settings).
    pub fn plugin_record(&self, name: &str) -> Result<PluginRecord, KernelError> {
        let entries = self.registry().read();
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
        let mut record = self.plugin_record(name)?;
        if record.enabled == enabled {
            return self.plugin(name);
        }
        record.enabled = enabled;
        record.updated_at = Utc::now();
        let details = serde_json::json!({ "plugin": name, "enabled": enabled });
        let event = if enabled {
            "PluginEnabled"
        } else {
            "PluginDisabled"
        };
        self.save_plugin(
            name,
            Some(&record),
            AuditEvent::new(event, details.to_string()),
        )
        .await?;
        if let Some(entry) = self.registry().write().get_mut(name) {
            entry.record = record;
            if !enabled {
                entry.loaded = None;
                entry.error = None;
            }
        }
        if enabled {
            return self.reload_plugin(name, None).await;
        }
        self.plugin(name)
    }

    /// Loads a plugin again, from a new package if one is given (an upgrade;
    /// grants are kept where the new version still requests them) or else
    /// from its package file. The new version replaces the old in one step;
    /// calls in flight finish on the old one.
    pub async fn reload_plugin(
        &self,
        name: &str,
        source: Option<Source>,
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
        self.check_tool_names(&package.manifest)?;
        let granted = narrow(&record.granted, &package.manifest.permissions);
        let plugin = self
            .registry()
            .runtime
            .load(
                package.manifest.clone(),
                Arc::new(package.component),
                granted.clone(),
                record.settings.clone(),
            )
            .await
            .map_err(load_error)?;
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
        record.updated_at = Utc::now();
        let details = serde_json::json!({
            "plugin": name, "version": package.manifest.version, "digest": record.digest, "upgrade": upgrade,
        });
        self.save_plugin(
            name,
            Some(&record),
            AuditEvent::new("PluginReloaded", details.to_string()),
        )
        .await?;
        {
            let mut entries = self.registry().write();
            if let Some(entry) = entries.get_mut(name) {
                entry.record = record;
                entry.manifest = package.manifest;
                entry.trust = Some(trust);
                entry.loaded = Some(plugin);
                entry.error = None;
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
        self.audit(AuditEvent::new("PluginSigned", details.to_string()))
            .await?;
        self.reload_plugin(name, None).await
    }

    /// Instantiates a plugin and asks it to describe itself.
    pub async fn probe_plugin(&self, name: &str) -> Result<std::time::Duration, KernelError> {
        let plugin = {
            let entries = self.registry().read();
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
        self.registry()
            .runtime
            .probe(&plugin)
            .await
            .map_err(load_error)?;
        Ok(started.elapsed())
    }

    /// Every tool of every enabled, loaded plugin.
    pub fn tools(&self) -> Vec<ToolView> {
        let entries = self.registry().read();
        let mut tools: Vec<ToolView> = entries
            .values()
            .filter(|e| e.loaded.is_some())
            .flat_map(|e| e.manifest.tools.iter().map(|t| tool_view(t, e)))
            .collect();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        tools
    }

    /// One tool.
    pub fn tool(&self, name: &str) -> Result<ToolView, KernelError> {
        let entries = self.registry().read();
        entries
            .values()
            .filter(|e| e.loaded.is_some())
            .find_map(|e| {
                e.manifest
                    .tools
                    .iter()
                    .find(|t| t.name == name)
                    .map(|t| tool_view(t, e))
            })
            .ok_or_else(|| KernelError::NotFound(format!("no tool named {name}")))
    }

    /// Calls a tool. With an agent, the call sees that agent's workspace and
    /// memory, and only tools its manifest lists may be called.
    pub async fn invoke_tool(
        &self,
        tool: &str,
        arguments: &str,
        agent: Option<Uuid>,
    ) -> Result<(String, Invocation), KernelError> {
        let (plugin, stats, plugin_name) = {
            let entries = self.registry().read();
            let entry = entries
                .values()
                .find(|e| e.loaded.is_some() && e.manifest.tools.iter().any(|t| t.name == tool))
                .ok_or_else(|| KernelError::NotFound(format!("no tool named {tool}")))?;
            (
                entry.loaded.clone(),
                entry.stats.clone(),
                entry.record.name.clone(),
            )
        };
        let plugin =
            plugin.ok_or_else(|| KernelError::NotFound(format!("no tool named {tool}")))?;
        let ctx = match agent {
            Some(id) => {
                let record = self.agent(id).await?;
                if !record.manifest.capabilities.tools.iter().any(|t| t == tool) {
                    return Err(KernelError::Forbidden(format!(
                        "agent {} may not call {tool}: it is not in the agent's capabilities.tools",
                        record.manifest.name
                    )));
                }
                let workspace = self.home().workspace(&id);
                tokio::fs::create_dir_all(&workspace)
                    .await
                    .map_err(|e| KernelError::Store(StoreError::Io(e)))?;
                CallContext {
                    agent_id: Some(id.to_string()),
                    workspace: Some(workspace),
                }
            }
            None => CallContext::default(),
        };
        let invocation = self
            .registry()
            .runtime
            .invoke(&plugin, tool, arguments, &ctx)
            .await;
        stats.calls.fetch_add(1, Ordering::Relaxed);
        self.events().publish(crate::events::Event::ToolCalled {
            tool: tool.to_string(),
            plugin: plugin_name.clone(),
            agent_id: agent.map(|a| a.to_string()),
            ok: invocation.result.is_ok(),
            at: chrono::Utc::now(),
        });
        if invocation.result.is_err() {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        stats
            .fuel
            .fetch_add(invocation.cost.fuel, Ordering::Relaxed);
        stats
            .wall_us
            .fetch_add(invocation.cost.wall_us, Ordering::Relaxed);
        stats
            .peak_memory
            .fetch_max(invocation.cost.peak_memory, Ordering::Relaxed);
        Ok((plugin_name, invocation))
    }

    /// Applies new `[plugins]` ceilings after a config reload.
    pub fn apply_plugin_ceilings(&self) {
        self.registry()
            .runtime
            .set_ceilings(ceilings(&self.config()));
    }
}

fn tool_view(tool: &ToolSpec, entry: &Entry) -> ToolView {
    ToolView {
        name: tool.name.clone(),
        description: tool.description.clone(),
        input_schema: tool.parameters.clone(),
        plugin: entry.record.name.clone(),
        kind: entry.manifest.kind,
    }
}

/// A stand-in manifest for a plugin whose package could not be read, so it
/// can still be listed (with its error) and uninstalled.
fn placeholder_manifest(name: &str) -> Manifest {
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
    }
}

/// The runtime ceilings a config asks for.
pub(crate) fn ceilings(config: &crate::config::Config) -> talon_runtime::Ceilings {
    talon_runtime::Ceilings {
        fuel: config.plugins.max_fuel,
        memory_bytes: (config.plugins.max_memory_mb as usize).saturating_mul(1 << 20),
        timeout: std::time::Duration::from_millis(config.plugins.max_timeout_ms),
    }
}

/// Builds the runtime for a kernel: ceilings from the config, the compiled
/// component cache in the data directory, memory over the store.
pub(crate) fn runtime_for(
    home: &crate::home::Home,
    config: &crate::config::Config,
    store: &Store,
) -> Result<Registry, KernelError> {
    let runtime = Runtime::new(talon_runtime::RuntimeConfig {
        cache_dir: Some(home.component_cache_dir()),
        ceilings: ceilings(config),
        max_instances: 128,
    })
    .map_err(load_error)?;
    runtime.set_memory_backend(Arc::new(StoreMemory(store.clone())));
    Ok(Registry::new(runtime))
}
