//! Event triggers: an agent is sent a prompt when a matching event happens.
//!
//! A trigger belongs to an agent and names a pattern (the reference's
//! `lifecycle`, `agent_spawned` with a name glob, `agent_terminated`, `all`,
//! `task_posted` with an assignee filter). One task subscribed to the event bus
//! matches each event against the enabled triggers (kept in memory, written
//! through to the store), renders `{{event}}` into the prompt template, records
//! the fire durably (count and time, so `max_fires` and `cooldown_secs` hold
//! across restarts), and sends the prompt to the target agent. Agents have no
//! channels yet, so every response is recorded as the fire's result
//! (`GET /api/triggers/{id}/fires`).
//!
//! A trigger never fires on an event about the agent it drives: an `all`
//! trigger would otherwise feed on the events its own prompts cause.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::KernelError;
use crate::audit::{self, AuditEntry, AuditEvent};
use crate::events::Event;
use crate::store::{self, Store, StoreError, TRIGGER_FIRES, TRIGGERS};

const TABLE: &str = "triggers.v1";
const FIRES_TABLE: &str = "trigger_fires.v1";

/// Longest prompt template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;
/// Cooldown of triggers that set none: bounds how fast two `all` triggers on
/// different agents can feed each other.
pub const DEFAULT_COOLDOWN_SECS: u64 = 0;
/// Most triggers one daemon holds.
pub const MAX_TRIGGERS: u64 = 10_000;
/// Fire records kept (oldest removed first).
pub const MAX_FIRES_KEPT: u64 = 10_000;

/// Which tasks a `task_posted` trigger fires on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssigneeMatch {
    /// Every posted task.
    #[default]
    Any,
    /// Only tasks assigned to the trigger's agent.
    #[serde(rename = "self")]
    SelfOnly,
}

fn star() -> String {
    "*".into()
}

/// What a trigger fires on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerPattern {
    /// Agent spawned or terminated.
    Lifecycle {},
    /// An agent whose name matches the glob (`*` any run, `?` one character) was spawned.
    AgentSpawned {
        /// Glob on the new agent's name.
        #[serde(default = "star")]
        name_pattern: String,
    },
    /// An agent was terminated.
    AgentTerminated {},
    /// Every event but audit entries and trigger fires.
    All {},
    /// A task was posted to the queue.
    TaskPosted {
        /// `any` (default) or `self`.
        #[serde(default)]
        assignee_match: AssigneeMatch,
    },
}

/// Session continuity for each fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// The agent's ongoing session.
    Persistent,
    /// A fresh session per fire.
    New,
}

/// A stored trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Its id.
    pub id: Uuid,
    /// The owning agent.
    pub agent_id: Uuid,
    /// What it fires on.
    pub pattern: TriggerPattern,
    /// The prompt; `{{event}}` is replaced by a description of the event.
    pub prompt_template: String,
    /// Disabled triggers do not fire.
    pub enabled: bool,
    /// Fires so far.
    pub fire_count: u64,
    /// Most fires allowed; 0 is unlimited.
    pub max_fires: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Minimum seconds between fires; `None` uses [`DEFAULT_COOLDOWN_SECS`].
    pub cooldown_secs: Option<u64>,
    /// Session continuity; `None` inherits the agent's default.
    pub session_mode: Option<SessionMode>,
    /// Another agent to send the prompt to instead of the owner.
    pub target_agent_id: Option<Uuid>,
    /// When it last fired.
    pub last_fired_at: Option<DateTime<Utc>>,
}

impl Trigger {
    /// The agent that receives the prompt.
    pub fn target(&self) -> Uuid {
        self.target_agent_id.unwrap_or(self.agent_id)
    }

