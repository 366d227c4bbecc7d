//! Channels: components of `talon:plugin@0.2.0`'s `channel` world that
//! live as long as the channel is enabled, under a supervisor.
//!
//! A channel holds a connection, so it keeps one instance (one store) for
//! its life: a [`Live`] instance (`live.rs`, shared with hands), under the
//! same guard as every call.
//!
//! The [supervisor](ChannelHandle) owns the instance in one task: it
//! connects, calls `receive` in a loop (passing events to the embedder),
//! runs the embedder's commands (send, health) between two receives, and
//! when a call traps, hangs or runs out of memory it drops the instance and
//! starts a new one after an exponential backoff, counting restarts and
//! keeping the last error. A platform that refuses or drops the connection
//! is not a crash: the same instance connects again after the backoff.
//! Nothing in one channel's task can reach another channel or the daemon.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use wasmtime::Store;

use crate::bindings::v0_2_0::{Channel as ChannelWorld, ChannelPre};
use crate::ceilings::Ceilings;
use crate::error::{GuardError, LoadError};
use crate::guard::StoreSpec;
use crate::host::{CallState, Grants};
use crate::live::{Backoff, CallFuture, Live, LivePre, now_ms};
use crate::manifest::{CHANNEL_WIT_VERSION, Kind, Manifest, Permissions};
use crate::permissions::SocketPolicy;
use crate::plugin::{CallContext, EffectiveLimits};
use crate::runtime::{Runtime, Tier};
use crate::slots::PerPlugin;
use crate::wake::ReceiveWake;

pub use crate::bindings::v0_2_0::talon::plugin::channel_types::{
    Attachment, AttachmentSource, Capabilities, ChannelError, ChannelEvent, ChannelHealth,
    ChannelInfo, ChatKind, ConnectionState, Destination, InboundMessage, OutboundMessage, Sender,
    WebhookRequest, WebhookResponse,
};
pub use crate::live::{MAX_BACKOFF, MIN_BACKOFF};

/// How long one `receive` waits for the platform. A command queued
/// meanwhile does not wait for it: it wakes the receive (`wake.rs`), whose
/// wait then runs out at once. This bounds only how late a component that
/// waits without `wasi:clocks` timers sees a command.
pub const RECEIVE_WAIT: Duration = Duration::from_secs(1);
/// How often a connected channel is asked for its health.
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// A channel component compiled, linked and described, ready to start.
#[derive(Clone)]
pub struct ChannelPlugin {
    inner: Arc<ChannelInner>,
}

struct ChannelInner {
    manifest: Manifest,
    grants: Arc<Grants>,
    env: Vec<(String, String)>,
    sockets: Arc<SocketPolicy>,
    shared: Arc<PerPlugin>,
    pre: ChannelPre<CallState>,
    info: ChannelInfo,
}

impl ChannelPlugin {
    /// The manifest it was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// What the component says it is (read at load).
    pub fn info(&self) -> &ChannelInfo {
        &self.inner.info
    }
}

