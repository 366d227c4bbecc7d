//! [`Kernel`]: the one object the API talks to.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::Utc;
use uuid::Uuid;

use crate::KernelError;
use crate::agents::{self, AgentManifest, AgentRecord, AgentState};
use crate::config::{self, Config, ReloadPlan};
use crate::events::Event;
use crate::home::Home;
use crate::store::{self, Store};
use crate::{memory, uploads, workspace};

/// Settings given on the command line that win over `config.toml` for this run only.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `api_listen`.
    pub api_listen: Option<String>,
    /// Replaces `allow_remote_without_key` when true.
    pub allow_remote_without_key: bool,
}

/// The running kernel: configuration, store and registries.
pub struct Kernel {
    home: Home,
    config_path: PathBuf,
    overrides: Overrides,
    config: RwLock<Arc<Config>>,
    pub(crate) store: Store,
    pub(crate) events: crate::events::EventBus,
    plugins: crate::plugins::Registry,
    llm: talon_llm::LlmClient,
    live: crate::live::LiveSessions,
    started: Instant,
    // --- Scheduler (issue 5) ---
    /// The cron engine, once [`Kernel::start_scheduler`] ran.
    pub(crate) scheduler: std::sync::OnceLock<talon_scheduler::Engine>,
    /// Serializes cron edits so the engine sees them in commit order.
    pub(crate) cron_edit: tokio::sync::Mutex<()>,
    /// Event triggers, written through to the store.
    pub(crate) triggers: std::sync::RwLock<Vec<crate::triggers::Trigger>>,
    /// Wakes the task worker when a task is posted or retried.
    pub(crate) task_wake: Arc<tokio::sync::Notify>,
    /// Serializes edits of provider keys, URLs and custom models, so the
    /// secrets file is never rewritten from a stale read.
    pub(crate) provider_edit: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

impl Kernel {
    /// Opens the data directory: creates it, writes the default config on first
    /// start, loads the config, opens and migrates the database.
    pub fn boot(
        home: Home,
        config_path: Option<PathBuf>,
        overrides: Overrides,
    ) -> Result<Self, KernelError> {
        home.ensure().map_err(|e| {
            KernelError::Invalid(format!("cannot create {}: {e}", home.root().display()))
        })?;
        let config_path = config_path.unwrap_or_else(|| home.config_file());
        let config = Config::load_or_init(&config_path)?;
        let config = apply_overrides(config, &overrides)?;
        let store = Store::open(&home.database_file())?;
        let plugins = crate::plugins::runtime_for(&home, &config, &store)?;
        let llm = crate::llm::client(&config);
        crate::providers::restore(&llm, &store, &home.secrets_file())?;
        Ok(Self {
            home,
            config_path,
            overrides,
            config: RwLock::new(Arc::new(config)),
            store,
            events: crate::events::EventBus::new(),
            plugins,
            llm,
            live: crate::live::LiveSessions::default(),
            started: Instant::now(),
            scheduler: std::sync::OnceLock::new(),
            cron_edit: tokio::sync::Mutex::new(()),
            triggers: std::sync::RwLock::new(Vec::new()),
            task_wake: Arc::new(tokio::sync::Notify::new()),
            provider_edit: tokio::sync::Mutex::new(()),
        })
    }

    /// The data directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The configuration file in use.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace_config(&self, new: Config) -> ReloadPlan {
        let plan = {
            let mut guard = match self.config.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let plan = guard.diff(&new);
            *guard = Arc::new(new);
            plan
        };
        // Plugin ceilings apply to the next call; trust changes apply at the
        // next load or reload of each plugin.
        self.apply_plugin_ceilings();
        plan
    }

    pub(crate) fn registry(&self) -> &crate::plugins::Registry {
        &self.plugins
    }

    /// The model providers, their catalog and circuit breakers.
    pub fn llm(&self) -> &talon_llm::LlmClient {
        &self.llm
    }

    /// Turns in flight and their watchers.
    pub fn live(&self) -> &crate::live::LiveSessions {
        &self.live
    }

    /// The event bus.
    pub fn events(&self) -> &crate::events::EventBus {
        &self.events
    }

    /// Appends an event to the audit trail and publishes the entry.
    pub async fn audit(
        &self,
        event: crate::audit::AuditEvent,
    ) -> Result<crate::audit::AuditEntry, KernelError> {
        let store = self.store.clone();
        let entry = store::blocking(move || crate::audit::append(&store, event)).await?;
        self.events.publish(Event::Audit(entry.clone()));
        Ok(entry)
    }

