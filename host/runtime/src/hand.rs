//! Hands: components of the `hand` world (`talon:plugin@0.2.0`, or 0.1.0
//! through its adapter in `hand_adapter.rs`), autonomous capabilities that
//! live as long as they are activated, under a supervisor.
//!
//! A hand keeps its working state between ticks, so it keeps one [`Live`]
//! instance (`live.rs`, shared with channels), under the same guard as
//! every call: slots for its life, its memory limit for its life, fresh
//! fuel and a deadline for each entry. The deadline of a `tick` covers the
//! time its agent takes to answer `agent.send`, so a hand that talks to a
//! model needs a `timeout_ms` long enough for the model.
//!
//! The [supervisor](HandHandle) owns the instance in one task: it
//! instantiates and activates the hand with its settings, then runs the
//! embedder's commands (tick, metrics, stop) one at a time. The embedder
//! decides when to tick (the kernel's scheduler does); the supervisor never
//! ticks by itself. A call that traps, hangs or runs out of memory drops
//! the instance; a new one is activated again after an exponential backoff,
//! counting restarts and keeping the last error. Settings the hand refuses
//! (`invalid-settings`) stop it for good: retrying cannot help. Nothing in
//! one hand's task can reach another hand or the daemon.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::bindings::v0_2_0_hand::talon::plugin::agent;
use crate::ceilings::Ceilings;
use crate::error::{GuardError, LoadError};
use crate::guard::StoreSpec;
use crate::hand_adapter::{HandPre, HandWorld};
use crate::host::{CallState, Grants, truncate};
use crate::live::{Backoff, Live, now_ms};
use crate::manifest::{
    HAND_WIT_VERSION, HAND_WIT_VERSIONS, Kind, Manifest, Permissions, valid_name,
};
use crate::plugin::{CallContext, Cost, EffectiveLimits};
use crate::runtime::{Runtime, Tier};
use crate::schema::{ConfigSchema, SchemaError};
use crate::slots::PerPlugin;

pub use crate::hand_adapter::{HandError, HandInfo, Metric};

/// Longest message a hand may send to its agent or its owner, in bytes.
pub const MAX_AGENT_MESSAGE: usize = 64 * 1024;
/// Longest settings schema a hand may describe, in bytes.
const MAX_SCHEMA: usize = 64 * 1024;

/// The future a [`AgentHost`] answers with.
pub type HostFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the host does for a hand's `agent` import: the kernel implements it
/// over its agents (a normal agent, with its sessions, tools, budget and
/// audit) and its owner notifications.
pub trait AgentHost: Send + Sync + 'static {
    /// Sends `message` to the agent `agent_id` that hand `hand` drives and
    /// returns the agent's reply, or why there is none.
    fn send(
        &self,
        hand: &str,
        agent_id: &str,
        message: String,
    ) -> HostFuture<Result<String, String>>;
    /// Tells the owner of the agent `agent_id` what hand `hand` has to say.
    fn notify_owner(&self, hand: &str, agent_id: &str, message: String) -> HostFuture<()>;
}

/// What a hand instance's store knows to serve `agent`.
pub(crate) struct HandLink {
    host: Arc<dyn AgentHost>,
    hand: Arc<str>,
    agent_id: String,
}

impl agent::Host for CallState {
    async fn send(&mut self, message: String) -> Result<String, String> {
        let Some(link) = &self.hand else {
            return Err("no agent: only an activated hand has one".into());
        };
        if message.len() > MAX_AGENT_MESSAGE {
            return Err(format!(
                "the message is {} bytes; at most {MAX_AGENT_MESSAGE}",
                message.len()
            ));
        }
        link.host.send(&link.hand, &link.agent_id, message).await
    }

    async fn notify_owner(&mut self, message: String) {
        let Some(link) = &self.hand else {
            return;
        };
        let message = truncate(&message, MAX_AGENT_MESSAGE).to_string();
        link.host
            .notify_owner(&link.hand, &link.agent_id, message)
            .await
    }
}

/// A hand component compiled, linked and described, ready to activate.
#[derive(Clone)]
pub struct HandPlugin {
    inner: Arc<HandInner>,
}

