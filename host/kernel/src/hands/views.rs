//! Hands and their instances as the API shows them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use talon_runtime::hand::{HandPlugin, HandState, HandStatus};
use uuid::Uuid;

use super::records::{HandInstance, InstanceStatus};
use crate::plugins::{PermissionsView, PluginView};

/// What is known of a running instance: its supervisor's status, or why it
/// did not start.
pub(super) struct Live {
    pub(super) status: Option<HandStatus>,
    pub(super) start_error: Option<String>,
}

/// An installed hand.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandView {
    /// Its id: the plugin's name.
    pub id: String,
    /// Its name for people, as it describes itself (the id until loaded).
    pub name: String,
    /// One line for operators.
    pub description: String,
    /// The plugin's version.
    pub version: String,
    /// The plugin's state: `loaded`, `loading`, `disabled` or `error`.
    pub status: String,
    /// Why it is not loaded.
    pub error: Option<String>,
    /// The system prompt of the agent each activation creates.
    pub agent_role: Option<String>,
    /// How often it asks to be ticked, in seconds.
    pub tick_interval_secs: Option<u64>,
    /// The JSON Schema its settings must fit.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub settings_schema: Option<serde_json::Value>,
    /// Requested and granted permissions.
    pub permissions: PermissionsView,
    /// Its instances (active or paused).
    pub instances: Vec<Uuid>,
}

impl HandView {
    pub(super) fn new(
        plugin: PluginView,
        loaded: Option<&HandPlugin>,
        instances: Vec<Uuid>,
    ) -> Self {
        let info = loaded.map(|p| p.info());
        Self {
            id: plugin.name.clone(),
            name: info.map_or(plugin.name.clone(), |i| i.display_name.clone()),
            description: plugin.description,
            version: plugin.version,
            status: plugin.status.to_string(),
            error: plugin.error,
            agent_role: info.map(|i| i.agent_role.clone()),
            tick_interval_secs: info.map(|i| i.tick_interval_ms.div_ceil(1000).max(1)),
            settings_schema: info.and_then(|i| serde_json::from_str(&i.settings_schema).ok()),
            permissions: plugin.permissions,
            instances,
        }
    }
}

/// An activation of a hand.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceView {
    /// Its id.
    pub instance_id: Uuid,
    /// The hand it runs.
    pub hand_id: String,
    /// The agent it drives.
    pub agent_id: Uuid,
    /// `active`, `paused`, or `failed` (active, but its instance crashed and
    /// is restarting with backoff, refused its settings, or did not start;
    /// `last_error` says why).
    pub status: String,
    /// The supervisor's state: `activating`, `active`, `restarting`,
    /// `refused`, `stopped`, or `not_running`.
    pub state: String,
    /// Instances started after the first since the daemon started.
    pub restarts: u32,
    /// The last error: a crash, a refused activation, a failed tick.
    pub last_error: Option<String>,
    /// Ticks completed since the daemon started.
    pub ticks: u64,
    /// Ticks that failed or crashed since the daemon started.
    pub failed_ticks: u64,
    /// Scheduled ticks started since activation (kept across restarts).
    pub ticks_started: u64,
    /// When the last tick completed, in ms since the Unix epoch.
    pub last_tick_ms: Option<u64>,
    /// The occurrence of the last scheduled tick started.
    pub last_scheduled_at: DateTime<Utc>,
    /// When the next tick is due.
    pub next_tick_at: Option<DateTime<Utc>>,
    /// Seconds between ticks.
    pub tick_interval_secs: u64,
    /// Peak linear memory of the current instance, in bytes.
    pub peak_memory: u64,
    /// The settings it was activated with.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: serde_json::Value,
    /// When it was activated.
    pub activated_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

