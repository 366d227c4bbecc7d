//! Channels: chat platforms wired to agents.
//!
//! Owns `channels.v1` (configured channels: plugin, configuration without
//! secrets, bindings to agents), `channel_inbox.v1` (every inbound message,
//! keyed by channel and message id), `channel_outbox.v1` (replies and
//! deliveries, sent, waiting or dead) and `channel_sessions.v1` (the session
//! of each conversation); the channels' secret settings in `secrets.toml`
//! through `Providers`. Uses `Plugins` (the loaded channel components and
//! the runtime that runs them), `Providers`, `Agents` and `Conversations`.
//!
//! Guarantees: an inbound message is stored, synced and deduplicated by
//! (channel, message id) before anything else; its reply is queued in the
//! transaction that marks it answered, so it is queued once or not at all;
//! at start, stored messages not answered are answered and queued replies
//! not sent are sent. An acknowledged message is answered once across
//! `kill -9`; a reply is sent at least once (a crash between the platform
//! taking it and its record may send it again). See docs/CHANNELS.md.

mod pump;
pub mod records;
mod stream;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use talon_runtime::channel::{
    Capabilities, ChannelCallError, ChannelError, ChannelHandle, ChannelInfo, ChannelStatus,
    ConnectionState, WebhookRequest,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use records::{
    Binding, ChannelConfig, Inbound, InboundState, Outbound, OutboundStatus, inbound_key,
};

use crate::KernelError;
use crate::agents::Agents;
use crate::conversation::Conversations;
use crate::plugins::Plugins;
use crate::providers::Providers;
use crate::shared::Shared;
use crate::store::{self, audit::AuditEvent};

/// Attempts at an outbound message before it is a dead letter.
pub const MAX_ATTEMPTS: u32 = 8;
/// Messages of one sender waiting to be answered, per channel, beyond
/// which further ones are recorded as `rate_limited` and not answered.
pub const MAX_PENDING_PER_SENDER: usize = 20;
/// Turns one channel runs at once (for different senders).
pub const PARALLEL_TURNS: usize = 4;
/// Messages one channel sends per minute at most.
pub const SENDS_PER_MINUTE: u32 = 1200;
/// Longest channel name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Most bindings one channel may have.
pub const MAX_BINDINGS: usize = 256;
/// Longest configuration, encoded as JSON, in bytes.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Largest body a channel's webhook route accepts, in bytes.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;
/// Longest text a delivery (cron, trigger, notice, test) may carry, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// What the pump's tasks share.
pub(crate) struct Ctx {
    shared: Arc<Shared>,
    conversations: Arc<Conversations>,
    /// The configured channels as stored, by name.
    configs: RwLock<BTreeMap<String, ChannelConfig>>,
    /// Streamed replies whose final text waits in the outbox.
    streams: stream::Streams,
}

impl Ctx {
    fn config_of(&self, name: &str) -> Option<ChannelConfig> {
        self.configs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

/// One started channel: its supervisor and its pump's tasks.
struct Running {
    handle: Arc<ChannelHandle>,
    info: ChannelInfo,
    dispatch: mpsc::UnboundedSender<Inbound>,
    outbox: mpsc::UnboundedSender<Uuid>,
    tasks: Vec<JoinHandle<()>>,
    /// The outbox's sender, stopped between attempts rather than aborted:
    /// a send the platform took is recorded as sent before it stops, so a
    /// restart never sends it again.
    sender: JoinHandle<()>,
    stop_sender: CancellationToken,
}

/// How long a stopping channel waits for the send in progress to be
/// recorded (a send is bounded by the call's deadline anyway).
const SENDER_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Running {
    /// Stops the pump and disconnects politely.
    async fn stop(self) {
        self.stop_sender.cancel();
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        let mut sender = self.sender;
        if tokio::time::timeout(SENDER_STOP_WAIT, &mut sender)
            .await
            .is_err()
        {
            sender.abort();
        }
        if let Ok(handle) = Arc::try_unwrap(self.handle) {
            handle.stop().await;
        }
    }
}

/// What a caller sets when configuring a channel; `None` keeps the current
/// value (or takes the default, for a new channel).
#[derive(Debug, Clone, Default)]
pub struct ChannelSpec {
    /// The channel plugin (default: the channel's name).
    pub plugin: Option<String>,
    /// The configuration, secret keys included (they go to the secrets file).
    pub config: Option<BTreeMap<String, serde_json::Value>>,
    /// The default agent, by id or name.
    pub agent: Option<String>,
    /// Overrides per chat or sender.
    pub bindings: Option<Vec<Binding>>,
    /// On or off.
    pub enabled: Option<bool>,
}

/// A channel as the API shows it: configuration without secrets, status.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelView {
    /// Its name.
    pub name: String,
    /// The plugin that runs it.
    pub plugin: String,
    /// The platform's name for people (`IRC`), when the plugin is loaded.
    pub display_name: Option<String>,
    /// Whether it is started.
    pub enabled: bool,
    /// Whether secret settings are set (LibreFang's `has_token`).
    pub has_token: bool,
    /// Names of the secret settings set; their values are never returned.
    pub secret_keys: Vec<String>,
    /// The configuration, without secrets.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: BTreeMap<String, serde_json::Value>,
    /// The default agent.
    pub agent_id: Option<Uuid>,
    /// Overrides per chat or sender.
    pub bindings: Vec<Binding>,
    /// `connecting`, `connected`, `disconnected`, `restarting`, `stopped`,
    /// or `not_started` (disabled, or its plugin is not loaded).
    pub state: String,
    /// Whether it is connected now.
    pub connected: bool,
    /// Instances started after the first.
    pub restarts: u32,
    /// The last error (a crash, a refused connection, or why it did not start).
    pub last_error: Option<String>,
    /// What the component last said about the connection.
    pub detail: String,
    /// Since when it has been connected, in ms since the Unix epoch.
    pub connected_since_ms: Option<u64>,
    /// Inbound messages by state (`pending`, `answered`, `failed`, `rate_limited`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub inbound: BTreeMap<&'static str, u64>,
    /// When it was configured first.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// What a connectivity test found.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestOutcome {
    /// The platform is reachable now.
    pub success: bool,
    /// What the component says about the connection, or why it failed.
    pub detail: String,
    /// The supervisor's state.
    pub state: String,
    /// Whether a message was sent (when a chat was named).
    pub sent: bool,
}

/// A loaded channel plugin as `GET /api/channels/registry` shows it: what a
/// configure form needs (the schema, which keys are secret) and what the
/// component can do.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelKind {
    /// The plugin that runs it, the `plugin` of a configure call.
    pub plugin: String,
    /// The component's own id (`irc`).
    pub name: String,
    /// The platform's name for people (`IRC`).
    pub display_name: String,
    /// The JSON Schema the configuration is checked against (null when the
    /// component's schema is not JSON; configuring it is then refused).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config_schema: serde_json::Value,
    /// Configuration keys that are secrets: stored in `secrets.toml`, never
    /// returned.
    pub secret_keys: Vec<String>,
    /// `typing`, `reactions`, `edits`, `threads`, `attachments`, `webhooks`.
    pub capabilities: Vec<&'static str>,
    /// The longest text one send takes, in bytes (0: no limit).
    pub max_message_bytes: u32,
}

impl ChannelKind {
    fn new(plugin: String, info: &ChannelInfo) -> Self {
        let flags = [
            (Capabilities::TYPING, "typing"),
            (Capabilities::REACTIONS, "reactions"),
            (Capabilities::EDITS, "edits"),
            (Capabilities::THREADS, "threads"),
            (Capabilities::ATTACHMENTS, "attachments"),
            (Capabilities::WEBHOOKS, "webhooks"),
        ];
        Self {
            plugin,
            name: info.name.clone(),
            display_name: info.display_name.clone(),
            config_schema: serde_json::from_str(&info.config_schema)
                .unwrap_or(serde_json::Value::Null),
            secret_keys: info.secret_keys.clone(),
            capabilities: flags
                .into_iter()
                .filter(|(f, _)| info.capabilities.contains(*f))
                .map(|(_, n)| n)
                .collect(),
            max_message_bytes: info.max_message_bytes,
        }
    }
}

/// A channel component's answer to a platform's push.
#[derive(Debug, Clone)]
pub struct WebhookAnswer {
    /// The HTTP status for the platform.
    pub status: u16,
    /// Headers for the platform.
    pub headers: Vec<(String, String)>,
    /// The body for the platform.
    pub body: Vec<u8>,
    /// Messages it carried that were new (stored and queued for an answer).
    pub accepted: usize,
}

/// The channels domain.
pub struct Channels {
    ctx: Arc<Ctx>,
    agents: Arc<Agents>,
    plugins: Arc<Plugins>,
    providers: Arc<Providers>,
    running: tokio::sync::Mutex<BTreeMap<String, Running>>,
    /// Why a channel did not start, by name.
    start_errors: RwLock<BTreeMap<String, String>>,
    /// Whether the task delivering owner notices runs.
    owner_watch: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels").finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<(), KernelError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err(KernelError::Invalid(format!(
            "a channel name is 1-{MAX_NAME_BYTES} lowercase letters, digits, `-` or `_`"
        )));
    }
    // Paths of the API beside `/api/channels/{name}`.
    if matches!(name, "reload" | "registry" | "sidecar") {
        return Err(KernelError::Invalid(format!(
            "`{name}` is reserved; choose another channel name"
        )));
    }
    Ok(())
}

