//! Agents: their records and manifests, the templates they are spawned
//! from, their workspaces, uploads and key-value memory.
//!
//! Owns the `agents.v1`, `agent_names.v1`, `kv.v1` and `uploads.v1` tables
//! and the `workspaces/` and `uploads/` folders of the data directory.
//! Depends only on the foundation ([`crate::shared`]); domains above it
//! (conversations, automation) use [`Agents`] to look agents up, and join
//! an agent's removal through a [`RemoveHook`].

pub mod manifest;
pub mod memory;
pub mod records;
pub mod templates;
pub mod uploads;
pub mod validate;
pub mod workspace;

use std::sync::{Arc, OnceLock};

use uuid::Uuid;

use crate::KernelError;
use crate::events::Event;
use crate::shared::{Shared, blocking_kernel};
use crate::store;
use crate::store::audit::AuditEvent;

pub use manifest::{AgentManifest, BUILTIN_TOOLS, Capabilities, Identity, ModelSpec};
pub(crate) use records::RemoveHook;
pub use records::{AgentBudget, AgentMode, AgentRecord, AgentState, READ_ONLY_TOOLS, ToolAccess};
pub use validate::{Choices, Issue};

/// Where the door's checks learn what is installed: the domains above
/// (plugins, providers) know, and the kernel tells this domain at boot.
pub type ChoicesSource = Box<dyn Fn() -> Choices + Send + Sync>;

/// The agents domain.
pub struct Agents {
    shared: Arc<Shared>,
    /// What other domains remove with an agent, in its transaction.
    remove_hooks: Vec<RemoveHook>,
    /// What manifests may name; set once at boot.
    choices: OnceLock<ChoicesSource>,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents").finish_non_exhaustive()
    }
}

impl Agents {
    /// The domain over `shared`; `remove_hooks` run inside every agent's removal.
    pub(crate) fn new(shared: Arc<Shared>, remove_hooks: Vec<RemoveHook>) -> Self {
        Self {
            shared,
            remove_hooks,
            choices: OnceLock::new(),
        }
    }

    /// Tells the door's checks where to learn what is installed; the first
    /// source given stays.
    pub(crate) fn set_choices(&self, source: ChoicesSource) {
        if self.choices.set(source).is_err() {
            tracing::warn!("manifest choices were already set");
        }
    }

    /// What manifests may name right now (only the built-in tools before
    /// the kernel has told this domain).
    pub fn choices(&self) -> Choices {
        self.choices
            .get()
            .map(|source| source())
            .unwrap_or_default()
    }

    /// Parses manifest text and runs the door's checks: the manifest, or a
    /// 400 naming each mistake's line, key and valid choices.
    pub fn check(&self, text: &str) -> Result<AgentManifest, KernelError> {
        let manifest = AgentManifest::parse(text)?;
        let issues = validate::issues(text, &manifest, &self.choices());
        if issues.is_empty() {
            Ok(manifest)
        } else {
            Err(validate::refuse(&issues))
        }
    }

    /// Spawns an agent from manifest text, once it passed [`Agents::check`].
    pub async fn spawn(&self, manifest_toml: String) -> Result<AgentRecord, KernelError> {
        let manifest = self.check(&manifest_toml)?;
        let now = self.shared.now();
        let record = AgentRecord {
            id: Uuid::new_v4(),
            manifest,
            manifest_toml,
            state: AgentState::Running,
            created_at: now,
            last_active: now,
            session_id: None,
            mode: AgentMode::Normal,
            tool_access: ToolAccess::Full,
            budget: AgentBudget::default(),
        };
        let store = self.shared.store().clone();
        let stored = record.clone();
        let entry = tokio::task::spawn_blocking(move || records::insert(&store, &stored))
            .await
            .map_err(|e| KernelError::Store(store::StoreError::Task(e.to_string())))??;
        tracing::info!(agent_id = %record.id, name = record.name(), "agent spawned");
        // The workspace exists from the start, so its owner can put files in
        // it before the first tool call (tools would create it lazily).
        let root = self.shared.home().workspace(&record.id);
        if let Err(e) = std::fs::create_dir_all(&root) {
            tracing::warn!(agent_id = %record.id, error = %e, "cannot create the workspace yet");
        }
        self.shared.events().publish(Event::Audit(entry));
        self.shared.events().publish(Event::AgentSpawned {
            agent_id: record.id.to_string(),
            name: record.name().to_string(),
            at: record.created_at,
        });
        Ok(record)
    }

    /// Every agent.
    pub async fn list(&self) -> Result<Vec<AgentRecord>, KernelError> {
        let store = self.shared.store().clone();
        Ok(store::blocking(move || records::list(&store)).await?)
    }