fn state_name(state: HandState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl InstanceView {
    pub(super) fn new(
        instance: HandInstance,
        live: Live,
        next_tick: Option<DateTime<Utc>>,
    ) -> Self {
        let paused = instance.status == InstanceStatus::Paused;
        let (state, failed, restarts, last_error, ticks, failed_ticks, last_tick_ms, peak) =
            match live.status {
                Some(s) => (
                    state_name(s.state),
                    matches!(s.state, HandState::Restarting | HandState::Refused),
                    s.restarts,
                    s.last_error,
                    s.ticks,
                    s.failed_ticks,
                    s.last_tick_ms,
                    s.peak_memory,
                ),
                None => (
                    "not_running".to_string(),
                    !paused,
                    0,
                    live.start_error,
                    0,
                    0,
                    None,
                    0,
                ),
            };
        let status = match (paused, failed) {
            (true, _) => "paused",
            (false, true) => "failed",
            (false, false) => "active",
        };
        Self {
            instance_id: instance.id,
            hand_id: instance.hand,
            agent_id: instance.agent_id,
            status: status.to_string(),
            state,
            restarts,
            last_error,
            ticks,
            failed_ticks,
            ticks_started: instance.ticks_started,
            last_tick_ms,
            last_scheduled_at: instance.anchor,
            next_tick_at: if paused { None } else { next_tick },
            tick_interval_secs: instance.interval_secs,
            peak_memory: peak,
            settings: instance.settings,
            activated_at: instance.activated_at,
            updated_at: instance.updated_at,
        }
    }
}

/// One of a hand's own figures.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricValue {
    /// The value, as the hand gives it.
    pub value: String,
    /// Always `text`: hands give their figures as text.
    pub format: String,
}

/// An instance with its hand's own figures (LibreFang's stats).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceStats {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstanceView,
    /// The hand's figures by label (empty when it could not be asked).
    pub metrics: BTreeMap<String, MetricValue>,
    /// Why the hand could not be asked for its figures.
    pub metrics_error: Option<String>,
}

impl InstanceStats {
    pub(super) fn new(
        instance: InstanceView,
        metrics: Result<Vec<(String, String)>, String>,
    ) -> Self {
        let (metrics, metrics_error) = match metrics {
            Ok(m) => (
                m.into_iter()
                    .map(|(label, value)| {
                        (
                            label,
                            MetricValue {
                                value,
                                format: "text".into(),
                            },
                        )
                    })
                    .collect(),
                None,
            ),
            Err(e) => (BTreeMap::new(), Some(e)),
        };
        Self {
            instance,
            metrics,
            metrics_error,
        }
    }
}

/// A hand's settings schema and its instances' settings.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsView {
    /// The hand.
    pub hand_id: String,
    /// The JSON Schema its settings must fit (absent until it loads).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub schema: Option<serde_json::Value>,
    /// Each instance's settings, by instance id.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub instances: BTreeMap<String, serde_json::Value>,
}

/// One thing a hand needs.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Requirement {
    /// What: `plugin` (its component loaded), `network` (a host),
    /// `memory` (a key pattern) or `env` (a variable).
    pub kind: String,
    /// The host, key pattern or variable (the hand's name for `plugin`).
    pub key: String,
    /// Whether it is met.
    pub satisfied: bool,
    /// Why not, or what stands in for it.
    pub detail: Option<String>,
}

/// What a hand needs and what is missing. Hands call no tools and use no
/// channels or model keys of their own (their agent's model is its own),
/// so their needs are their plugin and its permissions.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DepCheck {
    /// The hand.
    pub hand_id: String,
    /// Whether every requirement is met.
    pub satisfied: bool,
    /// Each requirement.
    pub requirements: Vec<Requirement>,
    /// The requirements not met, by key.
    pub missing: Vec<String>,
}

impl DepCheck {
    pub(super) fn new(hand: &str, plugin: &PluginView) -> Self {
        let mut requirements = vec![Requirement {
            kind: "plugin".into(),
            key: hand.to_string(),
            satisfied: plugin.status == "loaded",
            detail: (plugin.status != "loaded").then(|| {
                plugin
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("the plugin is {}", plugin.status))
            }),
        }];
        let (requested, granted) = (&plugin.permissions.requested, &plugin.permissions.granted);
        let lists = [
            ("network", &requested.network, &granted.network),
            ("memory", &requested.memory, &granted.memory),
            ("env", &requested.env, &granted.env),
        ];
        for (kind, asked, given) in lists {
            for key in asked {
                let satisfied = given.contains(key);
                let detail = match (satisfied, given.is_empty()) {
                    (true, _) => None,
                    (false, true) => Some("not granted".to_string()),
                    (false, false) => Some(format!(
                        "not granted as asked; granted: {}",
                        given.join(", ")
                    )),
                };
                requirements.push(Requirement {
                    kind: kind.into(),
                    key: key.clone(),
                    satisfied,
                    detail,
                });
            }
        }
        let missing: Vec<String> = requirements
            .iter()
            .filter(|r| !r.satisfied)
            .map(|r| format!("{}:{}", r.kind, r.key))
            .collect();
        Self {
            hand_id: hand.to_string(),
            satisfied: missing.is_empty(),
            requirements,
            missing,
        }
    }
}