    /// The newest `limit` audit entries (newest first) and the chain's length.
    pub async fn audit_recent(
        &self,
        limit: usize,
    ) -> Result<(Vec<crate::audit::AuditEntry>, u64), KernelError> {
        let store = self.store.clone();
        Ok(store::blocking(move || crate::audit::recent(&store, limit)).await?)
    }

    /// Walks and checks the whole audit chain.
    pub async fn audit_verify(&self) -> Result<crate::audit::Verification, KernelError> {
        let store = self.store.clone();
        Ok(store::blocking(move || crate::audit::verify(&store)).await?)
    }

    /// Re-reads the config file; an invalid file is refused and the old config kept.
    pub async fn reload_config(&self) -> Result<ReloadPlan, KernelError> {
        let path = self.config_path.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|e| KernelError::Invalid(e.to_string()))??;
        let new = apply_overrides(loaded, &self.overrides)?;
        let plan = self.replace_config(new);
        if !plan.changed.is_empty() {
            self.audit(crate::audit::AuditEvent::new(
                "config_reloaded",
                format!("changed: {}", plan.changed.join(", ")),
            ))
            .await?;
        }
        Ok(plan)
    }

    /// Sets one dotted key in the config file and applies it.
    pub async fn set_config(
        &self,
        key: String,
        value: serde_json::Value,
    ) -> Result<ReloadPlan, KernelError> {
        let path = self.config_path.clone();
        let audited_key = key.clone();
        let written = tokio::task::spawn_blocking(move || config::set_value(&path, &key, &value))
            .await
            .map_err(|e| KernelError::Invalid(e.to_string()))??;
        let new = apply_overrides(written, &self.overrides)?;
        let plan = self.replace_config(new);
        // The key is recorded, never the value: it may be a secret.
        self.audit(crate::audit::AuditEvent::new(
            "config_changed",
            format!("set {audited_key}"),
        ))
        .await?;
        Ok(plan)
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Seconds since boot.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Spawns an agent from manifest text.
    pub async fn spawn_agent(&self, manifest_toml: String) -> Result<AgentRecord, KernelError> {
        let manifest = AgentManifest::parse(&manifest_toml)?;
        let now = Utc::now();
        let record = AgentRecord {
            id: Uuid::new_v4(),
            manifest,
            manifest_toml,
            state: AgentState::Running,
            created_at: now,
            last_active: now,
            session_id: None,
            mode: agents::AgentMode::Normal,
            budget: agents::AgentBudget::default(),
        };
        let store = self.store.clone();
        let stored = record.clone();
        let entry = tokio::task::spawn_blocking(move || agents::insert(&store, &stored))
            .await
            .map_err(|e| KernelError::Store(store::StoreError::Task(e.to_string())))??;
        tracing::info!(agent_id = %record.id, name = record.name(), "agent spawned");
        self.events.publish(Event::Audit(entry));
        self.events.publish(Event::AgentSpawned {
            agent_id: record.id.to_string(),
            name: record.name().to_string(),
            at: record.created_at,
        });
        Ok(record)
    }

    /// Every agent.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>, KernelError> {
        let store = self.store.clone();
        Ok(store::blocking(move || agents::list(&store)).await?)
    }

    /// Number of agents.
    pub async fn agent_count(&self) -> Result<u64, KernelError> {
        let store = self.store.clone();
        Ok(store::blocking(move || agents::count(&store)).await?)
    }

    /// One agent, or `NotFound`.
    pub async fn agent(&self, id: Uuid) -> Result<AgentRecord, KernelError> {
        let store = self.store.clone();
        store::blocking(move || agents::get(&store, id))
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("agent {id} not found")))
    }

    /// Removes an agent and its memory; false when it did not exist.
    pub async fn kill_agent(&self, id: Uuid) -> Result<bool, KernelError> {
        let store = self.store.clone();
        let entry = store::blocking(move || agents::remove(&store, id)).await?;
        let existed = entry.is_some();
        if let Some(entry) = entry {
            tracing::info!(agent_id = %id, "agent killed");
            self.live.forget_agent(id);
            // The workspace goes with the agent, like its memory.
            let workspace = self.home.workspace(&id);
            if let Err(e) = tokio::fs::remove_dir_all(&workspace).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(agent_id = %id, error = %e, "could not remove the workspace");
            }
            self.events.publish(Event::Audit(entry));
            self.events.publish(Event::AgentTerminated {
                agent_id: id.to_string(),
                at: Utc::now(),
            });
        }
        Ok(existed)
    }

    /// Reads a memory value of an existing agent.
    pub async fn memory_get(
        &self,
        agent: Uuid,
        key: String,
    ) -> Result<serde_json::Value, KernelError> {
        self.agent(agent).await?;
        let store = self.store.clone();
        let k = key.clone();
        store::blocking(move || memory::get(&store, agent, &k))
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("key `{key}` not found")))
    }

    /// Writes a memory value of an existing agent; returns once it is on disk.
    pub async fn memory_set(
        &self,
        agent: Uuid,
        key: String,
        value: serde_json::Value,
    ) -> Result<(), KernelError> {
        validate_key(&key)?;
        let size = serde_json::to_vec(&value)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > memory::MAX_VALUE_BYTES {
            return Err(KernelError::Invalid(format!(
                "value is {size} bytes; the limit is {}",
                memory::MAX_VALUE_BYTES
            )));
        }
        self.agent(agent).await?;
        let store = self.store.clone();
        Ok(store::blocking(move || memory::set(&store, agent, &key, &value)).await?)
    }

    /// Deletes a memory value; `NotFound` when it did not exist.
    pub async fn memory_delete(&self, agent: Uuid, key: String) -> Result<(), KernelError> {
        self.agent(agent).await?;
        let store = self.store.clone();
        let k = key.clone();
        if store::blocking(move || memory::delete(&store, agent, &k)).await? {
            Ok(())
        } else {
            Err(KernelError::NotFound(format!("key `{key}` not found")))
        }
    }

    /// Every memory value of an existing agent.
    pub async fn memory_list(
        &self,
        agent: Uuid,
    ) -> Result<Vec<(String, serde_json::Value)>, KernelError> {
        self.agent(agent).await?;
        let store = self.store.clone();
        Ok(store::blocking(move || memory::list(&store, agent)).await?)
    }
}

