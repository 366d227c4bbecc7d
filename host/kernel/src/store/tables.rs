//! Every table of the database, with the format of its values.
//!
//! Table names carry their format version (`agents.v1`): a change of format
//! is a new table and a migration (see [`super::migrations`]). Each table
//! belongs to one domain, and only that domain's store functions open it;
//! the owner heads each group below. Values are JSON unless said otherwise.

use redb::{TableDefinition, WriteTransaction};
use uuid::Uuid;

use super::StoreError;

/// The store's own bookkeeping: the schema version and the journal's epoch
/// and sequence number.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

// --- The audit chain (store::audit) ---

/// The audit hash chain as it was stored up to schema 5: JSON entries.
pub(crate) const AUDIT_V1: TableDefinition<u64, &[u8]> = TableDefinition::new("audit.v1");
/// The audit hash chain by sequence number: each entry's hash, then the bytes
/// it covers (see [`super::audit`]).
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit.v2");
/// Checkpoints of the audit chain by the sequence number of the last entry
/// before the cut: [`super::audit_checkpoint::Checkpoint`].
pub(crate) const AUDIT_CHECKPOINTS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("audit_checkpoints.v1");

// --- Agents (agents) ---

/// Agents by id: [`crate::agents::AgentRecord`].
pub(crate) const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agents.v1");
/// Agent ids by agent name, so names stay unique without scanning every agent.
pub(crate) const AGENT_NAMES: TableDefinition<&str, &str> = TableDefinition::new("agent_names.v1");
/// Agent key-value memory by (agent id, key): JSON values.
pub(crate) const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv.v1");
/// Uploaded attachments' metadata by upload id: [`crate::agents::uploads::Upload`].
pub(crate) const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads.v1");

// --- Conversations (conversation) ---
// Their rows are written through the `put_*_row(s)` functions below, the
// one place that knows their keys: the turn's commit and the journal's
// replay of it both use them.

/// Sessions by id: [`crate::conversation::SessionRecord`].
pub(crate) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions.v1");
/// Session messages by (session id, sequence number):
/// [`crate::conversation::StoredMessage`].
pub(crate) const MESSAGES: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("messages.v1");
/// The record of every turn by (agent id, turn id; v7 ids sort by time):
/// [`crate::conversation::TurnRecord`]. Traces and logs read it; usage and
/// budgets read its running totals, `turn_totals.v1` ([`super::totals`]).
pub(crate) const TURNS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("turns.v1");

/// Writes a session row: its key is the session id.
pub(crate) fn put_session_row(
    tx: &WriteTransaction,
    session: Uuid,
    json: &[u8],
) -> Result<(), StoreError> {
    tx.open_table(SESSIONS)?
        .insert(session.to_string().as_str(), json)?;
    Ok(())
}

/// Writes message rows of one session: each keyed by the session id and
/// its sequence number.
pub(crate) fn put_message_rows<'a>(
    tx: &WriteTransaction,
    session: Uuid,
    rows: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> Result<(), StoreError> {
    let session = session.to_string();
    let mut table = tx.open_table(MESSAGES)?;
    for (seq, json) in rows {
        table.insert((session.as_str(), seq), json)?;
    }
    Ok(())
}

/// Writes a turn row, keyed by the agent id and the turn id, and moves the
/// running totals of `turn_totals.v1` by it (see [`super::totals`]).
pub(crate) fn put_turn_row(
    tx: &WriteTransaction,
    agent: Uuid,
    turn: Uuid,
    json: &[u8],
) -> Result<(), StoreError> {
    let old = tx
        .open_table(TURNS)?
        .insert(
            (agent.to_string().as_str(), turn.to_string().as_str()),
            json,
        )?
        .map(|v| v.value().to_vec());
    super::totals::update_in(tx, old.as_deref(), Some(json))
}

// --- Automation (automation) ---

/// Cron jobs (and schedules, a view of the same jobs) by id:
/// [`crate::automation::cron::CronJob`].
pub(crate) const CRON_JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("cron_jobs.v1");
/// Cron runs by sequence number, oldest first: [`crate::automation::cron::CronRun`].
pub(crate) const CRON_RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("cron_runs.v1");
/// Event triggers by id: [`crate::automation::triggers::Trigger`].
pub(crate) const TRIGGERS: TableDefinition<&str, &[u8]> = TableDefinition::new("triggers.v1");
/// What triggers did when they fired, by sequence number:
/// [`crate::automation::triggers::TriggerFire`].
pub(crate) const TRIGGER_FIRES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("trigger_fires.v1");
/// Workflow definitions by id: [`crate::automation::workflows::Workflow`].
pub(crate) const WORKFLOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("workflows.v1");
/// Workflow runs by id: [`crate::automation::workflows::WorkflowRun`].
pub(crate) const WORKFLOW_RUNS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("workflow_runs.v1");
/// Goals by id: [`crate::automation::goals::Goal`].
pub(crate) const GOALS: TableDefinition<&str, &[u8]> = TableDefinition::new("goals.v1");
/// The task queue by task id (v7, so ids sort by posting time):
/// [`crate::automation::tasks::Task`].
pub(crate) const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks.v1");