struct HandInner {
    manifest: Manifest,
    grants: Arc<Grants>,
    env: Vec<(String, String)>,
    shared: Arc<PerPlugin>,
    pre: HandPre,
    info: HandInfo,
    /// `info.settings_schema`, compiled.
    schema: Option<ConfigSchema>,
}

impl HandPlugin {
    /// The manifest it was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// What the component says it is (read at load).
    pub fn info(&self) -> &HandInfo {
        &self.inner.info
    }

    /// Checks settings against the hand's schema, as [`HandHandle::start`]
    /// does; the error names the field.
    pub fn check_settings(&self, settings: &serde_json::Value) -> Result<(), SchemaError> {
        match &self.inner.schema {
            Some(schema) => schema.check(settings),
            None => Ok(()),
        }
    }
}

impl HandInner {
    /// Instantiates the hand under the guard's limits (the caller holds the
    /// slots); `link` serves `agent` and scopes memory to its agent.
    async fn start(
        &self,
        runtime: &Runtime,
        ceilings: &Ceilings,
        link: Option<HandLink>,
    ) -> Result<Live<HandWorld>, GuardError> {
        let spec = StoreSpec {
            env: &self.env,
            filesystem: false,
            grants: &self.grants,
            shared: &self.shared,
            sockets: None,
        };
        let ctx = CallContext {
            agent_id: link.as_ref().map(|l| l.agent_id.clone()),
            workspace: None,
        };
        let limits = EffectiveLimits::new(&self.manifest, ceilings);
        Live::start(runtime, &self.pre, spec, &ctx, limits, ceilings, |state| {
            state.hand = link
        })
        .await
    }
}

/// Checks what a hand says about itself; its settings schema, compiled.
fn check_info(info: &HandInfo) -> Result<ConfigSchema, LoadError> {
    let bad = |m: String| Err(LoadError::Describe(m));
    if !valid_name(&info.name) {
        return bad(format!(
            "the hand's name {:?}: use lowercase letters, digits, '_' or '-'",
            info.name
        ));
    }
    if info.settings_schema.len() > MAX_SCHEMA {
        return bad(format!("the settings schema is over {MAX_SCHEMA} bytes"));
    }
    if info.tick_interval_ms == 0 {
        return bad("the tick interval must be greater than 0".into());
    }
    ConfigSchema::compile(&info.settings_schema)
        .map_err(|e| LoadError::Describe(format!("the settings schema: {e}")))
}

impl Runtime {
    /// Loads a hand component: compiles (or loads from the cache) and links
    /// it against the `hand` world of its manifest's `wit` (0.2.0, or 0.1.0
    /// through its adapter), and asks it to describe itself in a
    /// short-lived instance with no agent (a 0.1.0 hand only its settings
    /// schema; the rest is its manifest's `[hand]`). `granted` must be a
    /// subset of what the manifest requests.
    pub async fn load_hand(
        &self,
        manifest: Manifest,
        component: Arc<Vec<u8>>,
        granted: Permissions,
        settings: BTreeMap<String, String>,
    ) -> Result<HandPlugin, LoadError> {
        if manifest.kind != Kind::Hand {
            return Err(LoadError::Manifest(format!(
                "kind {:?}: only a hand runs as a hand",
                manifest.kind.as_str()
            )));
        }
        manifest.validate()?;
        let (grants, env) = crate::plugin::admit(&manifest, &granted, settings)?;
        if granted.filesystem.is_some() {
            return Err(LoadError::Manifest(
                "filesystem: a hand has no workspace; it keeps state in memory keys".into(),
            ));
        }
        let (component, _cached) = self.compile(component).await?;
        // The manifest was validated, so its `wit` is one of these.
        let version = HAND_WIT_VERSIONS
            .into_iter()
            .find(|v| *v == manifest.wit)
            .unwrap_or(HAND_WIT_VERSION);
        let world_err = |e: wasmtime::Error| LoadError::World {
            world: "hand",
            version,
            detail: format!("{e:#}"),
        };
        let pre = self
            .engine_of(Tier::Optimized)?
            .linker
            .instantiate_pre(&component)
            .map_err(world_err)?;
        let pre = HandPre::new(&manifest.wit, pre).map_err(world_err)?;
        let mut inner = HandInner {
            shared: self.inner.slots.plugin(&manifest.name),
            grants,
            manifest,
            env,
            pre,
            info: HandInfo {
                name: String::new(),
                display_name: String::new(),
                settings_schema: String::new(),
                agent_role: String::new(),
                tick_interval_ms: 0,
            },
            schema: None,
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
        let manifest = inner.manifest.clone();
        let info = instance
            .enter(self, |g, s| {
                Box::pin(async move { g.describe(s, &manifest).await })
            })
            .await
            .map_err(LoadError::Guard)?;
        inner.schema = Some(check_info(&info)?);
        inner.info = info;
        Ok(HandPlugin {
            inner: Arc::new(inner),
        })
    }
}

/// What the supervisor is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandState {
    /// Starting an instance and activating it.
    Activating,
    /// Activated: ticks are carried out.
    Active,
    /// The instance trapped, hung or leaked, or activation failed; a new
    /// one is activated after a backoff. Ticks meanwhile are refused.
    Restarting,
    /// The hand refused its settings (`invalid-settings`); it stays
    /// stopped until it is activated again with other settings.
    Refused,
    /// Stopped by the embedder.
    Stopped,
}