impl Runtime {
    /// Loads a channel component: compiles (or loads from the cache) and
    /// links it against the 0.2.0 `channel` world, and asks it to describe
    /// itself in a short-lived instance. `granted` must be a subset of what
    /// the manifest requests; sockets are opened only to the granted pairs.
    pub async fn load_channel(
        &self,
        manifest: Manifest,
        component: Arc<Vec<u8>>,
        granted: Permissions,
        settings: BTreeMap<String, String>,
    ) -> Result<ChannelPlugin, LoadError> {
        if manifest.kind != Kind::Channel {
            return Err(LoadError::Manifest(format!(
                "kind {:?}: only a channel runs as a channel",
                manifest.kind.as_str()
            )));
        }
        manifest.validate()?;
        let (grants, env) = crate::plugin::admit(&manifest, &granted, settings)?;
        if granted.sockets.iter().any(|s| s == "*") {
            return Err(LoadError::Manifest(
                "sockets: grant the server's `host:port`; `*` is what a channel requests \
                 when the operator chooses the server, not a grant"
                    .into(),
            ));
        }
        let (component, _cached) = self.compile(component).await?;
        let world_err = |e: wasmtime::Error| LoadError::World {
            world: "channel",
            version: CHANNEL_WIT_VERSION,
            detail: format!("{e:#}"),
        };
        let pre = self
            .engine_of(Tier::Optimized)?
            .linker
            .instantiate_pre(&component)
            .map_err(world_err)?;
        let pre = ChannelPre::new(pre).map_err(world_err)?;
        let mut inner = ChannelInner {
            shared: self.inner.slots.plugin(&manifest.name),
            grants,
            sockets: Arc::new(SocketPolicy::new(&granted.sockets)),
            manifest,
            env,
            pre,
            info: ChannelInfo {
                name: String::new(),
                display_name: String::new(),
                config_schema: String::new(),
                secret_keys: Vec::new(),
                capabilities: Capabilities::empty(),
                max_message_bytes: 0,
            },
        };
        let ceilings = self.ceilings();
        let _permit = self
            .inner
            .slots
            .acquire(
                &inner.shared,
                ceilings.per_plugin_instances,
                ceilings.slot_wait,
                "describe",
            )
            .await
            .map_err(LoadError::Guard)?;
        let mut instance = inner
            .start(self, &ceilings, None)
            .await
            .map_err(LoadError::Guard)?;
        let info = instance
            .enter(self, |g, s| {
                Box::pin(async move { g.talon_plugin_channel_adapter().call_describe(s).await })
            })
            .await
            .map_err(LoadError::Guard)?;
        serde_json::from_str::<serde_json::Value>(&info.config_schema).map_err(|e| {
            LoadError::Describe(format!("the channel's config schema is not JSON: {e}"))
        })?;
        inner.info = info;
        Ok(ChannelPlugin {
            inner: Arc::new(inner),
        })
    }
}

impl LivePre for ChannelPre<CallState> {
    type World = ChannelWorld;

    fn engine(&self) -> &wasmtime::Engine {
        ChannelPre::engine(self)
    }

    fn instantiate<'s>(&'s self, store: &'s mut Store<CallState>) -> CallFuture<'s, ChannelWorld> {
        Box::pin(self.instantiate_async(store))
    }
}

/// One live channel instance.
type Instance = Live<ChannelWorld>;

impl ChannelInner {
    /// Instantiates the channel under the guard's limits (the caller holds
    /// the slots); `wake` makes its receives wakeable.
    async fn start(
        &self,
        runtime: &Runtime,
        ceilings: &Ceilings,
        wake: Option<&ReceiveWake>,
    ) -> Result<Instance, GuardError> {
        let spec = StoreSpec {
            env: &self.env,
            filesystem: false,
            grants: &self.grants,
            shared: &self.shared,
            sockets: Some(&self.sockets),
        };
        let limits = EffectiveLimits::new(&self.manifest, ceilings);
        Live::start(
            runtime,
            &self.pre,
            spec,
            // The WIT scopes a channel's memory to the channel: its keys
            // live under the scope `channel:<name>` (no agent has that id).
            &CallContext {
                agent_id: Some(format!("channel:{}", self.manifest.name)),
                workspace: None,
            },
            limits,
            ceilings,
            |state| state.receive_wake = wake.cloned(),
        )
        .await
    }
}

/// What the supervisor is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisorState {
    /// Starting an instance or connecting.
    Connecting,
    /// Connected, and the component says the platform is reachable.
    Connected,
    /// The platform refused or dropped the connection; reconnecting after
    /// a backoff.
    Disconnected,
    /// The instance trapped, hung or leaked; a new one starts after a backoff.
    Restarting,
    /// Stopped by the embedder.
    Stopped,
}

/// What the supervisor knows about its channel, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelStatus {
    /// What the supervisor is doing.
    pub state: SupervisorState,
    /// What the component last said about the connection.
    pub detail: String,
    /// Instances started after the first (each after a trap, hang or leak).
    pub restarts: u32,
    /// The last error: a crash, or a refused connection.
    pub last_error: Option<String>,
    /// Since when it has been connected, in ms since the Unix epoch.
    pub connected_since_ms: Option<u64>,
    /// Peak linear memory of the current instance, in bytes.
    pub peak_memory: u64,
}

/// Why a command could not be carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChannelCallError {
    /// The channel answered with an error.
    #[error("{}", describe_channel_error(.0))]
    Channel(ChannelError),
    /// The channel is not connected now (the command was not attempted).
    #[error("the channel is not connected ({0})")]
    NotConnected(String),
    /// The call trapped, hung or ran out of memory; the instance restarts.
    #[error("the channel crashed: {0}")]
    Crashed(GuardError),
    /// The supervisor has stopped.
    #[error("the channel has stopped")]
    Stopped,
}

