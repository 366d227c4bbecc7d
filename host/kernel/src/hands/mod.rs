//! Hands: installed `kind = "hand"` plugins activated as long-lived
//! instances, each driving an agent of its own and ticked on a schedule.
//!
//! Owns `hand_instances.v1` (each activation: hand, agent, settings, active
//! or paused, the last tick's occurrence). Uses `Plugins` (the loaded hand
//! components and the runtime that runs them), `Agents` (the agent an
//! activation creates), `Conversations` (ending its turns when it goes) and
//! `Automation` (a turn of the agent for `agent.send`).
//!
//! Guarantees: ticks come from the scheduler's engine (`talon-scheduler`),
//! with the daemon's missed-run policy; each tick's occurrence is committed
//! as the instance's anchor before the tick runs, so no occurrence is ticked
//! twice across a restart or `kill -9`. Active instances are activated again
//! at start with their stored settings; their state is what they keep in
//! memory keys, which are their agent's. A tick that traps or hangs is the
//! runtime supervisor's to restart with backoff; the instance shows it as
//! `failed` with the reason meanwhile. See docs/HANDS.md.

mod host;
pub mod records;
mod views;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use talon_runtime::hand::{Activation, HandHandle, HandPlugin};
use talon_scheduler::{Engine, Firing, Job, Lanes, Schedule};
use uuid::Uuid;

pub use records::{HandInstance, InstanceStatus};
pub use views::{DepCheck, HandView, InstanceStats, InstanceView, Requirement, SettingsView};

use crate::KernelError;
use crate::agents::Agents;
use crate::automation::Automation;
use crate::conversation::Conversations;
use crate::plugins::Plugins;
use crate::shared::Shared;
use crate::store::{self, audit::AuditEvent};

/// Most instances one daemon holds.
pub const MAX_INSTANCES: usize = 1024;
/// Longest settings, encoded as JSON, in bytes.
pub const MAX_SETTINGS_BYTES: usize = 64 * 1024;
/// Slowest tick interval an operator may ask for, in seconds (a week).
pub const MAX_INTERVAL_SECS: u64 = 7 * 24 * 3600;
/// Ticks of different instances running at once.
const PARALLEL_TICKS: usize = 16;
const LANE: &str = "hands";

/// What an activation asks for.
#[derive(Debug, Clone, Default)]
pub struct ActivateSpec {
    /// The settings, checked against the hand's schema.
    pub settings: serde_json::Value,
    /// The provider of the agent's model.
    pub provider: Option<String>,
    /// The agent's model.
    pub model: Option<String>,
    /// Seconds between ticks; at least the hand's own interval.
    pub tick_interval_secs: Option<u64>,
}

/// The hands domain.
pub struct Hands {
    shared: Arc<Shared>,
    agents: Arc<Agents>,
    plugins: Arc<Plugins>,
    conversations: Arc<Conversations>,
    automation: Arc<Automation>,
    engine: OnceLock<Engine>,
    /// The running supervisors, by instance.
    running: RwLock<BTreeMap<Uuid, Arc<HandHandle>>>,
    /// Why an active instance is not running (its plugin did not load).
    start_errors: RwLock<BTreeMap<Uuid, String>>,
    /// Serializes activations, pauses and removals.
    edit: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Hands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hands").finish_non_exhaustive()
    }
}

/// The interval of a hand that describes `tick_interval_ms`, slowed to
/// `asked` seconds when given: never faster than the hand asks.
fn interval_secs(plugin: &HandPlugin, asked: Option<u64>) -> Result<u64, KernelError> {
    let own = plugin.info().tick_interval_ms.div_ceil(1000).max(1);
    match asked {
        None => Ok(own.min(MAX_INTERVAL_SECS)),
        Some(secs) if secs < own || secs > MAX_INTERVAL_SECS => Err(KernelError::Invalid(format!(
            "tick_interval_secs: {secs} is out of range; this hand ticks at most every {own} s, \
             and at least once every {MAX_INTERVAL_SECS} s"
        ))),
        Some(secs) => Ok(secs),
    }
}