/// What the supervisor knows about its hand, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct HandStatus {
    /// What the supervisor is doing.
    pub state: HandState,
    /// Instances started after the first (each after a trap, hang, leak
    /// or failed activation).
    pub restarts: u32,
    /// The last error: a crash, a refused activation or a failed tick.
    pub last_error: Option<String>,
    /// Ticks that completed.
    pub ticks: u64,
    /// Ticks the hand answered with an error, or that crashed.
    pub failed_ticks: u64,
    /// When the last tick completed, in ms since the Unix epoch.
    pub last_tick_ms: Option<u64>,
    /// What the last completed tick cost.
    pub last_tick_cost: Option<Cost>,
    /// Peak linear memory of the current instance, in bytes.
    pub peak_memory: u64,
}

/// Why a command could not be carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandCallError {
    /// The hand answered with an error.
    #[error("{}", describe_hand_error(.0))]
    Hand(HandError),
    /// The hand is not active now (the command was not attempted).
    #[error("the hand is not active ({0})")]
    NotActive(String),
    /// The call trapped, hung or ran out of memory; the instance restarts.
    #[error("the hand crashed: {0}")]
    Crashed(GuardError),
    /// The supervisor has stopped.
    #[error("the hand has stopped")]
    Stopped,
}

/// One line for a hand's error.
pub fn describe_hand_error(e: &HandError) -> String {
    match e {
        HandError::InvalidSettings(m) => format!("invalid settings: {m}"),
        HandError::NotActive(m) => format!("not active: {m}"),
        HandError::PermissionDenied(m) => format!("permission denied: {m}"),
        HandError::Failed(m) => format!("failed: {m}"),
    }
}

enum Command {
    Tick(oneshot::Sender<Result<Cost, HandCallError>>),
    Metrics(oneshot::Sender<Result<Vec<Metric>, HandCallError>>),
    Stop(oneshot::Sender<()>),
}

/// What an activation needs: the agent the hand drives, its settings
/// (JSON, validated by the embedder against the hand's schema) and the host
/// that serves `agent`.
pub struct Activation {
    /// The agent the hand drives; its memory is the hand's.
    pub agent_id: String,
    /// The settings `activate` receives, as JSON text.
    pub settings: String,
    /// Serves the hand's `agent` import.
    pub host: Arc<dyn AgentHost>,
}