fn describe_channel_error(e: &ChannelError) -> String {
    match e {
        ChannelError::NotConnected(m) => format!("not connected: {m}"),
        ChannelError::Invalid(m) => format!("invalid: {m}"),
        ChannelError::Unsupported(m) => format!("unsupported: {m}"),
        ChannelError::PermissionDenied(m) => format!("permission denied: {m}"),
        ChannelError::Remote(m) => format!("the platform failed: {m}"),
        ChannelError::RateLimited(ms) => format!("rate limited: retry after {ms} ms"),
    }
}

/// Where a command's answer goes.
type Reply<T> = oneshot::Sender<Result<T, ChannelCallError>>;

enum Command {
    Send(OutboundMessage, Reply<Vec<String>>),
    Health(Reply<ChannelHealth>),
    Stop(oneshot::Sender<()>),
    /// The channel's other exports, run like `Send`.
    Call(Call),
}

/// A call into one of the channel's exports beyond `send` and `health`.
enum Call {
    Typing(Destination, Reply<()>),
    React(String, String, String, Reply<()>),
    StreamStart(Destination, Reply<String>),
    StreamDelta(String, String, Reply<()>),
    StreamEnd(String, Reply<String>),
    Webhook(WebhookRequest, Reply<WebhookResponse>),
}

impl Call {
    /// Answers without calling: the channel is not connected.
    fn refuse(self, why: &str) {
        let no = || ChannelCallError::NotConnected(why.to_string());
        match self {
            Call::Typing(_, r) | Call::React(_, _, _, r) | Call::StreamDelta(_, _, r) => {
                let _ = r.send(Err(no()));
            }
            Call::StreamStart(_, r) | Call::StreamEnd(_, r) => {
                let _ = r.send(Err(no()));
            }
            Call::Webhook(_, r) => {
                let _ = r.send(Err(no()));
            }
        }
    }

    /// Runs the call in the instance and answers it; the guard's error if
    /// the instance crashed.
    async fn run(self, runtime: &Runtime, instance: &mut Instance) -> Result<(), GuardError> {
        fn answer<T: Send>(
            reply: Reply<T>,
            outcome: Result<Result<T, ChannelError>, GuardError>,
        ) -> Result<(), GuardError> {
            match outcome {
                Err(e) => {
                    let _ = reply.send(Err(ChannelCallError::Crashed(e.clone())));
                    Err(e)
                }
                Ok(answer) => {
                    let _ = reply.send(answer.map_err(ChannelCallError::Channel));
                    Ok(())
                }
            }
        }
        match self {
            Call::Typing(to, reply) => {
                let outcome = instance
                    .enter(runtime, move |g, s| {
                        Box::pin(async move {
                            g.talon_plugin_channel_adapter().call_typing(s, &to).await
                        })
                    })
                    .await;
                answer(reply, outcome)
            }
            Call::React(chat, message, reaction, reply) => {
                let outcome = instance
                    .enter(runtime, move |g, s| {
                        Box::pin(async move {
                            g.talon_plugin_channel_adapter()
                                .call_react(s, &chat, &message, &reaction)
                                .await
                        })
                    })
                    .await;
                answer(reply, outcome)
            }
            Call::StreamStart(to, reply) => {
                let outcome = instance
                    .enter(runtime, move |g, s| {
                        Box::pin(async move {
                            g.talon_plugin_channel_adapter()
                                .call_stream_start(s, &to)
                                .await
                        })
                    })
                    .await;
                answer(reply, outcome)
            }
            Call::StreamDelta(stream, text, reply) => {
                let outcome = instance
                    .enter(runtime, move |g, s| {
                        Box::pin(async move {
                            g.talon_plugin_channel_adapter()
                                .call_stream_delta(s, &stream, &text)
                                .await
                        })
                    })
                    .await;
                answer(reply, outcome)
            }
            Call::StreamEnd(stream, reply) => {
                let outcome = instance
                    .enter(runtime, move |g, s| {
                        Box::pin(async move {
                            g.talon_plugin_channel_adapter()
                                .call_stream_end(s, &stream)
                                .await
                        })
                    })
                    .await;
                answer(reply, outcome)
            }
            Call::Webhook(request, reply) => {
                let outcome = instance
                    .enter(runtime, move |g, s| {
                        Box::pin(async move {
                            g.talon_plugin_channel_adapter()
                                .call_handle_webhook(s, &request)
                                .await
                        })
                    })
                    .await;
                answer(reply, outcome)
            }
        }
    }
}

