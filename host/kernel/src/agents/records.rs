//! Agent records and their store functions (`agents.v1`, `agent_names.v1`).

use chrono::{DateTime, Utc};
use redb::{
    ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::manifest::AgentManifest;
use crate::KernelError;
use crate::store::audit::{self, AuditEntry, AuditEvent};
use crate::store::tables::{AGENT_NAMES, AGENTS};
use crate::store::{self, Store, StoreError};

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

/// Which of its tools an agent may call: LibreFang's operational modes, set
/// with `PUT /api/agents/{id}/mode` (`observe`, `assist`, `full`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolAccess {
    /// No tools at all: the agent only answers.
    Observe,
    /// Only the tools that read: [`READ_ONLY_TOOLS`].
    Assist,
    /// Every tool its manifest lists.
    #[default]
    Full,
}

/// The tools `assist` mode keeps, by name (LibreFang's list): they read files,
/// memory, the web or the agent list and change nothing.
pub const READ_ONLY_TOOLS: &[&str] = &[
    "file_read",
    "file_list",
    "memory_list",
    "memory_recall",
    "web_fetch",
    "web_search",
    "agent_list",
];

impl ToolAccess {
    /// Whether a tool the manifest lists may be offered and called.
    pub fn allows(self, tool: &str) -> bool {
        match self {
            Self::Observe => false,
            Self::Assist => READ_ONLY_TOOLS.contains(&tool),
            Self::Full => true,
        }
    }
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
    /// Which of its tools it may call (LibreFang's observe/assist/full).
    #[serde(default)]
    pub tool_access: ToolAccess,
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
    let tx = store.db()?.begin_write()?;
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
    let entry = audit::append_in(
        &tx,
        store.now(),
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
    let tx = store.db()?.begin_read()?;
    let names = tx.open_table(AGENT_NAMES)?;
    let id = names.get(name)?.map(|v| v.value().parse::<Uuid>());
    Ok(id.and_then(Result::ok))
}

/// Every agent, in creation order.
pub(crate) fn list(store: &Store) -> Result<Vec<AgentRecord>, StoreError> {
    let tx = store.db()?.begin_read()?;
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
/// One agent.
pub(crate) fn get(store: &Store, id: Uuid) -> Result<Option<AgentRecord>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(AGENTS)?;
    let value = table.get(id.to_string().as_str())?;
    value.map(|v| store::decode(TABLE, v.value())).transpose()
}

/// One agent, read inside a caller's read transaction.
pub(crate) fn get_read(tx: &ReadTransaction, id: Uuid) -> Result<Option<AgentRecord>, StoreError> {
    let table = tx.open_table(AGENTS)?;
    let value = table.get(id.to_string().as_str())?;
    value.map(|v| store::decode(TABLE, v.value())).transpose()
}

/// One agent, read inside a caller's write transaction; `NotFound` when absent.
pub(crate) fn get_in(tx: &WriteTransaction, id: Uuid) -> Result<AgentRecord, KernelError> {
    let table = tx.open_table(AGENTS).map_err(StoreError::from)?;
    let value = table
        .get(id.to_string().as_str())
        .map_err(StoreError::from)?
        .ok_or_else(|| KernelError::NotFound(format!("agent {id} not found")))?;
    Ok(store::decode(TABLE, value.value())?)
}

/// Writes an agent back inside a caller's write transaction (its name unchanged).
pub(crate) fn put_in(tx: &WriteTransaction, agent: &AgentRecord) -> Result<(), StoreError> {
    let bytes = store::encode(TABLE, agent)?;
    tx.open_table(AGENTS)?
        .insert(agent.id.to_string().as_str(), bytes.as_slice())?;
    Ok(())
}

/// Removes what another domain keeps about an agent, inside the transaction
/// that removes the agent (its conversations, for example).
pub(crate) type RemoveHook = fn(&WriteTransaction, Uuid) -> Result<(), StoreError>;

/// Removes an agent, its memory and, through `hooks`, what other domains keep
/// about it, in one transaction; the audit entry when it existed.
pub(crate) fn remove(
    store: &Store,
    id: Uuid,
    hooks: &[RemoveHook],
) -> Result<Option<AuditEntry>, StoreError> {
    let tx = store.db()?.begin_write()?;
    let existed = {
        let mut table = tx.open_table(AGENTS)?;
        let removed = table.remove(id.to_string().as_str())?;
        let existed = match removed {
            Some(value) => {
                let record: AgentRecord = store::decode(TABLE, value.value())?;
                drop(value);
                tx.open_table(AGENT_NAMES)?.remove(record.name())?;
                for hook in hooks {
                    hook(&tx, id)?;
                }
                let event =
                    AuditEvent::new("agent_killed", format!("agent '{}' killed", record.name()));
                Some(audit::append_in(&tx, store.now(), event.agent(id))?)
            }
            None => None,
        };
        super::memory::remove_all_in(&tx, id)?;
        existed
    };
    tx.commit()?;
    Ok(existed)
}

/// Number of stored agents.
pub(crate) fn count(store: &Store) -> Result<u64, StoreError> {
    let tx = store.db()?.begin_read()?;
    Ok(tx.open_table(AGENTS)?.len()?)
}

/// Changes an agent's lifecycle state; `None` when it does not exist.
pub(crate) fn set_state(
    store: &Store,
    id: Uuid,
    state: AgentState,
) -> Result<Option<AgentRecord>, StoreError> {
    let tx = store.db()?.begin_write()?;
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
                    record.last_active = store.now();
                    let encoded = store::encode(TABLE, &record)?;
                    table.insert(key.as_str(), encoded.as_slice())?;
                    let what = if state == AgentState::Running {
                        "started"
                    } else {
                        "stopped"
                    };
                    audit::append_in(
                        &tx,
                        store.now(),
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
    let tx = store.db()?.begin_write()?;
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
            audit::append_in(&tx, store.now(), event.agent(id))?;
        }
        record
    };
    tx.commit().map_err(StoreError::from)?;
    Ok(record)
}

/// Sets dotted `key`s of a manifest's TOML text (`null` removes a key),
/// keeping the operator's formatting, and parses the result.
pub(super) fn edit_manifest_text(
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
