//! Agents: their TOML manifests and the persistent registry.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::KernelError;
use crate::audit::{AuditEntry, AuditEvent};
use crate::store::{self, AGENT_NAMES, AGENTS, Store, StoreError};

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// An agent manifest (`agent.toml`), in the reference's format.
///
/// Unknown keys are accepted and ignored so manifests written for other
/// runtimes of the same API still load; known keys are type-checked, and a
/// mistake is reported with its line and key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentManifest {
    /// Unique, human-readable name.
    pub name: String,
    /// The manifest's own version.
    pub version: String,
    /// What the agent is for.
    pub description: String,
    /// Who wrote it.
    pub author: String,
    /// The agent module, for example `builtin:chat`.
    pub module: String,
    /// System prompt (also accepted inside `[model]`).
    pub system_prompt: Option<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Skills the agent uses.
    pub skills: Vec<String>,
    /// MCP servers the agent may use.
    pub mcp_servers: Vec<String>,
    /// Which model answers.
    pub model: ModelSpec,
    /// What the agent may do.
    pub capabilities: Capabilities,
    /// How the agent presents itself.
    pub identity: Identity,
}

/// The `[identity]` section: how dashboards and channels show the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Identity {
    /// An emoji for the agent.
    pub emoji: Option<String>,
    /// URL of an avatar image.
    pub avatar_url: Option<String>,
    /// A display colour.
    pub color: Option<String>,
    /// A persona archetype.
    pub archetype: Option<String>,
    /// The tone it takes.
    pub vibe: Option<String>,
    /// How it greets.
    pub greeting_style: Option<String>,
}

/// The `[model]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSpec {
    /// Provider name (openai, anthropic, groq, ...).
    pub provider: String,
    /// Model id at that provider.
    pub model: String,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// Override of the provider's base URL.
    pub base_url: Option<String>,
    /// Upper bound on tokens generated per reply.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// System prompt, when given here rather than at the top level.
    pub system_prompt: Option<String>,
}

/// The `[capabilities]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// Tools the agent may call; nothing else is offered to it.
    pub tools: Vec<String>,
    /// Memory key patterns the agent may read.
    pub memory_read: Vec<String>,
    /// Memory key patterns the agent may write.
    pub memory_write: Vec<String>,
    /// Hosts the agent's tools may reach.
    pub network: Vec<String>,
}

impl AgentManifest {
    /// Parses a manifest, reporting the line and key of the first mistake.
    pub fn parse(text: &str) -> Result<Self, KernelError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(KernelError::Invalid(format!(
                "manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                text.len()
            )));
        }
        let manifest: AgentManifest = toml::from_str(text).map_err(|e| {
            KernelError::Invalid(format!("invalid manifest: {}", e.to_string().trim_end()))
        })?;
        if manifest.name.trim().is_empty() {
            return Err(KernelError::Invalid(
                "invalid manifest: missing field `name`".into(),
            ));
        }
        if manifest.name.len() > 128 || manifest.name.chars().any(|c| c.is_control()) {
            return Err(KernelError::Invalid(
                "invalid manifest: `name` must be 1-128 printable characters".into(),
            ));
        }
        Ok(manifest)
    }
}

/// Lifecycle state of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentState {
    /// Accepting messages.
    Running,
    /// Kept, but not accepting messages.
    Stopped,
}

/// How freely an agent may change at runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentMode {
    /// Model and skills may be changed.
    #[default]
    Normal,
    /// The model is pinned and the skill list frozen.
    Stable,
}

/// An agent's own spending limits in USD; 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentBudget {
    /// Most USD per UTC day.
    pub daily_limit_usd: f64,
    /// Most USD per UTC month.
    pub monthly_limit_usd: f64,
}

/// An agent as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Stable identifier.
    pub id: Uuid,
    /// The parsed manifest.
    pub manifest: AgentManifest,
    /// The manifest as the operator wrote it.
    pub manifest_toml: String,
    /// Lifecycle state.
    pub state: AgentState,
    /// When the agent was spawned.
    pub created_at: DateTime<Utc>,
    /// When the agent last did anything.
    pub last_active: DateTime<Utc>,
    /// The session messages go to unless a request names another.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// Normal or Stable.
    #[serde(default)]
    pub mode: AgentMode,
    /// The agent's own spending limits.
    #[serde(default)]
    pub budget: AgentBudget,
}