/// A running channel: the supervisor's task and the way to talk to it.
/// Dropping it stops the task (without the polite `disconnect`; use
/// [`ChannelHandle::stop`] for that).
pub struct ChannelHandle {
    commands: mpsc::Sender<Command>,
    wake: ReceiveWake,
    status: Arc<Mutex<ChannelStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChannelHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChannelHandle {
    /// Starts `plugin` with `config` (JSON, the secrets merged in) under a
    /// supervisor. Events the channel receives go to `events`; the
    /// supervisor waits for room there, so a slow consumer slows the
    /// channel down rather than losing events.
    pub fn start(
        runtime: &Runtime,
        plugin: &ChannelPlugin,
        config: String,
        events: mpsc::Sender<ChannelEvent>,
    ) -> Self {
        let (commands, inbox) = mpsc::channel(64);
        let status = Arc::new(Mutex::new(ChannelStatus {
            state: SupervisorState::Connecting,
            detail: String::new(),
            restarts: 0,
            last_error: None,
            connected_since_ms: None,
            peak_memory: 0,
        }));
        let wake = ReceiveWake::default();
        let supervisor = Supervisor {
            wake: wake.clone(),
            runtime: runtime.clone(),
            plugin: plugin.inner.clone(),
            config,
            events,
            inbox,
            status: status.clone(),
            backoff: Backoff::default(),
        };
        let task = tokio::spawn(supervisor.run());
        Self {
            commands,
            wake,
            status,
            task,
        }
    }

    /// What the supervisor knows now.
    pub fn status(&self) -> ChannelStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Queues a command and wakes the receive in progress, so the command
    /// runs as soon as the receive returns; its answer.
    async fn submit<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, ChannelCallError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| ChannelCallError::Stopped)?;
        self.wake.wake();
        answer.await.map_err(|_| ChannelCallError::Stopped)?
    }

    /// Sends a message through the channel; the platform's ids of what it
    /// posted.
    pub async fn send(&self, message: OutboundMessage) -> Result<Vec<String>, ChannelCallError> {
        self.submit(|r| Command::Send(message, r)).await
    }

    /// Asks the component, now, whether the platform is reachable.
    pub async fn health(&self) -> Result<ChannelHealth, ChannelCallError> {
        self.submit(Command::Health).await
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Call) -> Result<T, ChannelCallError> {
        self.submit(|r| Command::Call(make(r))).await
    }

    /// Shows a typing indicator in a chat.
    pub async fn typing(&self, to: Destination) -> Result<(), ChannelCallError> {
        self.call(|r| Call::Typing(to, r)).await
    }

    /// Adds a reaction to a message.
    pub async fn react(
        &self,
        chat_id: String,
        message_id: String,
        reaction: String,
    ) -> Result<(), ChannelCallError> {
        self.call(|r| Call::React(chat_id, message_id, reaction, r))
            .await
    }

    /// Starts a reply edited in place as it grows; its stream id.
    pub async fn stream_start(&self, to: Destination) -> Result<String, ChannelCallError> {
        self.call(|r| Call::StreamStart(to, r)).await
    }

    /// Appends text to a streamed reply.
    pub async fn stream_delta(&self, stream: String, text: String) -> Result<(), ChannelCallError> {
        self.call(|r| Call::StreamDelta(stream, text, r)).await
    }

    /// Finishes a streamed reply; the platform's id of the message.
    pub async fn stream_end(&self, stream: String) -> Result<String, ChannelCallError> {
        self.call(|r| Call::StreamEnd(stream, r)).await
    }

    /// Hands a request the platform pushed to the channel's
    /// `handle-webhook`; its answer, with the events the request carried.
    pub async fn webhook(
        &self,
        request: WebhookRequest,
    ) -> Result<WebhookResponse, ChannelCallError> {
        self.call(|r| Call::Webhook(request, r)).await
    }

    /// Disconnects politely and stops the supervisor.
    pub async fn stop(self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Stop(reply)).await.is_ok() {
            self.wake.wake();
            let _ = done.await;
        }
    }
}

/// Why the connected loop ended.
enum Ended {
    /// The platform dropped the connection or refused: reconnect.
    Disconnected(String),
    /// The instance trapped, hung or leaked: restart.
    Crashed(GuardError),
    /// The embedder asked to stop.
    Stop(oneshot::Sender<()>),
}