/// Checks settings against the hand's schema; the error names the field.
fn check_settings(plugin: &HandPlugin, settings: &serde_json::Value) -> Result<(), KernelError> {
    let size = serde_json::to_vec(settings).map(|v| v.len()).unwrap_or(0);
    if size > MAX_SETTINGS_BYTES {
        return Err(KernelError::TooLarge(format!(
            "the settings are {size} bytes; the limit is {MAX_SETTINGS_BYTES}"
        )));
    }
    plugin.check_settings(settings).map_err(|e| {
        let field = if e.field.is_empty() {
            "settings".to_string()
        } else {
            format!("settings.{}", e.field)
        };
        KernelError::Invalid(format!("{field}: {}", e.message))
    })
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

impl Hands {
    /// The domain; nothing runs until [`Hands::start`].
    pub(crate) fn new(
        shared: Arc<Shared>,
        agents: Arc<Agents>,
        plugins: Arc<Plugins>,
        conversations: Arc<Conversations>,
        automation: Arc<Automation>,
    ) -> Self {
        Self {
            shared,
            agents,
            plugins,
            conversations,
            automation,
            engine: OnceLock::new(),
            running: RwLock::default(),
            start_errors: RwLock::default(),
            edit: tokio::sync::Mutex::new(()),
        }
    }

    /// Starts the tick engine and activates every active instance again
    /// (after the plugins loaded); ticks missed while the daemon was down
    /// go by `[scheduler] missed_policy`. Returns how many run.
    pub async fn start(self: &Arc<Self>) -> Result<usize, KernelError> {
        let engine = Engine::start(
            self.shared.clock().clone(),
            Arc::new(host::TickDispatcher {
                hands: Arc::downgrade(self),
            }),
            Lanes::new([(LANE, PARALLEL_TICKS)]),
            Duration::from_secs(self.shared.config().scheduler.grace_secs),
        );
        if self.engine.set(engine).is_err() {
            return Err(KernelError::Conflict(
                "the hands are already started".into(),
            ));
        }
        let _edit = self.edit.lock().await;
        let mut started = 0;
        for instance in self.instances().await? {
            if instance.status != InstanceStatus::Active {
                continue;
            }
            match self.launch(&instance) {
                Ok(()) => started += 1,
                Err(error) => {
                    tracing::error!(instance = %instance.id, hand = %instance.hand, %error, "hand not started");
                    self.start_errors
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(instance.id, error.to_string());
                }
            }
        }
        Ok(started)
    }

    async fn instances(&self) -> Result<Vec<HandInstance>, KernelError> {
        let store = self.shared.store().clone();
        Ok(store::blocking(move || records::list(&store)).await?)
    }

    async fn instance(&self, id: Uuid) -> Result<HandInstance, KernelError> {
        self.instances()
            .await?
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| KernelError::NotFound(format!("no hand instance {id}")))
    }

    async fn put(&self, instance: &HandInstance) -> Result<(), KernelError> {
        let store = self.shared.store().clone();
        let stored = instance.clone();
        Ok(store::blocking(move || records::put(&store, &stored)).await?)
    }

    /// Starts the supervisor of `instance` and schedules its ticks.
    fn launch(&self, instance: &HandInstance) -> Result<(), KernelError> {
        let plugin = self.plugins.hand_plugin(&instance.hand)?;
        let host = Arc::new(host::InstanceHost {
            instance: instance.id,
            shared: self.shared.clone(),
            automation: self.automation.clone(),
        });
        let handle = HandHandle::start(
            self.plugins.runtime(),
            &plugin,
            Activation {
                agent_id: instance.agent_id.to_string(),
                settings: instance.settings.to_string(),
                host,
            },
        )
        .map_err(|e| KernelError::Invalid(format!("settings.{}: {}", e.field, e.message)))?;
        self.running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(instance.id, Arc::new(handle));
        self.start_errors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&instance.id);
        self.schedule(instance)
    }

    fn schedule(&self, instance: &HandInstance) -> Result<(), KernelError> {
        let Some(engine) = self.engine.get() else {
            return Ok(());
        };
        let schedule = Schedule::parse(&format!("every {}s", instance.interval_secs), None)
            .map_err(|e| KernelError::Invalid(format!("tick interval: {e}")))?;
        engine
            .upsert(Job {
                id: instance.id,
                schedule,
                origin: instance.activated_at,
                anchor: instance.anchor,
                missed: self.shared.config().scheduler.missed_policy,
                lane: LANE.into(),
            })
            .map_err(|e| KernelError::Conflict(format!("cannot schedule the hand: {e}")))?;
        Ok(())
    }

    /// Takes the instance off the schedule and deactivates it (it may save
    /// its state). With a tick in flight, that tick finishes and the
    /// instance is then dropped without `deactivate`: what it keeps in
    /// memory keys stays either way.
    async fn halt(&self, id: Uuid) {
        if let Some(engine) = self.engine.get() {
            engine.remove(id);
        }
        let handle = self
            .running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(handle) = handle {
            match Arc::try_unwrap(handle) {
                Ok(handle) => handle.stop().await,
                // A tick holds it: dropping the last handle aborts the supervisor.
                Err(shared) => drop(shared),
            }
        }
        self.start_errors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    fn handle(&self, id: Uuid) -> Option<Arc<HandHandle>> {
        self.running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// One scheduled tick: its occurrence committed first, then run.
    async fn scheduled_tick(&self, firing: Firing) {
        let store = self.shared.store().clone();
        let (id, at) = (firing.job_id, firing.scheduled_at);
        match store::blocking(move || records::begin_tick(&store, id, at)).await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(error) => {
                // Without a durable anchor the tick must not run.
                tracing::error!(instance = %id, %error, "cannot record a hand's tick; not ticking");
                return;
            }
        }
        let Some(handle) = self.handle(id) else {
            return;
        };
        if let Err(error) = handle.tick().await {
            tracing::debug!(instance = %id, %error, "hand tick failed");
        }
    }

    /// Activates hand `hand`: checks the settings against its schema (400
    /// naming the field), creates its agent with the hand's role as system
    /// prompt, stores the instance and starts it.
    pub async fn activate(
        &self,
        hand: &str,
        spec: ActivateSpec,
    ) -> Result<InstanceView, KernelError> {
        let plugin = self.plugins.hand_plugin(hand)?;
        check_settings(&plugin, &spec.settings)?;
        let interval = interval_secs(&plugin, spec.tick_interval_secs)?;
        let (Some(provider), Some(model)) = (spec.provider.as_deref(), spec.model.as_deref())
        else {
            return Err(KernelError::Invalid(
                "provider and model: name the model of the hand's agent (`provider`, `model`)"
                    .into(),
            ));
        };
        let _edit = self.edit.lock().await;
        if self.instances().await?.len() >= MAX_INSTANCES {
            return Err(KernelError::Conflict(format!(
                "at most {MAX_INSTANCES} hand instances; deactivate one first"
            )));
        }
        let id = Uuid::new_v4();
        let info = plugin.info();
        let manifest = format!(
            "name = {}\nversion = \"0.1.0\"\ndescription = {}\nsystem_prompt = {}\ntags = [\"hand\", {}]\n\n[model]\nprovider = {}\nmodel = {}\n",
            toml_string(&format!("{hand}-{}", &id.simple().to_string()[..8])),
            toml_string(&format!("Driven by the {} hand", info.display_name)),
            toml_string(&info.agent_role),
            toml_string(hand),
            toml_string(provider),
            toml_string(model),
        );
        let agent = self.agents.spawn(manifest).await?;
        let now = self.shared.now();
        let instance = HandInstance {
            id,
            hand: hand.to_string(),
            agent_id: agent.id,
            settings: spec.settings,
            status: InstanceStatus::Active,
            interval_secs: interval,
            anchor: now,
            ticks_started: 0,
            activated_at: now,
            updated_at: now,
        };
        if let Err(e) = self.put(&instance).await {
            let _ = self.agents.remove(agent.id).await;
            return Err(e);
        }
        let details = serde_json::json!({
            "hand": hand, "instance_id": id, "agent_id": agent.id, "tick_interval_secs": interval,
        });
        let mut event = AuditEvent::new("hand_activated", details.to_string());
        event.agent_id = Some(agent.id.to_string());
        self.shared.audit(event).await?;
        self.launch(&instance)?;
        self.view(instance)
    }

    /// Pauses an active instance: no more ticks, deactivated (it saves its
    /// state); its agent and memory stay.
    pub async fn pause(&self, id: Uuid) -> Result<InstanceView, KernelError> {
        self.set_status(id, InstanceStatus::Paused).await
    }

    /// Resumes a paused instance: activated again with its settings; ticks
    /// count from now (a pause is not missing ticks).
    pub async fn resume(&self, id: Uuid) -> Result<InstanceView, KernelError> {
        self.set_status(id, InstanceStatus::Active).await
    }

    async fn set_status(
        &self,
        id: Uuid,
        status: InstanceStatus,
    ) -> Result<InstanceView, KernelError> {
        let _edit = self.edit.lock().await;
        let mut instance = self.instance(id).await?;
        if instance.status == status {
            return self.view(instance);
        }
        if status == InstanceStatus::Active {
            // The plugin must be there before the change is stored.
            self.plugins.hand_plugin(&instance.hand)?;
        } else {
            self.halt(id).await;
        }
        let now = self.shared.now();
        instance.status = status;
        instance.updated_at = now;
        if status == InstanceStatus::Active {
            instance.anchor = instance.anchor.max(now);
        }
        self.put(&instance).await?;
        let event = match status {
            InstanceStatus::Active => "hand_resumed",
            InstanceStatus::Paused => "hand_paused",
        };
        let details = serde_json::json!({ "hand": instance.hand, "instance_id": id });
        self.shared
            .audit(AuditEvent::new(event, details.to_string()))
            .await?;
        if status == InstanceStatus::Active {
            self.launch(&instance)?;
        }
        self.view(instance)
    }

    /// Deactivates an instance for good: stops it and removes it with its
    /// agent (and so the agent's memory, the hand's state).
    pub async fn deactivate(&self, id: Uuid) -> Result<(), KernelError> {
        let _edit = self.edit.lock().await;
        let instance = self.instance(id).await?;
        self.halt(id).await;
        let store = self.shared.store().clone();
        store::blocking(move || records::delete(&store, id)).await?;
        if self.agents.remove(instance.agent_id).await? {
            self.conversations.forget_agent(instance.agent_id);
        }
        let details = serde_json::json!({
            "hand": instance.hand, "instance_id": id, "agent_id": instance.agent_id,
        });
        self.shared
            .audit(AuditEvent::new("hand_deactivated", details.to_string()))
            .await?;
        Ok(())
    }

    /// Replaces the settings of `hand`'s instance (`instance`, or its only
    /// one) and activates it again with them when it is active.
    pub async fn set_settings(
        &self,
        hand: &str,
        instance: Option<Uuid>,
        settings: serde_json::Value,
    ) -> Result<InstanceView, KernelError> {
        let plugin = self.plugins.hand_plugin(hand)?;
        check_settings(&plugin, &settings)?;
        let _edit = self.edit.lock().await;
        let of_hand: Vec<HandInstance> = self
            .instances()
            .await?
            .into_iter()
            .filter(|i| i.hand == hand)
            .collect();
        let mut target = match (instance, of_hand.len()) {
            (Some(id), _) => of_hand.into_iter().find(|i| i.id == id).ok_or_else(|| {
                KernelError::NotFound(format!("hand {hand} has no instance {id}"))
            })?,
            (None, 1) => of_hand
                .into_iter()
                .next()
                .ok_or_else(|| KernelError::NotFound(format!("hand {hand} has no instance")))?,
            (None, 0) => {
                return Err(KernelError::Conflict(format!(
                    "hand {hand} has no instance; activate it with these settings instead"
                )));
            }
            (None, n) => {
                return Err(KernelError::Invalid(format!(
                    "instance_id: hand {hand} has {n} instances; name one"
                )));
            }
        };
        let running = target.status == InstanceStatus::Active;
        if running {
            self.halt(target.id).await;
        }
        target.settings = settings;
        target.updated_at = self.shared.now();
        self.put(&target).await?;
        let details = serde_json::json!({ "hand": hand, "instance_id": target.id });
        self.shared
            .audit(AuditEvent::new(
                "hand_settings_changed",
                details.to_string(),
            ))
            .await?;
        if running {
            self.launch(&target)?;
        }
        self.view(target)
    }

    /// Uninstalls hand `hand`'s plugin; refused while it has instances.
    pub async fn uninstall(&self, hand: &str) -> Result<(), KernelError> {
        self.hand_entry(hand)?;
        let live = self
            .instances()
            .await?
            .into_iter()
            .filter(|i| i.hand == hand)
            .count();
        if live > 0 {
            return Err(KernelError::Conflict(format!(
                "hand {hand} has {live} instance(s); deactivate them first"
            )));
        }
        self.plugins
            .uninstall_plugin(hand, Some(talon_runtime::Kind::Hand))
            .await?;
        Ok(())
    }

    /// Loads every hand plugin again from its package and restarts their
    /// active instances on the new components. How many instances run.
    pub async fn reload(&self) -> Result<usize, KernelError> {
        let _edit = self.edit.lock().await;
        let active: Vec<HandInstance> = self
            .instances()
            .await?
            .into_iter()
            .filter(|i| i.status == InstanceStatus::Active)
            .collect();
        for instance in &active {
            self.halt(instance.id).await;
        }
        for name in self.plugins.hand_names() {
            if let Err(error) = self.plugins.reload_plugin(&name, None, false).await {
                tracing::warn!(hand = %name, %error, "hand plugin not reloaded");
            }
        }
        let mut started = 0;
        for instance in &active {
            match self.launch(instance) {
                Ok(()) => started += 1,
                Err(error) => {
                    self.start_errors
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(instance.id, error.to_string());
                }
            }
        }
        Ok(started)
    }

    fn status_of(&self, instance: &HandInstance) -> views::Live {
        let start_error = self
            .start_errors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&instance.id)
            .cloned();
        views::Live {
            status: self.handle(instance.id).map(|h| h.status()),
            start_error,
        }
    }

    fn view(&self, instance: HandInstance) -> Result<InstanceView, KernelError> {
        let live = self.status_of(&instance);
        let next_tick = self.engine.get().and_then(|e| e.next_run(instance.id));
        Ok(InstanceView::new(instance, live, next_tick))
    }

    /// Every instance (`active` only: those meant to run).
    pub async fn list_instances(
        &self,
        active_only: bool,
    ) -> Result<Vec<InstanceView>, KernelError> {
        let mut out = Vec::new();
        for instance in self.instances().await? {
            if active_only && instance.status != InstanceStatus::Active {
                continue;
            }
            out.push(self.view(instance)?);
        }
        Ok(out)
    }

    /// One instance with its figures and the hand's own metrics.
    pub async fn stats(&self, id: Uuid) -> Result<InstanceStats, KernelError> {
        let instance = self.instance(id).await?;
        let metrics = match self.handle(id) {
            Some(handle) => handle
                .metrics()
                .await
                .map(|m| m.into_iter().map(|m| (m.label, m.value)).collect())
                .map_err(|e| e.to_string()),
            None => Err(match instance.status {
                InstanceStatus::Paused => "the instance is paused".to_string(),
                InstanceStatus::Active => "the instance is not running".to_string(),
            }),
        };
        let view = self.view(instance)?;
        Ok(InstanceStats::new(view, metrics))
    }

    fn hand_entry(&self, hand: &str) -> Result<crate::plugins::PluginView, KernelError> {
        let view = self
            .plugins
            .plugin(hand)
            .map_err(|_| KernelError::NotFound(format!("no hand named {hand} is installed")))?;
        if view.kind != talon_runtime::Kind::Hand {
            return Err(KernelError::NotFound(format!(
                "no hand named {hand} is installed ({hand} is a {} plugin)",
                view.kind.as_str()
            )));
        }
        Ok(view)
    }

    /// One installed hand: its plugin, what it describes, its instances.
    pub async fn get(&self, hand: &str) -> Result<HandView, KernelError> {
        let plugin = self.hand_entry(hand)?;
        let loaded = self.plugins.hand_plugin(hand).ok();
        let instances = self
            .instances()
            .await?
            .into_iter()
            .filter(|i| i.hand == hand)
            .map(|i| i.id)
            .collect();
        Ok(HandView::new(plugin, loaded.as_ref(), instances))
    }

    /// Every installed hand.
    pub async fn list(&self) -> Result<Vec<HandView>, KernelError> {
        let mut out = Vec::new();
        for name in self.plugins.hand_names() {
            out.push(self.get(&name).await?);
        }
        Ok(out)
    }

    /// The hand's settings schema and each instance's settings.
    pub async fn settings(&self, hand: &str) -> Result<SettingsView, KernelError> {
        let view = self.get(hand).await?;
        let instances = self
            .instances()
            .await?
            .into_iter()
            .filter(|i| i.hand == hand)
            .map(|i| (i.id.to_string(), i.settings))
            .collect();
        Ok(SettingsView {
            hand_id: hand.to_string(),
            schema: view.settings_schema,
            instances,
        })
    }

    /// What the hand needs (its plugin loaded; the network hosts, memory
    /// keys and environment variables its manifest asks for) and which of
    /// those it was not granted.
    pub fn check_deps(&self, hand: &str) -> Result<DepCheck, KernelError> {
        let plugin = self.hand_entry(hand)?;
        Ok(DepCheck::new(hand, &plugin))
    }
}