/// A running hand: the supervisor's task and the way to talk to it.
/// Dropping it stops the task (without `deactivate`; use
/// [`HandHandle::stop`] for that).
pub struct HandHandle {
    commands: mpsc::Sender<Command>,
    status: Arc<Mutex<HandStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HandHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HandHandle {
    /// Activates `plugin` under a supervisor, once its settings fit the
    /// hand's schema (the hand is never started with settings that do not;
    /// the error names the field).
    pub fn start(
        runtime: &Runtime,
        plugin: &HandPlugin,
        activation: Activation,
    ) -> Result<Self, SchemaError> {
        let settings: serde_json::Value =
            serde_json::from_str(&activation.settings).map_err(|e| SchemaError {
                field: String::new(),
                message: format!("the settings are not JSON: {e}"),
            })?;
        plugin.check_settings(&settings)?;
        let (commands, inbox) = mpsc::channel(16);
        let status = Arc::new(Mutex::new(HandStatus {
            state: HandState::Activating,
            restarts: 0,
            last_error: None,
            ticks: 0,
            failed_ticks: 0,
            last_tick_ms: None,
            last_tick_cost: None,
            peak_memory: 0,
        }));
        let supervisor = Supervisor {
            runtime: runtime.clone(),
            plugin: plugin.inner.clone(),
            activation,
            inbox,
            status: status.clone(),
            backoff: Backoff::default(),
        };
        let task = tokio::spawn(supervisor.run());
        Ok(Self {
            commands,
            status,
            task,
        })
    }

    /// What the supervisor knows now.
    pub fn status(&self) -> HandStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Runs one tick now (waiting for the activation if it is under way);
    /// what it cost.
    pub async fn tick(&self) -> Result<Cost, HandCallError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Tick(reply))
            .await
            .map_err(|_| HandCallError::Stopped)?;
        answer.await.map_err(|_| HandCallError::Stopped)?
    }

    /// The hand's figures.
    pub async fn metrics(&self) -> Result<Vec<Metric>, HandCallError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Metrics(reply))
            .await
            .map_err(|_| HandCallError::Stopped)?;
        answer.await.map_err(|_| HandCallError::Stopped)?
    }

    /// Deactivates the hand (it may save its state) and stops the supervisor.
    pub async fn stop(self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Stop(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// Why an instance's life ended.
enum Ended {
    /// The instance trapped, hung or leaked, or activation failed: restart.
    Crashed(String),
    /// The hand refused its settings: stay stopped.
    Refused(String),
    /// The embedder asked to stop (or is gone).
    Stop(Option<oneshot::Sender<()>>),
}

struct Supervisor {
    runtime: Runtime,
    plugin: Arc<HandInner>,
    activation: Activation,
    inbox: mpsc::Receiver<Command>,
    status: Arc<Mutex<HandStatus>>,
    backoff: Backoff,
}

impl Supervisor {
    fn update(&self, change: impl FnOnce(&mut HandStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut status);
    }

    /// Answers a command that cannot be carried out now; `Some` if it was
    /// the order to stop.
    fn refuse(command: Command, why: &str) -> Option<oneshot::Sender<()>> {
        match command {
            Command::Stop(done) => return Some(done),
            Command::Tick(reply) => {
                let _ = reply.send(Err(HandCallError::NotActive(why.to_string())));
            }
            Command::Metrics(reply) => {
                let _ = reply.send(Err(HandCallError::NotActive(why.to_string())));
            }
        }
        None
    }

    /// Waits out the backoff, refusing commands meanwhile; `false` if told
    /// to stop.
    async fn pause(&mut self, why: &str) -> bool {
        let until = tokio::time::Instant::now() + self.backoff.next();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                command = self.inbox.recv() => match command {
                    None => return false,
                    Some(command) => if let Some(done) = Self::refuse(command, why) {
                        let _ = done.send(());
                        return false;
                    },
                },
            }
        }
    }

    async fn run(mut self) {
        let runtime = self.runtime.clone();
        let plugin = self.plugin.clone();
        let name: Arc<str> = plugin.manifest.name.as_str().into();
        let mut first = true;
        loop {
            if !first {
                self.update(|s| s.restarts += 1);
            }
            first = false;
            self.update(|s| s.state = HandState::Activating);
            let ceilings = runtime.ceilings();
            let link = HandLink {
                host: self.activation.host.clone(),
                hand: name.clone(),
                agent_id: self.activation.agent_id.clone(),
            };
            // The slots are held for the instance's whole life.
            let permit = runtime
                .inner
                .slots
                .acquire(
                    &plugin.shared,
                    ceilings.per_plugin_instances,
                    ceilings.slot_wait,
                    "hand",
                )
                .await;
            let ended = match permit {
                Err(e) => Ended::Crashed(e.to_string()),
                Ok(_permit) => match plugin.start(&runtime, &ceilings, Some(link)).await {
                    Err(e) => Ended::Crashed(e.to_string()),
                    Ok(mut instance) => self.live(&runtime, &mut instance).await,
                },
            };
            match ended {
                Ended::Stop(done) => {
                    self.update(|s| s.state = HandState::Stopped);
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                Ended::Refused(why) => {
                    tracing::warn!(hand = %name, reason = %why, "hand refused its settings");
                    self.update(|s| {
                        s.state = HandState::Refused;
                        s.last_error = Some(why.clone());
                    });
                    while let Some(command) = self.inbox.recv().await {
                        if let Some(done) = Self::refuse(command, &why) {
                            let _ = done.send(());
                            break;
                        }
                    }
                    self.update(|s| s.state = HandState::Stopped);
                    return;
                }
                Ended::Crashed(why) => {
                    tracing::warn!(hand = %name, reason = %why, "hand instance stopped; restarting after a backoff");
                    self.update(|s| {
                        s.state = HandState::Restarting;
                        s.last_error = Some(why.clone());
                    });
                    if !self.pause(&why).await {
                        self.update(|s| s.state = HandState::Stopped);
                        return;
                    }
                }
            }
        }
    }

    /// Activates one instance and serves commands until it crashes or is
    /// stopped.
    async fn live(&mut self, runtime: &Runtime, instance: &mut Live<HandWorld>) -> Ended {
        let settings = self.activation.settings.clone();
        let activated = instance
            .enter(runtime, move |g, s| {
                Box::pin(async move { g.activate(s, &settings).await })
            })
            .await;
        match activated {
            Err(e) => return Ended::Crashed(e.to_string()),
            Ok(Err(HandError::InvalidSettings(m))) => return Ended::Refused(m),
            Ok(Err(e)) => return Ended::Crashed(describe_hand_error(&e)),
            Ok(Ok(())) => {}
        }
        let peak = instance.peak_memory() as u64;
        self.update(|s| {
            s.state = HandState::Active;
            s.peak_memory = peak;
        });
        while let Some(command) = self.inbox.recv().await {
            match command {
                Command::Stop(done) => {
                    let _ = instance
                        .enter(runtime, |g, s| {
                            Box::pin(async move { g.deactivate(s).await })
                        })
                        .await;
                    return Ended::Stop(Some(done));
                }
                Command::Tick(reply) => {
                    let (ticked, cost) = instance
                        .enter_costed(runtime, |g, s| Box::pin(async move { g.tick(s).await }))
                        .await;
                    let peak = instance.peak_memory() as u64;
                    self.update(|s| s.peak_memory = peak);
                    match ticked {
                        Err(e) => {
                            self.update(|s| s.failed_ticks += 1);
                            let _ = reply.send(Err(HandCallError::Crashed(e.clone())));
                            return Ended::Crashed(e.to_string());
                        }
                        Ok(Err(e)) => {
                            let text = describe_hand_error(&e);
                            self.update(|s| {
                                s.failed_ticks += 1;
                                s.last_error = Some(text);
                            });
                            let _ = reply.send(Err(HandCallError::Hand(e)));
                        }
                        Ok(Ok(())) => {
                            self.backoff.reset();
                            self.update(|s| {
                                s.ticks += 1;
                                s.last_tick_ms = Some(now_ms());
                                s.last_tick_cost = Some(cost);
                            });
                            let _ = reply.send(Ok(cost));
                        }
                    }
                }
                Command::Metrics(reply) => {
                    let metrics = instance
                        .enter(runtime, |g, s| Box::pin(async move { g.metrics(s).await }))
                        .await;
                    match metrics {
                        Err(e) => {
                            let _ = reply.send(Err(HandCallError::Crashed(e.clone())));
                            return Ended::Crashed(e.to_string());
                        }
                        Ok(metrics) => {
                            let _ = reply.send(Ok(metrics));
                        }
                    }
                }
            }
        }
        // The handle is gone: nobody can tick or stop the hand any more.
        Ended::Stop(None)
    }
}