    /// Number of agents.
    pub async fn count(&self) -> Result<u64, KernelError> {
        let store = self.shared.store().clone();
        Ok(store::blocking(move || records::count(&store)).await?)
    }

    /// One agent, or `NotFound`.
    pub async fn get(&self, id: Uuid) -> Result<AgentRecord, KernelError> {
        let store = self.shared.store().clone();
        store::blocking(move || records::get(&store, id))
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("agent {id} not found")))
    }

    /// Removes an agent with its memory, workspace and what the remove hooks
    /// cover; false when it did not exist.
    pub(crate) async fn remove(&self, id: Uuid) -> Result<bool, KernelError> {
        let store = self.shared.store().clone();
        let hooks = self.remove_hooks.clone();
        let entry = store::blocking(move || records::remove(&store, id, &hooks)).await?;
        let Some(entry) = entry else {
            return Ok(false);
        };
        tracing::info!(agent_id = %id, "agent killed");
        // The workspace goes with the agent, like its memory.
        let workspace = self.shared.home().workspace(&id);
        if let Err(e) = tokio::fs::remove_dir_all(&workspace).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(agent_id = %id, error = %e, "could not remove the workspace");
        }
        self.shared.events().publish(Event::Audit(entry));
        self.shared.events().publish(Event::AgentTerminated {
            agent_id: id.to_string(),
            at: self.shared.now(),
        });
        Ok(true)
    }

    /// Reads a memory value of an existing agent.
    pub async fn memory_get(
        &self,
        agent: Uuid,
        key: String,
    ) -> Result<serde_json::Value, KernelError> {
        self.get(agent).await?;
        let store = self.shared.store().clone();
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
        self.get(agent).await?;
        let store = self.shared.store().clone();
        Ok(store::blocking(move || memory::set(&store, agent, &key, &value)).await?)
    }

    /// Deletes a memory value; `NotFound` when it did not exist.
    pub async fn memory_delete(&self, agent: Uuid, key: String) -> Result<(), KernelError> {
        self.get(agent).await?;
        let store = self.shared.store().clone();
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
        self.get(agent).await?;
        let store = self.shared.store().clone();
        Ok(store::blocking(move || memory::list(&store, agent)).await?)
    }

    /// The files at the top of an agent's workspace.
    pub async fn list_files(&self, agent: Uuid) -> Result<Vec<workspace::FileInfo>, KernelError> {
        self.get(agent).await?;
        let root = self.shared.home().workspace(&agent);
        blocking_kernel(move || workspace::list(&root)).await
    }

    /// Reads a file of an agent's workspace.
    pub async fn read_file(&self, agent: Uuid, name: String) -> Result<Vec<u8>, KernelError> {
        self.get(agent).await?;
        let root = self.shared.home().workspace(&agent);
        blocking_kernel(move || workspace::read(&root, &name)).await
    }

    /// Writes a file of an agent's workspace, within the workspace quota
    /// (`[plugins] max_workspace_mib_per_agent`); returns once it is on disk.
    pub async fn write_file(
        &self,
        agent: Uuid,
        name: String,
        bytes: Vec<u8>,
    ) -> Result<(), KernelError> {
        self.get(agent).await?;
        let root = self.shared.home().workspace(&agent);
        let quota = self
            .shared
            .config()
            .plugins
            .max_workspace_mib_per_agent
            .saturating_mul(1 << 20);
        blocking_kernel(move || {
            workspace::validate_name(&name)?;
            workspace::check_quota(&root, &name, bytes.len(), quota)?;
            workspace::write(&root, &name, &bytes)
        })
        .await
    }

    /// Deletes a file of an agent's workspace.
    pub async fn delete_file(&self, agent: Uuid, name: String) -> Result<(), KernelError> {
        self.get(agent).await?;
        let root = self.shared.home().workspace(&agent);
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
        self.get(agent).await?;
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
            created_at: self.shared.now(),
        };
        let dir = self.shared.home().uploads_dir();
        let store = self.shared.store().clone();
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
        let store = self.shared.store().clone();
        let dir = self.shared.home().uploads_dir();
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
    pub async fn set_state(&self, id: Uuid, state: AgentState) -> Result<AgentRecord, KernelError> {
        let store = self.shared.store().clone();
        store::blocking(move || records::set_state(&store, id, state))
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
        let source = self.get(id).await?;
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
        // All or nothing: the files are copied aside first, the clone is
        // spawned only when they all copied, and they become its workspace
        // in one rename.
        let staging = self
            .shared
            .home()
            .workspaces_dir()
            .join(format!(".clone-{}", Uuid::new_v4()));
        let (from, staged) = (self.shared.home().workspace(&id), staging.clone());
        let discard = |dir: std::path::PathBuf| async move {
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a clone's staging copy");
            }
        };
        if let Err(e) = blocking_kernel(move || workspace::copy_all(&from, &staged)).await {
            discard(staging).await;
            return Err(e);
        }
        let clone = match self.spawn(text).await {
            Ok(clone) => clone,
            Err(e) => {
                discard(staging).await;
                return Err(e);
            }
        };
        if tokio::fs::try_exists(&staging).await.unwrap_or(false)
            && let Err(e) =
                tokio::fs::rename(&staging, self.shared.home().workspace(&clone.id)).await
        {
            discard(staging).await;
            self.remove(clone.id).await?;
            return Err(KernelError::Store(crate::store::StoreError::Io(e)));
        }
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
        self.get(agent).await?;
        let store = self.shared.store().clone();
        let count = values.len();
        store::blocking(move || memory::import(&store, agent, &values, clear_existing)).await?;
        Ok(count)
    }

    /// Changes manifest keys of an agent (`null` removes one), with an audit
    /// entry. The edit may not bring a mistake the door's checks would
    /// refuse; mistakes the stored manifest already had (a tool uninstalled
    /// since, a key accepted before the checks existed) do not block it.
    pub async fn edit_manifest(
        &self,
        id: Uuid,
        edits: Vec<(String, serde_json::Value)>,
    ) -> Result<AgentRecord, KernelError> {
        let store = self.shared.store().clone();
        let choices = self.choices();
        blocking_kernel(move || {
            records::update(&store, id, |record| {
                let pairs: Vec<(&str, serde_json::Value)> =
                    edits.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                if record.mode == AgentMode::Stable
                    && pairs
                        .iter()
                        .any(|(k, _)| k.starts_with("model") || *k == "skills")
                {
                    return Err(KernelError::Conflict(format!(
                        "agent {} is in Stable mode: its model and skills are frozen; set mode Normal first",
                        record.name()
                    )));
                }
                let (text, manifest) = records::edit_manifest_text(&record.manifest_toml, &pairs)?;
                let before = validate::issues(&record.manifest_toml, &record.manifest, &choices);
                let brought: Vec<Issue> = validate::issues(&text, &manifest, &choices)
                    .into_iter()
                    .filter(|new| {
                        !before
                            .iter()
                            .any(|old| old.key == new.key && old.message == new.message)
                    })
                    .collect();
                if !brought.is_empty() {
                    return Err(validate::refuse(&brought));
                }
                record.manifest_toml = text;
                record.manifest = manifest;
                let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
                Ok(Some(AuditEvent::new(
                    "agent_updated",
                    format!("agent '{}' changed: {}", record.name(), keys.join(", ")),
                )))
            })
        })
        .await
    }

    /// Sets an agent's mode.
    pub async fn set_mode(&self, id: Uuid, mode: AgentMode) -> Result<AgentRecord, KernelError> {
        let store = self.shared.store().clone();
        blocking_kernel(move || {
            records::update(&store, id, |record| {
                record.mode = mode;
                Ok(Some(AuditEvent::new(
                    "agent_mode_changed",
                    format!("agent '{}' mode {mode:?}", record.name()),
                )))
            })
        })
        .await
    }

    /// Sets which of its tools an agent may call (observe, assist, full);
    /// the next turn offers only those.
    pub async fn set_tool_access(
        &self,
        id: Uuid,
        access: ToolAccess,
    ) -> Result<AgentRecord, KernelError> {
        let store = self.shared.store().clone();
        blocking_kernel(move || {
            records::update(&store, id, |record| {
                record.tool_access = access;
                Ok(Some(AuditEvent::new(
                    "agent_mode_changed",
                    format!("agent '{}' tool access {access:?}", record.name()),
                )))
            })
        })
        .await
    }

    /// Sets an agent's own spending limits.
    pub async fn set_budget(
        &self,
        id: Uuid,
        budget: AgentBudget,
    ) -> Result<AgentRecord, KernelError> {
        if budget.daily_limit_usd < 0.0 || budget.monthly_limit_usd < 0.0 {
            return Err(KernelError::Invalid(
                "budget limits must not be negative".into(),
            ));
        }
        let store = self.shared.store().clone();
        blocking_kernel(move || {
            records::update(&store, id, |record| {
                record.budget = budget;
                Ok(Some(AuditEvent::new(
                    "agent_budget_changed",
                    format!(
                        "agent '{}' budget: daily ${}, monthly ${}",
                        record.name(),
                        budget.daily_limit_usd,
                        budget.monthly_limit_usd
                    ),
                )))
            })
        })
        .await
    }

    /// The id of the agent with this name.
    pub async fn id_by_name(&self, name: String) -> Result<Option<Uuid>, KernelError> {
        let store = self.shared.store().clone();
        Ok(store::blocking(move || records::id_by_name(&store, &name)).await?)
    }
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
