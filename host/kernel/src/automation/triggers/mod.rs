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

use super::delivery::Delivery;
use crate::KernelError;

mod service;
use crate::events::Event;
use crate::store::audit::{self, AuditEntry, AuditEvent};
use crate::store::tables::{TRIGGER_FIRES, TRIGGERS};
use crate::store::{self, Store, StoreError};

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// What a trigger fires on. Stored as `{"<kind>": {...}}`; LibreFang's
/// clients may also give a bare kind (`"lifecycle"`), which means the kind
/// with its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "snake_case",
    deny_unknown_fields,
    try_from = "PatternInput"
)]
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

/// A pattern is documented as it is read: a bare kind, or an object with
/// one key, the kind, holding its settings
/// (`{"task_posted": {"assignee_match": "self"}}`), no other key in either.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TriggerPattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let closed = |builder: ObjectBuilder| {
            builder
                .schema_type(Type::Object)
                .additional_properties(Some(
                    AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false),
                ))
        };
        let settings = [
            ("lifecycle", closed(ObjectBuilder::new())),
            (
                "agent_spawned",
                closed(ObjectBuilder::new()).property(
                    "name_pattern",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .description(Some("Glob on the new agent's name (default `*`)")),
                ),
            ),
            ("agent_terminated", closed(ObjectBuilder::new())),
            ("all", closed(ObjectBuilder::new())),
            (
                "task_posted",
                closed(ObjectBuilder::new()).property(
                    "assignee_match",
                    <AssigneeMatch as utoipa::PartialSchema>::schema(),
                ),
            ),
        ];
        let kinds: Vec<&str> = settings.iter().map(|(kind, _)| *kind).collect();
        let mut one_of = OneOfBuilder::new().item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(kinds))
                .description(Some("A kind with its defaults")),
        );
        for (kind, settings) in settings {
            one_of = one_of.item(
                closed(ObjectBuilder::new())
                    .property(kind, settings)
                    .required(kind),
            );
        }
        one_of.into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TriggerPattern {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <AssigneeMatch as utoipa::ToSchema>::schemas(schemas);
    }
}

/// A pattern as a body gives it: a bare kind or the tagged object.
#[derive(Deserialize)]
#[serde(untagged)]
enum PatternInput {
    /// `"task_posted"`.
    Kind(String),
    /// `{"task_posted": {"assignee_match": "self"}}`.
    Tagged(serde_json::Map<String, serde_json::Value>),
}

/// The tagged form, parsed by serde's derived rules (kept apart so that
/// [`TriggerPattern`]'s own `Deserialize` can accept the bare kind too).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum TaggedPattern {
    Lifecycle {},
    AgentSpawned {
        #[serde(default = "star")]
        name_pattern: String,
    },
    AgentTerminated {},
    All {},
    TaskPosted {
        #[serde(default)]
        assignee_match: AssigneeMatch,
    },
}

impl TryFrom<PatternInput> for TriggerPattern {
    type Error = serde_json::Error;

    fn try_from(input: PatternInput) -> Result<Self, Self::Error> {
        let tagged = match input {
            PatternInput::Kind(kind) => serde_json::from_value(serde_json::json!({ kind: {} }))?,
            PatternInput::Tagged(map) => serde_json::from_value(serde_json::Value::Object(map))?,
        };
        Ok(match tagged {
            TaggedPattern::Lifecycle {} => TriggerPattern::Lifecycle {},
            TaggedPattern::AgentSpawned { name_pattern } => {
                TriggerPattern::AgentSpawned { name_pattern }
            }
            TaggedPattern::AgentTerminated {} => TriggerPattern::AgentTerminated {},
            TaggedPattern::All {} => TriggerPattern::All {},
            TaggedPattern::TaskPosted { assignee_match } => {
                TriggerPattern::TaskPosted { assignee_match }
            }
        })
    }
}

/// Session continuity for each fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// The agent's ongoing session.
    Persistent,
    /// A fresh session per fire.
    New,
}

/// A stored trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Where each fire's answer is delivered, besides the fire record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
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
        Event::TurnCompleted { agent_id, .. } | Event::OwnerNotice { agent_id, .. } => {
            Some(agent_id)
        }
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TriggerInput {
    /// The owning agent.
    pub agent_id: Uuid,
    /// What it fires on.
    pub pattern: TriggerPattern,
    /// The prompt, with `{{event}}`.
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 16384))]
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
    /// Where each fire's answer is delivered: `{"kind": "channel",
    /// "channel": <configured channel>, "to": <chat>}`; default none.
    pub delivery: Option<Delivery>,
}

/// Body of `PATCH /api/triggers/{id}`: omitted fields stay; `null` clears an override.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TriggerPatch {
    /// New pattern.
    pub pattern: Option<TriggerPattern>,
    /// New template.
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 16384))]
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
    /// A new delivery target; `{"kind": "none"}` removes it.
    pub delivery: Option<Delivery>,
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
    let tx = store.db()?.begin_read()?;
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
    let tx = store.db()?.begin_write()?;
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
        event
            .map(|e| audit::append_in(&tx, store.now(), e))
            .transpose()?
    };
    tx.commit().map_err(StoreError::from)?;
    Ok(entry)
}

pub(crate) fn remove(store: &Store, id: Uuid) -> Result<Option<AuditEntry>, StoreError> {
    let tx = store.db()?.begin_write()?;
    let entry = {
        let mut table = tx.open_table(TRIGGERS)?;
        let removed = table.remove(id.to_string().as_str())?.is_some();
        if removed {
            Some(audit::append_in(
                &tx,
                store.now(),
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
    let tx = store.db()?.begin_write()?;
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
    let tx = store.db()?.begin_write()?;
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
    let tx = store.db()?.begin_read()?;
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
            delivery: None,
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
        assert!(serde_json::from_str::<TriggerPattern>(r#""sunrise""#).is_err());
    }

    #[test]
    fn a_bare_kind_is_the_kind_with_its_defaults() {
        let p: TriggerPattern = serde_json::from_str(r#""lifecycle""#).unwrap();
        assert_eq!(p, TriggerPattern::Lifecycle {});
        let p: TriggerPattern = serde_json::from_str(r#""task_posted""#).unwrap();
        assert_eq!(
            p,
            TriggerPattern::TaskPosted {
                assignee_match: AssigneeMatch::default()
            }
        );
        let p: TriggerPattern = serde_json::from_str(r#""agent_spawned""#).unwrap();
        assert_eq!(
            p,
            TriggerPattern::AgentSpawned {
                name_pattern: "*".into()
            }
        );
        // The stored form is unchanged.
        assert_eq!(
            serde_json::to_string(&TriggerPattern::Lifecycle {}).unwrap(),
            r#"{"lifecycle":{}}"#
        );
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
            status: crate::conversation::TurnStatus::Completed,
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