impl Kernel {
    /// The files at the top of an agent's workspace.
    pub async fn list_files(&self, agent: Uuid) -> Result<Vec<workspace::FileInfo>, KernelError> {
        self.agent(agent).await?;
        let root = self.home.workspace(&agent);
        blocking_kernel(move || workspace::list(&root)).await
    }

    /// Reads a file of an agent's workspace.
    pub async fn read_file(&self, agent: Uuid, name: String) -> Result<Vec<u8>, KernelError> {
        self.agent(agent).await?;
        let root = self.home.workspace(&agent);
        blocking_kernel(move || workspace::read(&root, &name)).await
    }

    /// Writes a file of an agent's workspace; returns once it is on disk.
    pub async fn write_file(
        &self,
        agent: Uuid,
        name: String,
        bytes: Vec<u8>,
    ) -> Result<(), KernelError> {
        self.agent(agent).await?;
        let root = self.home.workspace(&agent);
        blocking_kernel(move || workspace::write(&root, &name, &bytes)).await
    }

    /// Deletes a file of an agent's workspace.
    pub async fn delete_file(&self, agent: Uuid, name: String) -> Result<(), KernelError> {
        self.agent(agent).await?;
        let root = self.home.workspace(&agent);
        blocking_kernel(move || workspace::delete(&root, &name)).await
    }

    /// Stores an attachment uploaded for an agent.
    pub async fn upload(
        &self,
        agent: Uuid,
        filename: String,
        content_type: String,
        bytes: Vec<u8>,
    ) -> Result<uploads::Upload, KernelError> {
        self.agent(agent).await?;
        workspace::validate_name(&filename)?;
        if bytes.len() > uploads::MAX_UPLOAD_BYTES {
            return Err(KernelError::Invalid(format!(
                "upload is {} bytes; the limit is {}",
                bytes.len(),
                uploads::MAX_UPLOAD_BYTES
            )));
        }
        let upload = uploads::Upload {
            id: Uuid::new_v4(),
            agent_id: agent,
            filename,
            content_type,
            size: bytes.len() as u64,
            created_at: Utc::now(),
        };
        let dir = self.home.uploads_dir();
        let store = self.store.clone();
        let record = upload.clone();
        blocking_kernel(move || {
            // Bytes first, then the record: a crash between the two leaves an
            // unreferenced file, never a record without its bytes.
            workspace::write(&dir, &record.id.to_string(), &bytes)?;
            uploads::insert(&store, &record)?;
            Ok(())
        })
        .await?;
        Ok(upload)
    }