impl AgentRecord {
    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

const TABLE: &str = "agents.v1";

/// Stores a new agent (the name must be unused) with its audit entry.
pub(crate) fn insert(store: &Store, record: &AgentRecord) -> Result<AuditEntry, KernelError> {
    let tx = store.db().begin_write().map_err(StoreError::from)?;
    {
        let mut names = tx.open_table(AGENT_NAMES).map_err(StoreError::from)?;
        if let Some(existing) = names.get(record.name()).map_err(StoreError::from)? {
            return Err(KernelError::Conflict(format!(
                "agent `{}` already exists (id {})",
                record.name(),
                existing.value()
            )));
        }
        let id = record.id.to_string();
        names
            .insert(record.name(), id.as_str())
            .map_err(StoreError::from)?;
        let bytes = store::encode(TABLE, record)?;
        tx.open_table(AGENTS)
            .map_err(StoreError::from)?
            .insert(id.as_str(), bytes.as_slice())
            .map_err(StoreError::from)?;
    }
    let model = &record.manifest.model;
    let entry = crate::audit::append_in(
        &tx,
        AuditEvent::new(
            "agent_spawned",
            format!(
                "agent '{}' spawned with model {}/{}",
                record.name(),
                model.provider,
                model.model
            ),
        )
        .agent(record.id),
    )?;
    tx.commit().map_err(StoreError::from)?;
    Ok(entry)
}

/// The id of the agent with this name.
pub(crate) fn id_by_name(store: &Store, name: &str) -> Result<Option<Uuid>, StoreError> {
    let tx = store.db().begin_read()?;
    let names = tx.open_table(AGENT_NAMES)?;
    let id = names.get(name)?.map(|v| v.value().parse::<Uuid>());
    Ok(id.and_then(Result::ok))
}

/// Every agent, in creation order.
pub(crate) fn list(store: &Store) -> Result<Vec<AgentRecord>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(AGENTS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        out.push(store::decode::<AgentRecord>(TABLE, value.value())?);
    }
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// One agent, if it exists.
pub(crate) fn get(store: &Store, id: Uuid) -> Result<Option<AgentRecord>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(AGENTS)?;
    let value = table.get(id.to_string().as_str())?;
    value.map(|v| store::decode(TABLE, v.value())).transpose()
}

/// Removes an agent and its memory; the audit entry when it existed.
pub(crate) fn remove(store: &Store, id: Uuid) -> Result<Option<AuditEntry>, StoreError> {
    let tx = store.db().begin_write()?;
    let existed = {
        let mut table = tx.open_table(AGENTS)?;
        let removed = table.remove(id.to_string().as_str())?;
        let existed = match removed {
            Some(value) => {
                let record: AgentRecord = store::decode(TABLE, value.value())?;
                drop(value);
                tx.open_table(AGENT_NAMES)?.remove(record.name())?;
                crate::sessions::remove_agent_in(&tx, id)?;
                let event =
                    AuditEvent::new("agent_killed", format!("agent '{}' killed", record.name()));
                Some(crate::audit::append_in(&tx, event.agent(id))?)
            }
            None => None,
        };
        crate::memory::remove_all_in(&tx, id)?;
        existed
    };
    tx.commit()?;
    Ok(existed)
}

/// Number of stored agents.
pub(crate) fn count(store: &Store) -> Result<u64, StoreError> {
    let tx = store.db().begin_read()?;
    Ok(tx.open_table(AGENTS)?.len()?)
}

/// Changes an agent's lifecycle state; `None` when it does not exist.
pub(crate) fn set_state(
    store: &Store,
    id: Uuid,
    state: AgentState,
) -> Result<Option<AgentRecord>, StoreError> {
    let tx = store.db().begin_write()?;
    let updated = {
        let mut table = tx.open_table(AGENTS)?;
        let key = id.to_string();
        let current = table.get(key.as_str())?.map(|v| v.value().to_vec());
        match current {
            None => None,
            Some(bytes) => {
                let mut record: AgentRecord = store::decode(TABLE, &bytes)?;
                if record.state != state {
                    record.state = state;
                    record.last_active = chrono::Utc::now();
                    let encoded = store::encode(TABLE, &record)?;
                    table.insert(key.as_str(), encoded.as_slice())?;
                    let what = if state == AgentState::Running {
                        "started"
                    } else {
                        "stopped"
                    };
                    crate::audit::append_in(
                        &tx,
                        AuditEvent::new(
                            &format!("agent_{what}"),
                            format!("agent '{}' {what}", record.name()),
                        )
                        .agent(id),
                    )?;
                }
                Some(record)
            }
        }
    };
    tx.commit()?;
    Ok(updated)
}