struct Supervisor {
    wake: ReceiveWake,
    runtime: Runtime,
    plugin: Arc<ChannelInner>,
    config: String,
    events: mpsc::Sender<ChannelEvent>,
    inbox: mpsc::Receiver<Command>,
    status: Arc<Mutex<ChannelStatus>>,
    backoff: Backoff,
}

impl Supervisor {
    fn update(&self, change: impl FnOnce(&mut ChannelStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut status);
    }

    /// Waits out the backoff, answering commands meanwhile (sends are
    /// refused as not connected); doubles it. `false` if told to stop.
    async fn pause(&mut self, why: &str) -> bool {
        let until = tokio::time::Instant::now() + self.backoff.next();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                command = self.inbox.recv() => match command {
                    None => return false,
                    Some(Command::Stop(done)) => {
                        let _ = done.send(());
                        return false;
                    }
                    Some(Command::Send(_, reply)) => {
                        let _ = reply.send(Err(ChannelCallError::NotConnected(why.to_string())));
                    }
                    Some(Command::Health(reply)) => {
                        let _ = reply.send(Err(ChannelCallError::NotConnected(why.to_string())));
                    }
                    Some(Command::Call(call)) => call.refuse(why),
                },
            }
        }
    }

    async fn run(mut self) {
        let runtime = self.runtime.clone();
        let plugin = self.plugin.clone();
        let name = plugin.manifest.name.clone();
        let mut first = true;
        loop {
            if !first {
                self.update(|s| s.restarts += 1);
            }
            first = false;
            self.update(|s| {
                s.state = SupervisorState::Connecting;
                s.connected_since_ms = None;
            });
            let ceilings = runtime.ceilings();
            // The slots are held for the instance's whole life.
            let permit = runtime
                .inner
                .slots
                .acquire(
                    &plugin.shared,
                    ceilings.per_plugin_instances,
                    ceilings.slot_wait,
                    "channel",
                )
                .await;
            let ended = match permit {
                Err(e) => Ended::Crashed(e),
                Ok(_permit) => match plugin.start(&runtime, &ceilings, Some(&self.wake)).await {
                    Err(e) => Ended::Crashed(e),
                    Ok(mut instance) => self.live(&runtime, &mut instance).await,
                },
            };
            match ended {
                Ended::Stop(done) => {
                    self.update(|s| s.state = SupervisorState::Stopped);
                    let _ = done.send(());
                    return;
                }
                Ended::Crashed(error) => {
                    tracing::warn!(channel = %name, %error, "channel instance stopped; restarting after a backoff");
                    let text = error.to_string();
                    self.update(|s| {
                        s.state = SupervisorState::Restarting;
                        s.last_error = Some(text.clone());
                        s.connected_since_ms = None;
                    });
                    if !self.pause(&text).await {
                        self.update(|s| s.state = SupervisorState::Stopped);
                        return;
                    }
                }
                // `live` reconnects by itself; it ends so only to restart.
                Ended::Disconnected(_) => {}
            }
        }
    }

    /// Connects and serves one instance until it crashes or is stopped;
    /// reconnects it (after a backoff) when the platform drops it.
    async fn live(&mut self, runtime: &Runtime, instance: &mut Instance) -> Ended {
        loop {
            self.update(|s| s.state = SupervisorState::Connecting);
            let config = self.config.clone();
            let connected = instance
                .enter(runtime, move |g, s| {
                    Box::pin(async move {
                        g.talon_plugin_channel_adapter()
                            .call_connect(s, &config)
                            .await
                    })
                })
                .await;
            let why = match connected {
                Err(e) => return Ended::Crashed(e),
                Ok(Err(e)) => describe_channel_error(&e),
                Ok(Ok(())) => {
                    self.backoff.reset();
                    let peak = instance.peak_memory() as u64;
                    self.update(|s| {
                        s.state = SupervisorState::Connected;
                        s.connected_since_ms = Some(now_ms());
                        s.detail = "connected".into();
                        s.peak_memory = peak;
                    });
                    match self.serve(runtime, instance).await {
                        Ended::Disconnected(why) => why,
                        other => return other,
                    }
                }
            };
            tracing::info!(channel = %self.plugin.manifest.name, reason = %why, "channel disconnected; reconnecting after a backoff");
            self.update(|s| {
                s.state = SupervisorState::Disconnected;
                s.last_error = Some(why.clone());
                s.connected_since_ms = None;
            });
            if !self.pause(&why).await {
                instance
                    .enter(runtime, |g, s| {
                        Box::pin(async move {
                            g.talon_plugin_channel_adapter().call_disconnect(s).await
                        })
                    })
                    .await
                    .ok();
                // Told to stop during the pause (the reply is already sent).
                let (done, _) = oneshot::channel();
                return Ended::Stop(done);
            }
        }
    }

    /// The connected loop: commands, then one `receive`, again.
    async fn serve(&mut self, runtime: &Runtime, instance: &mut Instance) -> Ended {
        let mut health_due = tokio::time::Instant::now() + HEALTH_EVERY;
        loop {
            while let Ok(command) = self.inbox.try_recv() {
                match command {
                    Command::Stop(done) => {
                        let _ = instance
                            .enter(runtime, |g, s| {
                                Box::pin(async move {
                                    g.talon_plugin_channel_adapter().call_disconnect(s).await
                                })
                            })
                            .await;
                        return Ended::Stop(done);
                    }
                    Command::Send(message, reply) => {
                        let sent = instance
                            .enter(runtime, move |g, s| {
                                Box::pin(async move {
                                    g.talon_plugin_channel_adapter()
                                        .call_send(s, &message)
                                        .await
                                })
                            })
                            .await;
                        match sent {
                            Err(e) => {
                                let _ = reply.send(Err(ChannelCallError::Crashed(e.clone())));
                                return Ended::Crashed(e);
                            }
                            Ok(answer) => {
                                let _ = reply.send(answer.map_err(ChannelCallError::Channel));
                            }
                        }
                    }
                    Command::Call(call) => {
                        if let Err(e) = call.run(runtime, instance).await {
                            return Ended::Crashed(e);
                        }
                    }
                    Command::Health(reply) => match self.check_health(runtime, instance).await {
                        Err(e) => {
                            let _ = reply.send(Err(ChannelCallError::Crashed(e.clone())));
                            return Ended::Crashed(e);
                        }
                        Ok(health) => {
                            let down = health.state != ConnectionState::Connected;
                            let detail = health.detail.clone();
                            let _ = reply.send(Ok(health));
                            if down {
                                return Ended::Disconnected(detail);
                            }
                        }
                    },
                }
            }
            if tokio::time::Instant::now() >= health_due {
                health_due = tokio::time::Instant::now() + HEALTH_EVERY;
                match self.check_health(runtime, instance).await {
                    Err(e) => return Ended::Crashed(e),
                    Ok(h) if h.state != ConnectionState::Connected => {
                        return Ended::Disconnected(h.detail);
                    }
                    Ok(_) => {}
                }
            }
            // Opened before the queue is looked at: a command queued after
            // the look wakes this receive.
            let until_health = health_due.saturating_duration_since(tokio::time::Instant::now());
            let wait = RECEIVE_WAIT.min(until_health);
            self.wake.open(wait);
            let wait = match self.inbox.is_empty() {
                true => wait.as_millis() as u32,
                false => 0,
            };
            let received = instance
                .enter(runtime, move |g, s| {
                    Box::pin(
                        async move { g.talon_plugin_channel_adapter().call_receive(s, wait).await },
                    )
                })
                .await;
            self.wake.close();
            match received {
                Err(e) => return Ended::Crashed(e),
                Ok(Err(e)) => return Ended::Disconnected(describe_channel_error(&e)),
                Ok(Ok(events)) => {
                    for event in events {
                        if self.events.send(event).await.is_err() {
                            // Nobody listens any more: the embedder is gone.
                            let (done, _) = oneshot::channel();
                            return Ended::Stop(done);
                        }
                    }
                }
            }
            let peak = instance.peak_memory() as u64;
            self.update(|s| s.peak_memory = peak);
        }
    }

    async fn check_health(
        &mut self,
        runtime: &Runtime,
        instance: &mut Instance,
    ) -> Result<ChannelHealth, GuardError> {
        let health = instance
            .enter(runtime, |g, s| {
                Box::pin(async move { g.talon_plugin_channel_adapter().call_health(s).await })
            })
            .await?;
        let detail = health.detail.clone();
        self.update(|s| s.detail = detail);
        Ok(health)
    }
}