    /// An upload and its bytes.
    pub async fn get_upload(&self, id: Uuid) -> Result<(uploads::Upload, Vec<u8>), KernelError> {
        let store = self.store.clone();
        let dir = self.home.uploads_dir();
        blocking_kernel(move || {
            let upload = uploads::get(&store, id)?
                .ok_or_else(|| KernelError::NotFound(format!("upload {id} not found")))?;
            let bytes = workspace::read(&dir, &id.to_string())?;
            Ok((upload, bytes))
        })
        .await
    }

    /// Turns uploads referenced by a message into content blocks. Each must
    /// have been uploaded to this agent; files the model cannot read are skipped,
    /// and a PDF that cannot be read becomes a note saying so.
    pub async fn attachment_parts(
        &self,
        agent: Uuid,
        file_ids: Vec<Uuid>,
    ) -> Result<Vec<talon_llm::ContentPart>, KernelError> {
        let mut parts = Vec::new();
        for id in file_ids {
            let (upload, bytes) = self.get_upload(id).await?;
            if upload.agent_id != agent {
                return Err(KernelError::Forbidden(format!(
                    "upload {id} belongs to another agent"
                )));
            }
            // PDF extraction and base64 encoding are CPU work on untrusted
            // bytes: kept off the async runtime's worker threads.
            let part =
                blocking_kernel(move || Ok(uploads::attachment_part(&upload, &bytes))).await?;
            parts.extend(part);
        }
        Ok(parts)
    }

    /// Starts or stops an agent.
    pub async fn set_agent_state(
        &self,
        id: Uuid,
        state: AgentState,
    ) -> Result<AgentRecord, KernelError> {
        let store = self.store.clone();
        store::blocking(move || agents::set_state(&store, id, state))
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("agent {id} not found")))
    }

    /// Spawns a copy of an agent under a new name, with its workspace files.
    pub async fn clone_agent(
        &self,
        id: Uuid,
        new_name: String,
        include_skills: bool,
        include_tools: bool,
    ) -> Result<AgentRecord, KernelError> {
        let source = self.agent(id).await?;
        let mut manifest: toml::Table = toml::from_str(&source.manifest_toml)
            .map_err(|e| KernelError::Invalid(format!("stored manifest unreadable: {e}")))?;
        manifest.insert("name".into(), toml::Value::String(new_name));
        if !include_skills {
            manifest.remove("skills");
        }
        if !include_tools && let Some(toml::Value::Table(caps)) = manifest.get_mut("capabilities") {
            caps.remove("tools");
        }
        let text = toml::to_string(&manifest).map_err(|e| KernelError::Invalid(e.to_string()))?;
        let clone = self.spawn_agent(text).await?;
        let (from, to) = (self.home.workspace(&id), self.home.workspace(&clone.id));
        blocking_kernel(move || workspace::copy_all(&from, &to)).await?;
        Ok(clone)
    }

    /// Writes many memory values at once, optionally replacing all existing ones;
    /// one transaction, so either all land or none.
    pub async fn memory_import(
        &self,
        agent: Uuid,
        values: Vec<(String, serde_json::Value)>,
        clear_existing: bool,
    ) -> Result<usize, KernelError> {
        for (key, value) in &values {
            validate_key(key)?;
            let size = serde_json::to_vec(value)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > memory::MAX_VALUE_BYTES {
                return Err(KernelError::Invalid(format!(
                    "value of `{key}` is larger than {} bytes",
                    memory::MAX_VALUE_BYTES
                )));
            }
        }
        self.agent(agent).await?;
        let store = self.store.clone();
        let count = values.len();
        store::blocking(move || memory::import(&store, agent, &values, clear_existing)).await?;
        Ok(count)
    }
}

/// Runs blocking kernel work (files, store) off the async worker threads.
pub(crate) async fn blocking_kernel<T, F>(f: F) -> Result<T, KernelError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, KernelError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| KernelError::Store(store::StoreError::Task(e.to_string())))?
}

fn validate_key(key: &str) -> Result<(), KernelError> {
    if key.is_empty() || key.len() > memory::MAX_KEY_BYTES {
        return Err(KernelError::Invalid(format!(
            "key must be 1-{} bytes",
            memory::MAX_KEY_BYTES
        )));
    }
    if key.chars().any(|c| c.is_control()) {
        return Err(KernelError::Invalid(
            "key must not contain control characters".into(),
        ));
    }
    Ok(())
}

fn apply_overrides(mut config: Config, overrides: &Overrides) -> Result<Config, KernelError> {
    if let Some(listen) = &overrides.api_listen {
        config.api_listen = listen.clone();
    }
    if overrides.allow_remote_without_key {
        config.allow_remote_without_key = true;
    }
    config.validate()?;
    Ok(config)
}