/// Applies `change` to a stored agent in one transaction; `change` returns the
/// audit event to record with it, if any. `NotFound` when the agent does not exist.
pub(crate) fn update<F>(store: &Store, id: Uuid, change: F) -> Result<AgentRecord, KernelError>
where
    F: FnOnce(&mut AgentRecord) -> Result<Option<AuditEvent>, KernelError>,
{
    let tx = store.db().begin_write().map_err(StoreError::from)?;
    let record = {
        let mut table = tx.open_table(AGENTS).map_err(StoreError::from)?;
        let key = id.to_string();
        let bytes = table
            .get(key.as_str())
            .map_err(StoreError::from)?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| KernelError::NotFound(format!("agent {id} not found")))?;
        let mut record: AgentRecord = store::decode(TABLE, &bytes)?;
        let old_name = record.name().to_string();
        let event = change(&mut record)?;
        if record.name() != old_name {
            let mut names = tx.open_table(AGENT_NAMES).map_err(StoreError::from)?;
            if names
                .get(record.name())
                .map_err(StoreError::from)?
                .is_some()
            {
                return Err(KernelError::Conflict(format!(
                    "agent `{}` already exists",
                    record.name()
                )));
            }
            names.remove(old_name.as_str()).map_err(StoreError::from)?;
            names
                .insert(record.name(), key.as_str())
                .map_err(StoreError::from)?;
        }
        let encoded = store::encode(TABLE, &record)?;
        table
            .insert(key.as_str(), encoded.as_slice())
            .map_err(StoreError::from)?;
        if let Some(event) = event {
            crate::audit::append_in(&tx, event.agent(id))?;
        }
        record
    };
    tx.commit().map_err(StoreError::from)?;
    Ok(record)
}

/// Sets dotted `key`s of a manifest's TOML text (`null` removes a key),
/// keeping the operator's formatting, and parses the result.
fn edit_manifest_text(
    text: &str,
    edits: &[(&str, serde_json::Value)],
) -> Result<(String, AgentManifest), KernelError> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| KernelError::Invalid(format!("stored manifest unreadable: {e}")))?;
    for (key, value) in edits {
        let parts: Vec<&str> = key.split('.').collect();
        let (last, parents) = parts
            .split_last()
            .ok_or_else(|| KernelError::Invalid("empty manifest key".into()))?;
        let mut table = doc.as_table_mut();
        for part in parents {
            if !table.contains_key(part) {
                table.insert(part, toml_edit::Item::Table(toml_edit::Table::new()));
            }
            table = table
                .get_mut(part)
                .and_then(toml_edit::Item::as_table_mut)
                .ok_or_else(|| {
                    KernelError::Invalid(format!("manifest key `{part}` is not a table"))
                })?;
        }
        match crate::config::json_to_toml(value) {
            Some(v) => {
                table.insert(last, toml_edit::Item::Value(v));
            }
            None => {
                table.remove(last);
            }
        }
    }
    let text = doc.to_string();
    let manifest = AgentManifest::parse(&text)?;
    Ok((text, manifest))
}

impl crate::Kernel {
    /// Changes manifest keys of an agent (`null` removes one), with an audit entry.
    pub async fn edit_agent_manifest(
        &self,
        id: Uuid,
        edits: Vec<(String, serde_json::Value)>,
    ) -> Result<AgentRecord, KernelError> {
        let store = self.store().clone();
        crate::kernel::blocking_kernel(move || {
            update(&store, id, |record| {
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
                let (text, manifest) = edit_manifest_text(&record.manifest_toml, &pairs)?;
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
    pub async fn set_agent_mode(
        &self,
        id: Uuid,
        mode: AgentMode,
    ) -> Result<AgentRecord, KernelError> {
        let store = self.store().clone();
        crate::kernel::blocking_kernel(move || {
            update(&store, id, |record| {
                record.mode = mode;
                Ok(Some(AuditEvent::new(
                    "agent_mode_changed",
                    format!("agent '{}' mode {mode:?}", record.name()),
                )))
            })
        })
        .await
    }

    /// Sets an agent's own spending limits.
    pub async fn set_agent_budget(
        &self,
        id: Uuid,
        budget: AgentBudget,
    ) -> Result<AgentRecord, KernelError> {
        if budget.daily_limit_usd < 0.0 || budget.monthly_limit_usd < 0.0 {
            return Err(KernelError::Invalid(
                "budget limits must not be negative".into(),
            ));
        }
        let store = self.store().clone();
        crate::kernel::blocking_kernel(move || {
            update(&store, id, |record| {
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
    pub async fn agent_id_by_name(&self, name: String) -> Result<Option<Uuid>, KernelError> {
        let store = self.store().clone();
        Ok(store::blocking(move || id_by_name(&store, &name)).await?)
    }
}