    /// Whether this trigger fires on `event` at `now` (pattern, enabled,
    /// budget, cooldown, and never on events about its own target).
    pub fn wants(&self, event: &Event, now: DateTime<Utc>) -> bool {
        if !self.enabled || (self.max_fires > 0 && self.fire_count >= self.max_fires) {
            return false;
        }
        let cooldown = self.cooldown_secs.unwrap_or(DEFAULT_COOLDOWN_SECS);
        if let Some(last) = self.last_fired_at
            && cooldown > 0
            && (now - last).num_milliseconds() < (cooldown as i64) * 1000
        {
            return false;
        }
        if event_agent(event).is_some_and(|a| a == self.target().to_string()) {
            return false;
        }
        match (&self.pattern, event) {
            (
                TriggerPattern::Lifecycle {},
                Event::AgentSpawned { .. } | Event::AgentTerminated { .. },
            ) => true,
            (TriggerPattern::AgentSpawned { name_pattern }, Event::AgentSpawned { name, .. }) => {
                glob(name_pattern, name)
            }
            (TriggerPattern::AgentTerminated {}, Event::AgentTerminated { .. }) => true,
            (TriggerPattern::All {}, Event::Audit(_) | Event::TriggerFired { .. }) => false,
            (TriggerPattern::All {}, _) => true,
            (TriggerPattern::TaskPosted { assignee_match }, Event::TaskPosted { assignee, .. }) => {
                match assignee_match {
                    AssigneeMatch::Any => true,
                    AssigneeMatch::SelfOnly => {
                        assignee.as_deref() == Some(self.agent_id.to_string().as_str())
                    }
                }
            }
            _ => false,
        }
    }
}

/// The agent an event is about, if any.
fn event_agent(event: &Event) -> Option<&str> {
    match event {
        Event::AgentSpawned { agent_id, .. }
        | Event::AgentTerminated { agent_id, .. }
        | Event::ScheduleFired { agent_id, .. }
        | Event::TriggerFired { agent_id, .. } => Some(agent_id),
        Event::Audit(entry) => entry.agent_id.as_deref(),
        // A trigger's own agent finishing the turn it caused must not fire it again.
        Event::TurnCompleted { agent_id, .. } => Some(agent_id),
        Event::ToolCalled { agent_id, .. } => agent_id.as_deref(),
        // The poster, not the assignee: a trigger may well serve the assignee.
        Event::TaskPosted { posted_by, .. } => posted_by.as_deref(),
        _ => None,
    }
}