/// Checks `config` against the schema the component describes.
fn check_config(
    info: &ChannelInfo,
    config: &BTreeMap<String, serde_json::Value>,
) -> Result<(), KernelError> {
    let schema: serde_json::Value = serde_json::from_str(&info.config_schema).map_err(|e| {
        KernelError::Invalid(format!("the channel's config schema is not JSON: {e}"))
    })?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| {
        KernelError::Invalid(format!("the channel's config schema does not compile: {e}"))
    })?;
    let instance = serde_json::to_value(config).unwrap_or_default();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            match at.is_empty() {
                true => e.to_string(),
                false => format!("{at}: {e}"),
            }
        })
        .collect();
    if !errors.is_empty() {
        return Err(KernelError::Invalid(format!(
            "the configuration does not fit the {} channel's schema: {}",
            info.name,
            errors.join("; ")
        )));
    }
    Ok(())
}

fn state_name(status: &ChannelStatus) -> String {
    serde_json::to_value(status.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Channels {
    /// The domain; nothing runs until [`Channels::start`].
    pub fn new(
        shared: Arc<Shared>,
        agents: Arc<Agents>,
        plugins: Arc<Plugins>,
        providers: Arc<Providers>,
        conversations: Arc<Conversations>,
    ) -> Self {
        Self {
            ctx: Arc::new(Ctx {
                shared,
                conversations,
                configs: RwLock::default(),
                streams: stream::Streams::default(),
            }),
            agents,
            plugins,
            providers,
            running: tokio::sync::Mutex::default(),
            start_errors: RwLock::default(),
            owner_watch: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.ctx.shared
    }

    async fn load_configs(&self) -> Result<Vec<ChannelConfig>, KernelError> {
        let store = self.shared().store().clone();
        let configs = store::blocking(move || records::configs(&store)).await?;
        *self.ctx.configs.write().unwrap_or_else(|p| p.into_inner()) = configs
            .iter()
            .map(|c| (c.name.clone(), c.clone()))
            .collect();
        Ok(configs)
    }

    /// Starts every enabled channel (after the plugins loaded): messages
    /// stored but not answered are answered, replies queued but not sent are
    /// sent. A channel that cannot start is logged and shown with its error.
    pub async fn start(self: &Arc<Self>) -> Result<usize, KernelError> {
        self.watch_owner_events();
        let configs = self.load_configs().await?;
        let mut started = 0;
        for config in configs.into_iter().filter(|c| c.enabled) {
            match self.start_one(&config).await {
                Ok(()) => started += 1,
                Err(error) => {
                    tracing::error!(channel = %config.name, %error, "channel not started");
                }
            }
        }
        Ok(started)
    }

    /// Stops every channel, each after the send under way is recorded: the
    /// daemon's shutdown, so a reply the platform took is never sent again
    /// at the next start.
    pub async fn stop_all(&self) {
        let running = std::mem::take(&mut *self.running.lock().await);
        // All at once: a slow platform does not hold up the others' stops.
        futures::future::join_all(running.into_values().map(Running::stop)).await;
    }

    /// Stops every channel and starts the enabled ones again, with the
    /// stored configuration and the plugins as loaded now.
    pub async fn reload(self: &Arc<Self>) -> Result<usize, KernelError> {
        let running = std::mem::take(&mut *self.running.lock().await);
        for (_, channel) in running {
            channel.stop().await;
        }
        self.start().await
    }

    async fn stop_one(&self, name: &str) {
        let stopped = self.running.lock().await.remove(name);
        if let Some(channel) = stopped {
            channel.stop().await;
        }
    }

    async fn start_one(&self, config: &ChannelConfig) -> Result<(), KernelError> {
        self.stop_one(&config.name).await;
        let outcome = self.launch(config).await;
        let mut errors = self.start_errors.write().unwrap_or_else(|p| p.into_inner());
        match &outcome {
            Ok(()) => errors.remove(&config.name),
            Err(e) => errors.insert(config.name.clone(), e.to_string()),
        };
        outcome
    }

    async fn launch(&self, config: &ChannelConfig) -> Result<(), KernelError> {
        let plugin = self.plugins.channel_plugin(&config.plugin)?;
        let mut full = config.config.clone();
        for (key, value) in self.providers.channel_secrets(&config.name).await? {
            full.insert(key, serde_json::Value::String(value));
        }
        let json = serde_json::to_string(&full).unwrap_or_default();
        let (events_tx, events) = mpsc::channel(256);
        let handle = Arc::new(ChannelHandle::start(
            self.plugins.runtime(),
            &plugin,
            json,
            events_tx,
        ));
        let (dispatch_tx, dispatch) = mpsc::unbounded_channel();
        let (outbox_tx, outbox) = mpsc::unbounded_channel();
        let name = config.name.clone();
        let store = self.shared().store().clone();
        let pending_name = name.clone();
        let pending =
            store::blocking(move || records::pending_inbound(&store, &pending_name)).await?;
        let store = self.shared().store().clone();
        let queue_name = name.clone();
        let queued = store::blocking(move || {
            records::outbox(&store, usize::MAX, |m| {
                m.channel == queue_name && m.status == OutboundStatus::Queued
            })
        })
        .await?;
        for message in pending {
            let _ = dispatch_tx.send(message);
        }
        let dispatch = (dispatch_tx.clone(), dispatch);
        for message in queued.iter().rev() {
            let _ = outbox_tx.send(message.id);
        }
        let tasks = vec![
            tokio::spawn(pump::intake(
                self.ctx.clone(),
                name.clone(),
                events,
                dispatch.0.clone(),
            )),
            tokio::spawn(pump::dispatcher(
                self.ctx.clone(),
                name.clone(),
                dispatch.1,
                outbox_tx.clone(),
                // Replies are streamed as edits where the platform has them.
                plugin
                    .info()
                    .capabilities
                    .contains(Capabilities::EDITS)
                    .then(|| handle.clone()),
            )),
        ];
        let stop_sender = CancellationToken::new();
        let sender = tokio::spawn(pump::sender(
            self.ctx.clone(),
            name.clone(),
            handle.clone(),
            outbox,
            stop_sender.clone(),
        ));
        self.running.lock().await.insert(
            name,
            Running {
                handle,
                info: plugin.info().clone(),
                dispatch: dispatch.0,
                outbox: outbox_tx,
                tasks,
                sender,
                stop_sender,
            },
        );
        Ok(())
    }

    /// The configured channel `name`.
    pub fn config(&self, name: &str) -> Result<ChannelConfig, KernelError> {
        self.ctx
            .config_of(name)
            .ok_or_else(|| KernelError::NotFound(format!("no channel named {name} is configured")))
    }

    /// The names of the configured channels that route messages to
    /// `agent` (its default agent or a binding), and of all configured
    /// channels, both in name order.
    pub fn of_agent(&self, agent: Uuid) -> (Vec<String>, Vec<String>) {
        let configs = self.ctx.configs.read().unwrap_or_else(|p| p.into_inner());
        let assigned = configs
            .values()
            .filter(|c| c.serves(agent))
            .map(|c| c.name.clone())
            .collect();
        (assigned, configs.keys().cloned().collect())
    }

    /// Queues `text` for `agent`'s owner, in the chat an owner binding
    /// names (the first channel in name order that has one); false when
    /// no channel reaches the owner.
    pub async fn notify_owner(&self, agent: Uuid, text: &str) -> Result<bool, KernelError> {
        let target = self
            .ctx
            .configs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find_map(|c| {
                c.owner_chat(agent)
                    .map(|chat| (c.name.clone(), chat.to_string()))
            });
        let Some((channel, chat)) = target else {
            return Ok(false);
        };
        let name = match self.agents.get(agent).await {
            Ok(a) => a.name().to_string(),
            Err(_) => agent.to_string(),
        };
        let mut text = format!("[{name}] {text}");
        if text.len() > MAX_TEXT_BYTES {
            let mut cut = MAX_TEXT_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        self.deliver(&channel, Some(agent), &chat, None, &text, "notify")
            .await?;
        Ok(true)
    }

    /// Starts, once, the task that delivers owner notices and approval
    /// requests to owners' chats as they are published on the event bus.
    /// The bus is not durable: a notice published while the daemon dies
    /// is lost (the turn's record keeps it).
    fn watch_owner_events(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.owner_watch.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut events = self.shared().events().subscribe();
        let channels = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "owner notices fell behind the event bus; some were not delivered"
                        );
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let (agent, text) = match event {
                    crate::events::Event::OwnerNotice { agent_id, text, .. } => (agent_id, text),
                    crate::events::Event::ApprovalRequested {
                        approval_id,
                        agent_id,
                        tool,
                        expires_at,
                        ..
                    } => (
                        agent_id,
                        format!(
                            "wants to call `{tool}` and waits for your approval until {expires_at} \
                             (POST /api/approvals/{approval_id}/approve or /reject)"
                        ),
                    ),
                    _ => continue,
                };
                let Some(channels) = channels.upgrade() else {
                    return;
                };
                let Ok(agent) = Uuid::parse_str(&agent) else {
                    continue;
                };
                if let Err(error) = channels.notify_owner(agent, &text).await {
                    tracing::warn!(%agent, %error, "cannot queue a notice for the agent's owner");
                }
            }
        });
    }

    /// Every loaded channel plugin with its configuration schema.
    pub fn registry(&self) -> Vec<ChannelKind> {
        self.plugins
            .channel_plugins()
            .into_iter()
            .map(|(plugin, c)| ChannelKind::new(plugin, c.info()))
            .collect()
    }

    /// Every configured channel with its status.
    pub async fn list(&self) -> Result<Vec<ChannelView>, KernelError> {
        let configs: Vec<ChannelConfig> = self
            .ctx
            .configs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut views = Vec::with_capacity(configs.len());
        for config in configs {
            views.push(self.view(config).await?);
        }
        Ok(views)
    }

    /// One configured channel with its status.
    pub async fn get(&self, name: &str) -> Result<ChannelView, KernelError> {
        let config = self.config(name)?;
        self.view(config).await
    }

    async fn view(&self, config: ChannelConfig) -> Result<ChannelView, KernelError> {
        let (status, display_name) = {
            let running = self.running.lock().await;
            match running.get(&config.name) {
                Some(r) => (Some(r.handle.status()), Some(r.info.display_name.clone())),
                None => (None, None),
            }
        };
        let store = self.shared().store().clone();
        let name = config.name.clone();
        let inbound = store::blocking(move || records::inbound_counts(&store, &name)).await?;
        let start_error = self
            .start_errors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&config.name)
            .cloned();
        let (state, connected, restarts, last_error, detail, since) = match status {
            Some(s) => (
                state_name(&s),
                s.state == talon_runtime::channel::SupervisorState::Connected,
                s.restarts,
                s.last_error,
                s.detail,
                s.connected_since_ms,
            ),
            None => (
                "not_started".into(),
                false,
                0,
                start_error,
                String::new(),
                None,
            ),
        };
        Ok(ChannelView {
            name: config.name,
            plugin: config.plugin,
            display_name,
            enabled: config.enabled,
            has_token: !config.secret_keys.is_empty(),
            secret_keys: config.secret_keys,
            config: config.config,
            agent_id: config.agent_id,
            bindings: config.bindings,
            state,
            connected,
            restarts,
            last_error,
            detail,
            connected_since_ms: since,
            inbound,
            created_at: config.created_at,
            updated_at: config.updated_at,
        })
    }

    async fn resolve_agent(&self, agent: &str) -> Result<Uuid, KernelError> {
        match Uuid::parse_str(agent) {
            Ok(id) => Ok(self.agents.get(id).await?.id),
            Err(_) => self
                .agents
                .id_by_name(agent.to_string())
                .await?
                .ok_or_else(|| KernelError::NotFound(format!("no agent named {agent}"))),
        }
    }

    /// Configures (or reconfigures) channel `name` and (re)starts it when
    /// enabled. Secret keys (those the component names) go to the secrets
    /// file; the rest is stored. Keys left out of `config` keep their value
    /// when the channel was configured before.
    pub async fn configure(
        &self,
        name: &str,
        spec: ChannelSpec,
    ) -> Result<ChannelView, KernelError> {
        check_name(name)?;
        let existing = self.ctx.config_of(name);
        let plugin_name = spec
            .plugin
            .clone()
            .or_else(|| existing.as_ref().map(|c| c.plugin.clone()))
            .unwrap_or_else(|| name.to_string());
        let plugin = self.plugins.channel_plugin(&plugin_name)?;
        let info = plugin.info().clone();
        if let Some(bindings) = &spec.bindings {
            if bindings.len() > MAX_BINDINGS {
                return Err(KernelError::Invalid(format!(
                    "at most {MAX_BINDINGS} bindings per channel"
                )));
            }
            for binding in bindings {
                self.agents.get(binding.agent_id).await?;
                if binding.owner && binding.chat_id.is_none() {
                    return Err(KernelError::Invalid(
                        "an owner binding (`owner: true`) names the owner's chat in `chat_id`"
                            .into(),
                    ));
                }
                let long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.len() > 512);
                if long(&binding.chat_id) || long(&binding.sender_id) {
                    return Err(KernelError::Invalid(
                        "a binding's chat_id and sender_id are at most 512 bytes".into(),
                    ));
                }
            }
        }
        let agent_id = match &spec.agent {
            Some(agent) => Some(self.resolve_agent(agent).await?),
            None => existing.as_ref().and_then(|c| c.agent_id),
        };
        // The whole configuration: stored values, stored secrets, then the new ones.
        let mut full = existing
            .as_ref()
            .map(|c| c.config.clone())
            .unwrap_or_default();
        if existing.is_some() {
            for (key, value) in self.providers.channel_secrets(name).await? {
                full.insert(key, serde_json::Value::String(value));
            }
        }
        if let Some(config) = spec.config {
            let size = serde_json::to_vec(&config).map(|v| v.len()).unwrap_or(0);
            if size > MAX_CONFIG_BYTES {
                return Err(KernelError::TooLarge(format!(
                    "the configuration is {size} bytes; the limit is {MAX_CONFIG_BYTES}"
                )));
            }
            full.extend(config);
        }
        check_config(&info, &full)?;
        let mut secrets = BTreeMap::new();
        let mut public = BTreeMap::new();
        for (key, value) in full {
            if info.secret_keys.contains(&key) {
                let text = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                secrets.insert(key, text);
            } else {
                public.insert(key, value);
            }
        }
        let now = self.shared().now();
        let config = ChannelConfig {
            name: name.to_string(),
            plugin: plugin_name,
            config: public,
            secret_keys: secrets.keys().cloned().collect(),
            agent_id,
            bindings: spec
                .bindings
                .or_else(|| existing.as_ref().map(|c| c.bindings.clone()))
                .unwrap_or_default(),
            enabled: spec
                .enabled
                .or(existing.as_ref().map(|c| c.enabled))
                .unwrap_or(true),
            created_at: existing.as_ref().map_or(now, |c| c.created_at),
            updated_at: now,
        };
        self.providers.set_channel_secrets(name, secrets).await?;
        let store = self.shared().store().clone();
        let stored = config.clone();
        store::blocking(move || records::put_config(&store, &stored)).await?;
        self.ctx
            .configs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), config.clone());
        let details = serde_json::json!({
            "channel": name, "plugin": config.plugin, "agent_id": config.agent_id,
            "enabled": config.enabled, "secret_keys": config.secret_keys,
        });
        self.shared()
            .audit(AuditEvent::new("channel_configured", details.to_string()))
            .await?;
        if config.enabled {
            self.start_one(&config).await?;
        } else {
            self.stop_one(name).await;
        }
        self.get(name).await
    }

    /// Stops channel `name` and removes its configuration and secrets; its
    /// messages stay as history. Not found when it was not configured.
    pub async fn remove(&self, name: &str) -> Result<(), KernelError> {
        self.config(name)?;
        self.stop_one(name).await;
        let store = self.shared().store().clone();
        let key = name.to_string();
        store::blocking(move || records::delete_config(&store, &key)).await?;
        self.providers
            .set_channel_secrets(name, BTreeMap::new())
            .await?;
        self.ctx
            .configs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.start_errors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.shared()
            .audit(AuditEvent::new(
                "channel_removed",
                serde_json::json!({ "channel": name }).to_string(),
            ))
            .await?;
        Ok(())
    }

    /// Asks the running channel, now, whether its platform is reachable;
    /// with `chat`, also queues `text` to it through the outbox.
    pub async fn test(
        &self,
        name: &str,
        chat: Option<String>,
        text: Option<String>,
    ) -> Result<TestOutcome, KernelError> {
        self.config(name)?;
        let handle = {
            let running = self.running.lock().await;
            running.get(name).map(|r| r.handle.clone())
        };
        let Some(handle) = handle else {
            let why = self
                .start_errors
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .cloned()
                .unwrap_or_else(|| "the channel is disabled".into());
            return Ok(TestOutcome {
                success: false,
                detail: why,
                state: "not_started".into(),
                sent: false,
            });
        };
        let health = handle.health().await;
        let state = state_name(&handle.status());
        let (success, detail) = match health {
            Ok(h) => (h.state == ConnectionState::Connected, h.detail),
            Err(e) => (false, e.to_string()),
        };
        let mut sent = false;
        if let (true, Some(chat)) = (success, chat) {
            let text = text.unwrap_or_else(|| "Talon: channel test".into());
            self.deliver(name, None, &chat, None, &text, "test").await?;
            sent = true;
        }
        Ok(TestOutcome {
            success,
            detail,
            state,
            sent,
        })
    }

    /// Queues `text` for `chat` of channel `name` through the outbox (sent
    /// with the same retries and dead letters as replies).
    pub async fn deliver(
        &self,
        name: &str,
        agent: Option<Uuid>,
        chat: &str,
        thread: Option<String>,
        text: &str,
        origin: &str,
    ) -> Result<Outbound, KernelError> {
        self.config(name)?;
        if chat.is_empty() || chat.len() > 512 {
            return Err(KernelError::Invalid(
                "a delivery's chat is 1-512 bytes".into(),
            ));
        }
        if text.trim().is_empty() || text.len() > MAX_TEXT_BYTES {
            return Err(KernelError::Invalid(format!(
                "a delivery's text is 1-{MAX_TEXT_BYTES} bytes"
            )));
        }
        let now = self.shared().now();
        let message = Outbound {
            id: Uuid::now_v7(),
            channel: name.to_string(),
            agent_id: agent,
            chat_id: chat.to_string(),
            thread_id: thread,
            reply_to: None,
            text: text.to_string(),
            origin: origin.to_string(),
            status: OutboundStatus::Queued,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            sent_at: None,
            platform_ids: Vec::new(),
        };
        let store = self.shared().store().clone();
        let stored = message.clone();
        store::blocking(move || records::put_outbound(&store, &stored)).await?;
        self.wake_sender(name, message.id).await;
        Ok(message)
    }

    async fn wake_sender(&self, name: &str, id: Uuid) {
        if let Some(running) = self.running.lock().await.get(name) {
            let _ = running.outbox.send(id);
        }
    }

    /// The newest `limit` outbound messages of `agent`, newest first.
    pub async fn deliveries(
        &self,
        agent: Uuid,
        limit: usize,
    ) -> Result<Vec<Outbound>, KernelError> {
        let store = self.shared().store().clone();
        Ok(
            store::blocking(move || records::outbox(&store, limit, |m| m.agent_id == Some(agent)))
                .await?,
        )
    }

    /// Dead letters (of one channel, or all), newest first.
    pub async fn dead_letters(
        &self,
        channel: Option<String>,
    ) -> Result<Vec<Outbound>, KernelError> {
        let store = self.shared().store().clone();
        Ok(store::blocking(move || {
            records::outbox(&store, 1000, |m| {
                m.status == OutboundStatus::Dead
                    && channel.as_deref().is_none_or(|c| c == m.channel)
            })
        })
        .await?)
    }

    /// Puts a dead letter of channel `name` back in the outbox with fresh attempts.
    pub async fn retry_dead_letter(&self, name: &str, id: Uuid) -> Result<Outbound, KernelError> {
        let store = self.shared().store().clone();
        let found = store::blocking(move || records::outbound(&store, id)).await?;
        let mut message = found
            .filter(|m| m.status == OutboundStatus::Dead && m.channel == name)
            .ok_or_else(|| {
                KernelError::NotFound(format!("no dead letter {id} in channel {name}"))
            })?;
        message.status = OutboundStatus::Queued;
        message.attempts = 0;
        message.next_attempt_at = self.shared().now();
        let store = self.shared().store().clone();
        let stored = message.clone();
        store::blocking(move || records::put_outbound(&store, &stored)).await?;
        self.wake_sender(&message.channel, message.id).await;
        Ok(message)
    }

    /// Hands a request the platform pushed to channel `name`'s component,
    /// which checks the platform's signature and answers; the messages it
    /// carried go through the same durable inbound path as received ones,
    /// before the answer is returned.
    pub async fn webhook(
        &self,
        name: &str,
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<WebhookAnswer, KernelError> {
        self.config(name)?;
        if body.len() > MAX_WEBHOOK_BYTES {
            return Err(KernelError::TooLarge(format!(
                "a webhook body is at most {MAX_WEBHOOK_BYTES} bytes"
            )));
        }
        let (handle, takes_webhooks, dispatch) = {
            let running = self.running.lock().await;
            let running = running
                .get(name)
                .ok_or_else(|| KernelError::Conflict(format!("channel {name} is not running")))?;
            (
                running.handle.clone(),
                running.info.capabilities.contains(Capabilities::WEBHOOKS),
                running.dispatch.clone(),
            )
        };
        if !takes_webhooks {
            return Err(KernelError::Invalid(format!(
                "channel {name} does not take webhooks (its component has no `webhooks` capability)"
            )));
        }
        let request = WebhookRequest {
            method,
            path,
            headers,
            body,
        };
        let answer = handle.webhook(request).await.map_err(|e| match e {
            ChannelCallError::Channel(ChannelError::Invalid(m)) => KernelError::Invalid(m),
            ChannelCallError::Channel(ChannelError::PermissionDenied(m)) => {
                KernelError::Forbidden(m)
            }
            other => KernelError::Conflict(other.to_string()),
        })?;
        let mut accepted = 0;
        for event in answer.events {
            if pump::accept(&self.ctx, name, event, &dispatch).await? {
                accepted += 1;
            }
        }
        Ok(WebhookAnswer {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
            accepted,
        })
    }
}