// --- Providers and models (providers) ---

/// Custom models by id: [`talon_llm::ModelInfo`].
pub(crate) const CUSTOM_MODELS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("custom_models.v1");
/// Base-URL overrides by provider name. API keys are not here but in the
/// private secrets file (see [`crate::providers`]).
pub(crate) const PROVIDER_URLS: TableDefinition<&str, &str> =
    TableDefinition::new("provider_urls.v1");

// --- Plugins (plugins) ---

/// Installed plugins by name: [`crate::plugins::PluginRecord`]. Created by
/// the first install rather than by a migration.
pub(crate) const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins.v1");
/// Bundled plugins the operator removed, by name, so a restart does not
/// install them again: [`crate::plugins::records::Removal`]. Created by the
/// first such removal.
pub(crate) const BUNDLED_REMOVED: TableDefinition<&str, &[u8]> =
    TableDefinition::new("bundled_removed.v1");

// --- Approvals (approvals) ---

/// Approval requests by id (v7, so ids sort by request time):
/// [`crate::approvals::Approval`].
pub(crate) const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals.v1");
/// Small counters of the approvals domain: the last TOTP time step accepted
/// (`totp_last_step`), so a code is never accepted twice.
pub(crate) const APPROVAL_META: TableDefinition<&str, u64> =
    TableDefinition::new("approval_meta.v1");
/// The state of the turn a pending approval's call paused, by approval id:
/// JSON written by the conversation domain, which resumes the turn after a
/// restart. Written with the approval and removed with its decision, each
/// in one transaction.
pub(crate) const PAUSED_TURNS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("paused_turns.v1");

// --- Webhooks (webhooks) ---

/// Outbound webhook subscriptions by id: [`crate::webhooks::Webhook`].
pub(crate) const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks.v1");
/// Deliveries waiting for their next attempt, by delivery id (v7):
/// [`crate::webhooks::Delivery`].
pub(crate) const WEBHOOK_QUEUE: TableDefinition<&str, &[u8]> =
    TableDefinition::new("webhook_queue.v1");
/// Deliveries that used up their attempts, by delivery id:
/// [`crate::webhooks::Delivery`].
pub(crate) const WEBHOOK_DEAD: TableDefinition<&str, &[u8]> =
    TableDefinition::new("webhook_dead.v1");

// --- A2A (a2a) ---

/// Remote A2A agents discovered, by their card's URL: [`crate::a2a::Peer`].
pub(crate) const A2A_PEERS: TableDefinition<&str, &[u8]> = TableDefinition::new("a2a_peers.v1");
/// Tasks other agents sent to Talon's agents over A2A, by task id (v7):
/// [`crate::a2a::TaskRecord`].
pub(crate) const A2A_TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("a2a_tasks.v1");

// --- Channels (channels) ---

/// Configured channels by name: [`crate::channels::ChannelConfig`] (secrets
/// are in `secrets.toml`, never here).
pub(crate) const CHANNELS: TableDefinition<&str, &[u8]> = TableDefinition::new("channels.v1");
/// Inbound messages by `channel \n message id`, the dedupe key:
/// [`crate::channels::Inbound`].
pub(crate) const CHANNEL_INBOX: TableDefinition<&str, &[u8]> =
    TableDefinition::new("channel_inbox.v1");
/// Outbound messages by id (v7, so they sort by queueing time), sent,
/// waiting or dead: [`crate::channels::Outbound`].
pub(crate) const CHANNEL_OUTBOX: TableDefinition<&str, &[u8]> =
    TableDefinition::new("channel_outbox.v1");
/// The session of each conversation, by `channel \n chat \n thread`:
/// [`crate::channels::Conversation`].
pub(crate) const CHANNEL_SESSIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("channel_sessions.v1");

// --- Hands (hands) ---

/// Hand instances by id: [`crate::hands::HandInstance`] (the hand, its
/// agent, settings, active or paused, the last tick's occurrence).
pub(crate) const HAND_INSTANCES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("hand_instances.v1");