/// What `{{event}}` becomes.
pub fn describe(event: &Event) -> String {
    match event {
        Event::AgentSpawned { agent_id, name, .. } => {
            format!("Agent '{name}' (id: {agent_id}) was spawned")
        }
        Event::AgentTerminated { agent_id, .. } => format!("Agent {agent_id} was terminated"),
        Event::ScheduleFired {
            job_id,
            agent_id,
            scheduled_at,
            ..
        } => format!("Cron job {job_id} fired for agent {agent_id} (scheduled at {scheduled_at})"),
        Event::TaskPosted {
            task_id,
            title,
            assignee,
            ..
        } => format!(
            "Task '{title}' (id: {task_id}) was posted for {}",
            assignee.as_deref().unwrap_or("no one yet")
        ),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// `*` matches any run of characters, `?` one character; everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Renders the template for an event.
pub fn render(template: &str, event: &Event) -> String {
    template.replace("{{event}}", &describe(event))
}

/// What one fire did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerFire {
    /// Position in the fire log.
    pub seq: u64,
    /// The trigger.
    pub trigger_id: Uuid,
    /// The agent that was sent the prompt.
    pub agent_id: Uuid,
    /// The rendered prompt.
    pub prompt: String,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
    /// When the agent's turn ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `ok` or `error`.
    pub status: String,
    /// The agent's answer (there is no home channel to route it to yet).
    pub response: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `POST /api/triggers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerInput {
    /// The owning agent.
    pub agent_id: Uuid,
    /// What it fires on.
    pub pattern: TriggerPattern,
    /// The prompt, with `{{event}}`.
    pub prompt_template: String,
    /// Default true.
    pub enabled: Option<bool>,
    /// Default 0 (unlimited).
    pub max_fires: Option<u64>,
    /// Default: the engine's.
    pub cooldown_secs: Option<u64>,
    /// Default: the agent's.
    pub session_mode: Option<SessionMode>,
    /// Default: the owner.
    pub target_agent_id: Option<Uuid>,
}

/// Body of `PATCH /api/triggers/{id}`: omitted fields stay; `null` clears an override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerPatch {
    /// New pattern.
    pub pattern: Option<TriggerPattern>,
    /// New template.
    pub prompt_template: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New budget (0 unlimited).
    pub max_fires: Option<u64>,
    /// `null` reverts to the engine default.
    #[serde(default, deserialize_with = "nullable")]
    pub cooldown_secs: Option<Option<u64>>,
    /// `null` reverts to the agent default.
    #[serde(default, deserialize_with = "nullable")]
    pub session_mode: Option<Option<SessionMode>>,
    /// `null` sends to the owner again.
    #[serde(default, deserialize_with = "nullable")]
    pub target_agent_id: Option<Option<Uuid>>,
}

pub(crate) fn validate_template(template: &str) -> Result<(), KernelError> {
    if template.trim().is_empty() {
        return Err(KernelError::Invalid(
            "prompt_template must not be empty".into(),
        ));
    }
    if template.len() > MAX_TEMPLATE_BYTES {
        return Err(KernelError::Invalid(format!(
            "prompt_template is {} bytes; the limit is {MAX_TEMPLATE_BYTES}",
            template.len()
        )));
    }
    Ok(())
}

pub(crate) fn list(store: &Store) -> Result<Vec<Trigger>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(TRIGGERS)?;
    let mut out: Vec<Trigger> = Vec::new();
    for item in table.iter()? {
        let (_, v) = item?;
        out.push(store::decode(TABLE, v.value())?);
    }
    out.sort_by_key(|t| (t.created_at, t.id));
    Ok(out)
}

/// Writes a trigger (new or changed) with its audit entry.
pub(crate) fn put(
    store: &Store,
    trigger: &Trigger,
    event: Option<AuditEvent>,
    new: bool,
) -> Result<Option<AuditEntry>, KernelError> {
    let tx = store.db().begin_write().map_err(StoreError::from)?;
    let entry = {
        let mut table = tx.open_table(TRIGGERS).map_err(StoreError::from)?;
        if new && table.len().map_err(StoreError::from)? >= MAX_TRIGGERS {
            return Err(KernelError::Conflict(format!(
                "too many triggers (the limit is {MAX_TRIGGERS})"
            )));
        }
        let bytes = store::encode(TABLE, trigger)?;
        table
            .insert(trigger.id.to_string().as_str(), bytes.as_slice())
            .map_err(StoreError::from)?;
        event.map(|e| audit::append_in(&tx, e)).transpose()?
    };
    tx.commit().map_err(StoreError::from)?;
    Ok(entry)
}

pub(crate) fn remove(store: &Store, id: Uuid) -> Result<Option<AuditEntry>, StoreError> {
    let tx = store.db().begin_write()?;
    let entry = {
        let mut table = tx.open_table(TRIGGERS)?;
        let removed = table.remove(id.to_string().as_str())?.is_some();
        if removed {
            Some(audit::append_in(
                &tx,
                AuditEvent::new("trigger_deleted", format!("trigger {id}")),
            )?)
        } else {
            None
        }
    };
    tx.commit()?;
    Ok(entry)
}

/// Records a fire: the trigger's count and time, and the fire log entry, in
/// one transaction, before the agent is sent anything.
pub(crate) fn begin_fire(
    store: &Store,
    trigger: &Trigger,
    fire: &mut TriggerFire,
) -> Result<(), StoreError> {
    let tx = store.db().begin_write()?;
    {
        let mut table = tx.open_table(TRIGGERS)?;
        table.insert(
            trigger.id.to_string().as_str(),
            store::encode(TABLE, trigger)?.as_slice(),
        )?;
        let mut fires = tx.open_table(TRIGGER_FIRES)?;
        fire.seq = fires.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
        fires.insert(fire.seq, store::encode(FIRES_TABLE, &*fire)?.as_slice())?;
        if fires.len()? > MAX_FIRES_KEPT {
            let cut = fire.seq.saturating_sub(MAX_FIRES_KEPT);
            fires.retain_in(..=cut, |_, _| false)?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn finish_fire(store: &Store, fire: &TriggerFire) -> Result<(), StoreError> {
    let tx = store.db().begin_write()?;
    {
        let mut fires = tx.open_table(TRIGGER_FIRES)?;
        if fires.get(fire.seq)?.is_some() {
            fires.insert(fire.seq, store::encode(FIRES_TABLE, fire)?.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A trigger's fires, newest first, at most `limit`.
pub(crate) fn fires(
    store: &Store,
    trigger: Uuid,
    limit: usize,
) -> Result<Vec<TriggerFire>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(TRIGGER_FIRES)?;
    let mut out = Vec::new();
    for item in table.iter()?.rev() {
        let (_, v) = item?;
        let fire: TriggerFire = store::decode(FIRES_TABLE, v.value())?;
        if fire.trigger_id == trigger {
            out.push(fire);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawned(name: &str) -> Event {
        Event::AgentSpawned {
            agent_id: Uuid::new_v4().to_string(),
            name: name.into(),
            at: Utc::now(),
        }
    }

    fn trigger(pattern: TriggerPattern) -> Trigger {
        Trigger {
            id: Uuid::new_v4(),
            agent_id: Uuid::new_v4(),
            pattern,
            prompt_template: "Event: {{event}}".into(),
            enabled: true,
            fire_count: 0,
            max_fires: 0,
            created_at: Utc::now(),
            cooldown_secs: None,
            session_mode: None,
            target_agent_id: None,
            last_fired_at: None,
        }
    }

    #[test]
    fn patterns_parse_in_the_reference_format() {
        let p: TriggerPattern =
            serde_json::from_str(r#"{"agent_spawned": {"name_pattern": "web-*"}}"#).unwrap();
        assert_eq!(
            p,
            TriggerPattern::AgentSpawned {
                name_pattern: "web-*".into()
            }
        );
        let p: TriggerPattern =
            serde_json::from_str(r#"{"task_posted": {"assignee_match": "self"}}"#).unwrap();
        assert_eq!(
            p,
            TriggerPattern::TaskPosted {
                assignee_match: AssigneeMatch::SelfOnly
            }
        );
        for text in [
            r#"{"lifecycle": {}}"#,
            r#"{"agent_terminated": {}}"#,
            r#"{"all": {}}"#,
        ] {
            serde_json::from_str::<TriggerPattern>(text).unwrap();
        }
        assert!(serde_json::from_str::<TriggerPattern>(r#"{"sunrise": {}}"#).is_err());
    }

    #[test]
    fn matching_follows_pattern_budget_cooldown_and_self_exclusion() {
        let now = Utc::now();
        let mut t = trigger(TriggerPattern::AgentSpawned {
            name_pattern: "web-*".into(),
        });
        assert!(t.wants(&spawned("web-1"), now));
        assert!(!t.wants(&spawned("db-1"), now));
        t.max_fires = 2;
        t.fire_count = 2;
        assert!(!t.wants(&spawned("web-1"), now), "budget spent");
        t.fire_count = 0;
        t.cooldown_secs = Some(60);
        t.last_fired_at = Some(now - chrono::TimeDelta::seconds(10));
        assert!(!t.wants(&spawned("web-1"), now), "cooling down");
        t.last_fired_at = Some(now - chrono::TimeDelta::seconds(61));
        assert!(t.wants(&spawned("web-1"), now));
        let own = Event::AgentTerminated {
            agent_id: t.agent_id.to_string(),
            at: now,
        };
        let all = trigger(TriggerPattern::All {});
        assert!(!all.wants(
            &Event::AgentTerminated {
                agent_id: all.agent_id.to_string(),
                at: now
            },
            now
        ));
        assert!(all.wants(
            &Event::AgentTerminated {
                agent_id: "other".into(),
                at: now
            },
            now
        ));
        let own_turn = Event::TurnCompleted {
            agent_id: all.agent_id.to_string(),
            session_id: Uuid::new_v4().to_string(),
            status: crate::sessions::TurnStatus::Completed,
            at: now,
        };
        assert!(
            !all.wants(&own_turn, now),
            "an all trigger never feeds on its own turns"
        );
        let life = trigger(TriggerPattern::Lifecycle {});
        assert!(life.wants(&own, now));
        t.enabled = false;
        assert!(!t.wants(&spawned("web-1"), now));
    }

    #[test]
    fn globs_and_templates() {
        assert!(glob("*", "anything"));
        assert!(glob("a?c*", "abcdef"));
        assert!(!glob("a?c", "abcd"));
        assert!(glob("*-worker", "mail-worker"));
        let text = render("New: {{event}}!", &spawned("x"));
        assert!(text.starts_with("New: Agent 'x' (id: "));
        assert!(text.ends_with("was spawned!"));
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let p: TriggerPatch =
            serde_json::from_str(r#"{"cooldown_secs": null, "max_fires": 3}"#).unwrap();
        assert_eq!(p.cooldown_secs, Some(None));
        assert_eq!(p.session_mode, None);
        assert_eq!(p.max_fires, Some(3));
        let p: TriggerPatch = serde_json::from_str(r#"{"session_mode": "new"}"#).unwrap();
        assert_eq!(p.session_mode, Some(Some(SessionMode::New)));
    }
}

mod kernel_side {
    use std::sync::Arc;

    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::Kernel;
    use crate::kernel::blocking_kernel;

    impl Kernel {
        fn trigger_cache(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Trigger>> {
            match self.triggers.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            }
        }

        fn trigger_snapshot(&self) -> Vec<Trigger> {
            match self.triggers.read() {
                Ok(g) => g.clone(),
                Err(p) => p.into_inner().clone(),
            }
        }

        /// Loads the triggers and subscribes them to the event bus.
        pub(crate) async fn start_triggers(self: &Arc<Self>) -> Result<usize, KernelError> {
            let store = self.store.clone();
            let loaded = store::blocking(move || list(&store)).await?;
            let count = loaded.len();
            *self.trigger_cache() = loaded;
            let mut rx = self.events.subscribe();
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let event = match rx.recv().await {
                        Ok(e) => e,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(
                                missed = n,
                                "triggers fell behind the event bus; events missed"
                            );
                            continue;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    };
                    let Some(kernel) = weak.upgrade() else { break };
                    kernel.match_triggers(&event);
                }
            });
            Ok(count)
        }

        /// Claims every trigger that wants `event` (count and cooldown are
        /// updated under the lock, so one event fires a trigger once) and
        /// starts their fires.
        fn match_triggers(self: &Arc<Self>, event: &Event) {
            let now = Utc::now();
            let claimed: Vec<Trigger> = {
                let mut cache = self.trigger_cache();
                cache
                    .iter_mut()
                    .filter(|t| t.wants(event, now))
                    .map(|t| {
                        t.fire_count += 1;
                        t.last_fired_at = Some(now);
                        t.clone()
                    })
                    .collect()
            };
            for trigger in claimed {
                let kernel = self.clone();
                let prompt = render(&trigger.prompt_template, event);
                tokio::spawn(async move { kernel.fire_trigger(trigger, prompt).await });
            }
        }

        async fn fire_trigger(self: &Arc<Self>, trigger: Trigger, prompt: String) {
            let mut fire = TriggerFire {
                seq: 0,
                trigger_id: trigger.id,
                agent_id: trigger.target(),
                prompt: prompt.clone(),
                fired_at: trigger.last_fired_at.unwrap_or_else(Utc::now),
                finished_at: None,
                status: "running".into(),
                response: None,
                error: None,
            };
            let store = self.store.clone();
            let (t, f) = (trigger.clone(), fire.clone());
            let begun = store::blocking(move || {
                let mut f = f;
                begin_fire(&store, &t, &mut f).map(|_| f)
            })
            .await;
            match begun {
                Ok(f) => fire = f,
                Err(e) => {
                    tracing::error!(trigger_id = %trigger.id, error = %e, "cannot record a trigger fire; not firing");
                    return;
                }
            }
            self.events.publish(Event::TriggerFired {
                trigger_id: trigger.id.to_string(),
                agent_id: trigger.target().to_string(),
                at: fire.fired_at,
            });
            let new_session = trigger.session_mode == Some(SessionMode::New);
            let result = self.agent_turn(trigger.target(), prompt, new_session).await;
            fire.finished_at = Some(Utc::now());
            match result {
                Ok(response) => {
                    fire.status = "ok".into();
                    fire.response = Some(response);
                }
                Err(error) => {
                    fire.status = "error".into();
                    fire.error = Some(error);
                }
            }
            let store = self.store.clone();
            if let Err(e) = store::blocking(move || finish_fire(&store, &fire)).await {
                tracing::error!(trigger_id = %trigger.id, error = %e, "cannot record a trigger fire's result");
            }
        }

        /// Creates a trigger.
        pub async fn trigger_create(&self, input: TriggerInput) -> Result<Trigger, KernelError> {
            validate_template(&input.prompt_template)?;
            if let TriggerPattern::AgentSpawned { name_pattern } = &input.pattern
                && name_pattern.is_empty()
            {
                return Err(KernelError::Invalid(
                    "name_pattern must not be empty".into(),
                ));
            }
            self.agent(input.agent_id).await?;
            if let Some(target) = input.target_agent_id {
                self.agent(target).await?;
            }
            let trigger = Trigger {
                id: Uuid::new_v4(),
                agent_id: input.agent_id,
                pattern: input.pattern,
                prompt_template: input.prompt_template,
                enabled: input.enabled.unwrap_or(true),
                fire_count: 0,
                max_fires: input.max_fires.unwrap_or(0),
                created_at: Utc::now(),
                cooldown_secs: input.cooldown_secs,
                session_mode: input.session_mode,
                target_agent_id: input.target_agent_id,
                last_fired_at: None,
            };
            let store = self.store.clone();
            let stored = trigger.clone();
            let event = AuditEvent::new("trigger_created", format!("trigger {}", trigger.id))
                .agent(trigger.agent_id);
            let entry = blocking_kernel(move || put(&store, &stored, Some(event), true)).await?;
            if let Some(entry) = entry {
                self.events.publish(Event::Audit(entry));
            }
            self.trigger_cache().push(trigger.clone());
            Ok(trigger)
        }

        /// Every trigger, optionally of one agent.
        pub fn triggers(&self, agent: Option<Uuid>) -> Vec<Trigger> {
            self.trigger_snapshot()
                .into_iter()
                .filter(|t| agent.is_none_or(|a| a == t.agent_id))
                .collect()
        }

        /// One trigger, or `NotFound`.
        pub fn trigger(&self, id: Uuid) -> Result<Trigger, KernelError> {
            self.trigger_snapshot()
                .into_iter()
                .find(|t| t.id == id)
                .ok_or_else(|| KernelError::NotFound(format!("trigger {id} not found")))
        }

        /// Changes the fields given; `null` clears an override.
        pub async fn trigger_patch(
            &self,
            id: Uuid,
            patch: TriggerPatch,
        ) -> Result<Trigger, KernelError> {
            let mut t = self.trigger(id)?;
            if let Some(template) = patch.prompt_template {
                validate_template(&template)?;
                t.prompt_template = template;
            }
            if let Some(pattern) = patch.pattern {
                t.pattern = pattern;
            }
            if let Some(enabled) = patch.enabled {
                t.enabled = enabled;
            }
            if let Some(max) = patch.max_fires {
                t.max_fires = max;
            }
            if let Some(cooldown) = patch.cooldown_secs {
                t.cooldown_secs = cooldown;
            }
            if let Some(mode) = patch.session_mode {
                t.session_mode = mode;
            }
            if let Some(target) = patch.target_agent_id {
                if let Some(target) = target {
                    self.agent(target).await?;
                }
                t.target_agent_id = target;
            }
            // Counters may have moved since the read: keep the cache's.
            {
                let cache = self.trigger_cache();
                if let Some(current) = cache.iter().find(|c| c.id == id) {
                    t.fire_count = current.fire_count;
                    t.last_fired_at = current.last_fired_at;
                }
            }
            let store = self.store.clone();
            let stored = t.clone();
            let event =
                AuditEvent::new("trigger_updated", format!("trigger {id}")).agent(t.agent_id);
            let entry = blocking_kernel(move || put(&store, &stored, Some(event), false)).await?;
            if let Some(entry) = entry {
                self.events.publish(Event::Audit(entry));
            }
            let mut cache = self.trigger_cache();
            if let Some(slot) = cache.iter_mut().find(|c| c.id == id) {
                let (count, last) = (slot.fire_count, slot.last_fired_at);
                *slot = Trigger {
                    fire_count: count,
                    last_fired_at: last,
                    ..t.clone()
                };
            }
            Ok(t)
        }

        /// Deletes a trigger; false when it did not exist.
        pub async fn trigger_delete(&self, id: Uuid) -> Result<bool, KernelError> {
            let store = self.store.clone();
            let entry = store::blocking(move || remove(&store, id)).await?;
            self.trigger_cache().retain(|t| t.id != id);
            Ok(match entry {
                Some(entry) => {
                    self.events.publish(Event::Audit(entry));
                    true
                }
                None => false,
            })
        }

        /// A trigger's recorded fires, newest first.
        pub async fn trigger_fires(
            &self,
            id: Uuid,
            limit: usize,
        ) -> Result<Vec<TriggerFire>, KernelError> {
            self.trigger(id)?;
            let store = self.store.clone();
            Ok(store::blocking(move || fires(&store, id, limit)).await?)
        }
    }
}
