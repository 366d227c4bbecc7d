//! Channels: configured chat platforms, their status, tests, dead letters,
//! and an agent's deliveries.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use talon_kernel::channels::{
    Binding, ChannelKind, ChannelSpec, ChannelView, Outbound, OutboundStatus, TestOutcome,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::state::AppState;

/// `GET /api/channels`: LibreFang's `{channels, total}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    /// The configured channels, by name.
    pub channels: Vec<ChannelView>,
    /// How many.
    pub total: usize,
}

/// Body of `POST /api/channels/{name}/configure`. Configuration keys may be
/// given inside `config` or at the top level, as LibreFang's forms send
/// them (`{"token": "...", "agent_name": "..."}`); secret keys (those the
/// channel names) go to the secrets file and are never returned.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfigureBody {
    /// The channel plugin that runs it (default: the channel's name).
    #[serde(default)]
    pub plugin: Option<String>,
    /// The default agent, by id or name.
    #[serde(default)]
    pub agent: Option<String>,
    /// The default agent, by name (LibreFang's spelling).
    #[serde(default)]
    pub agent_name: Option<String>,
    /// The default agent, by id.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub agent_id: Option<Uuid>,
    /// Overrides per chat or sender; replaces the current list.
    #[serde(default)]
    pub bindings: Option<Vec<Binding>>,
    /// On or off (default on).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The configuration the channel's component receives.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<BTreeMap<String, serde_json::Value>>,
    /// Further configuration keys, merged into `config`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// Body of `POST /api/channels/{name}/test` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// A chat to send a test message to, once the channel is reachable.
    #[serde(default)]
    pub chat_id: Option<String>,
    /// The test message's text.
    #[serde(default)]
    pub text: Option<String>,
}

/// What a removal or reload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelChange {
    /// What happened.
    pub status: String,
    /// The channel, for a removal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Channels started, for a reload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<usize>,
}

/// An outbound message: a delivery receipt, a queued message or a dead letter.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelDelivery {
    /// Its id.
    pub message_id: Uuid,
    /// The channel it goes through.
    pub channel: String,
    /// The chat it goes to.
    pub recipient: String,
    /// The thread, if any.
    pub thread_id: Option<String>,
    /// `queued`, `sent` or `dead`.
    pub status: OutboundStatus,
    /// `reply`, `cron`, `trigger`, `notify` or `test`.
    pub origin: String,
    /// The text.
    pub text: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When it was queued.
    pub timestamp: DateTime<Utc>,
    /// When the platform took it.
    pub sent_at: Option<DateTime<Utc>>,
    /// The agent it comes from.
    pub agent_id: Option<Uuid>,
}

impl From<Outbound> for ChannelDelivery {
    fn from(m: Outbound) -> Self {
        Self {
            message_id: m.id,
            channel: m.channel,
            recipient: m.chat_id,
            thread_id: m.thread_id,
            status: m.status,
            origin: m.origin,
            text: m.text,
            attempts: m.attempts,
            error: m.last_error,
            timestamp: m.created_at,
            sent_at: m.sent_at,
            agent_id: m.agent_id,
        }
    }
}

/// `GET /api/agents/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentDeliveryList {
    /// The agent.
    pub agent_id: Uuid,
    /// How many are listed.
    pub count: usize,
    /// Its outbound messages, newest first.
    pub receipts: Vec<ChannelDelivery>,
}

/// `GET /api/agents/{id}/channels`, in LibreFang's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentChannels {
    /// The configured channels that route messages to the agent (it is
    /// their default agent or a binding names it).
    pub assigned: Vec<String>,
    /// Every configured channel.
    pub available: Vec<String>,
    /// Always `allowlist`: an agent hears only the channels bound to it
    /// (LibreFang's `all`, an empty list meaning every channel, does not
    /// exist in Talon).
    pub mode: String,
}

/// `GET /api/channels/{name}/dead-letters`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    /// The dead letters, newest first.
    pub dead_letters: Vec<ChannelDelivery>,
    /// How many.
    pub total: usize,
}

/// Query of `GET /api/agents/{id}/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
}

/// Lists configured channels with their status.
#[utoipa::path(get, path = "/api/channels", tag = "channels",
    responses((status = 200, description = "`{channels, total}`", body = ChannelList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ChannelList>, ApiError> {
    let channels = state.kernel.channels().list().await?;
    Ok(Json(ChannelList {
        total: channels.len(),
        channels,
    }))
}

/// The channel plugins that can be configured, with the JSON Schema of
/// their configuration and their secret keys (what the dashboard's
/// configure form is made from).
#[utoipa::path(get, path = "/api/channels/registry", tag = "channels",
    responses((status = 200, description = "The loaded channel plugins", body = Vec<ChannelKind>)))]
pub async fn registry(State(state): State<AppState>) -> Json<Vec<ChannelKind>> {
    Json(state.kernel.channels().registry())
}

/// One channel: its configuration (without secrets) and status.
#[utoipa::path(get, path = "/api/channels/{name}", tag = "channels",
    params(("name" = String, Path, description = "Channel name", pattern = "^[a-z0-9_-]{1,64}$")),
    responses((status = 200, description = "The channel", body = ChannelView),
              (status = 404, description = "No channel of that name is configured")))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    Ok(Json(state.kernel.channels().get(&name).await?))
}

/// Configures a channel and (re)starts it; secret keys go to the secrets file.
#[utoipa::path(post, path = "/api/channels/{name}/configure", tag = "channels",
    params(("name" = String, Path, description = "Channel name", pattern = "^[a-z0-9_-]{1,64}$")),
    request_body = ConfigureBody,
    responses((status = 200, description = "The channel as configured", body = ChannelView),
              (status = 400, description = "Bad name or configuration, or the plugin is not a channel"),
              (status = 404, description = "No such plugin or agent"),
              (status = 409, description = "The channel plugin is not loaded")))]
pub async fn configure(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<ConfigureBody>,
) -> Result<Json<ChannelView>, ApiError> {
    let agent = match (body.agent, body.agent_name, body.agent_id) {
        (Some(a), _, _) | (None, Some(a), _) => Some(a),
        (None, None, Some(id)) => Some(id.to_string()),
        (None, None, None) => None,
    };
    let mut config = body.config.unwrap_or_default();
    config.extend(body.fields);
    let config = (!config.is_empty()).then_some(config);
    let spec = ChannelSpec {
        plugin: body.plugin,
        config,
        agent,
        bindings: body.bindings,
        enabled: body.enabled,
    };
    Ok(Json(state.kernel.channels().configure(&name, spec).await?))
}

/// Stops a channel and removes its configuration and secrets.
#[utoipa::path(delete, path = "/api/channels/{name}/configure", tag = "channels",
    params(("name" = String, Path, description = "Channel name", pattern = "^[a-z0-9_-]{1,64}$")),
    responses((status = 200, description = "Removed", body = ChannelChange),
              (status = 404, description = "No channel of that name is configured")))]
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ChannelChange>, ApiError> {
    state.kernel.channels().remove(&name).await?;
    Ok(Json(ChannelChange {
        status: "removed".into(),
        name: Some(name),
        started: None,
    }))
}

/// Asks the channel, now, whether its platform is reachable; with a
/// `chat_id`, also sends a test message there.
#[utoipa::path(post, path = "/api/channels/{name}/test", tag = "channels",
    params(("name" = String, Path, description = "Channel name", pattern = "^[a-z0-9_-]{1,64}$")),
    request_body = TestBody,
    responses((status = 200, description = "What the test found", body = TestOutcome),
              (status = 404, description = "No channel of that name is configured")))]
pub async fn test(
    State(state): State<AppState>,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<TestBody>,
) -> Result<Json<TestOutcome>, ApiError> {
    let outcome = state
        .kernel
        .channels()
        .test(&name, body.chat_id, body.text)
        .await?;
    Ok(Json(outcome))
}

/// Stops every channel and starts the enabled ones again.
#[utoipa::path(post, path = "/api/channels/reload", tag = "channels",
    responses((status = 200, description = "Reloaded", body = ChannelChange)))]
pub async fn reload(State(state): State<AppState>) -> Result<Json<ChannelChange>, ApiError> {
    let started = state.kernel.channels().reload().await?;
    Ok(Json(ChannelChange {
        status: "reloaded".into(),
        name: None,
        started: Some(started),
    }))
}

/// A channel's dead letters: messages that used up their attempts.
#[utoipa::path(get, path = "/api/channels/{name}/dead-letters", tag = "channels",
    params(("name" = String, Path, description = "Channel name", pattern = "^[a-z0-9_-]{1,64}$")),
    responses((status = 200, description = "The dead letters, newest first", body = DeadLetterList),
              (status = 404, description = "No channel of that name is configured")))]
pub async fn dead_letters(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let channels = state.kernel.channels();
    channels.config(&name)?;
    let dead: Vec<ChannelDelivery> = channels
        .dead_letters(Some(name))
        .await?
        .into_iter()
        .map(ChannelDelivery::from)
        .collect();
    Ok(Json(DeadLetterList {
        total: dead.len(),
        dead_letters: dead,
    }))
}

/// Puts a dead letter back in the outbox with fresh attempts.
#[utoipa::path(post, path = "/api/channels/{name}/dead-letters/{id}/retry", tag = "channels",
    params(("name" = String, Path, description = "Channel name", pattern = "^[a-z0-9_-]{1,64}$"),
           ("id" = Uuid, Path, description = "Message id")),
    responses((status = 200, description = "Queued again", body = ChannelDelivery),
              (status = 404, description = "No such channel or dead letter")))]
pub async fn retry_dead_letter(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, Uuid)>,
) -> Result<Json<ChannelDelivery>, ApiError> {
    let channels = state.kernel.channels();
    channels.config(&name)?;
    let message = channels.retry_dead_letter(&name, id).await?;
    Ok(Json(message.into()))
}

/// An agent's outbound messages through channels, newest first.
#[utoipa::path(get, path = "/api/agents/{id}/deliveries", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id"), DeliveriesQuery),
    responses((status = 200, description = "`{agent_id, count, receipts}`", body = AgentDeliveryList),
              (status = 404, description = "No such agent")))]
pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<AgentDeliveryList>, ApiError> {
    state.kernel.agents().get(id).await?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let receipts: Vec<ChannelDelivery> = state
        .kernel
        .channels()
        .deliveries(id, limit)
        .await?
        .into_iter()
        .map(ChannelDelivery::from)
        .collect();
    Ok(Json(AgentDeliveryList {
        agent_id: id,
        count: receipts.len(),
        receipts,
    }))
}

/// Most headers handed to a channel's webhook handler.
const MAX_WEBHOOK_HEADERS: usize = 64;

/// A chat platform's push (Telegram, Matrix appservice, ...): the body is
/// handed to the channel's component, which checks the platform's
/// signature and answers; messages it carried are stored and answered like
/// received ones. Needs no API key: the component's check is the
/// authentication.
#[utoipa::path(post, path = "/api/channels/{name}/webhook", tag = "channels",
    params(("name" = String, Path, description = "Channel name", pattern = "^[a-z0-9_-]{1,64}$")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "The component's answer, as it made it"),
              (status = 400, description = "The component refused the request, or the channel takes no webhooks"),
              (status = 403, description = "The component refused the signature"),
              (status = 404, description = "No channel of that name is configured"),
              (status = 409, description = "The channel is not running"),
              (status = 413, description = "The body is over 1 MiB")))]
pub async fn webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .take(MAX_WEBHOOK_HEADERS)
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let answer = state
        .kernel
        .channels()
        .webhook(&name, "POST".into(), "/".into(), headers, body.to_vec())
        .await?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    for (key, value) in answer.headers {
        if let (Ok(key), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(key, value);
        }
    }
    Ok(response)
}

/// The channels that route messages to an agent, and all configured ones.
#[utoipa::path(get, path = "/api/agents/{id}/channels", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{assigned, available, mode}`", body = AgentChannels),
              (status = 404, description = "No such agent")))]
pub async fn agent_channels(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<AgentChannels>, ApiError> {
    state.kernel.agents().get(id).await?;
    let (assigned, available) = state.kernel.channels().of_agent(id);
    Ok(Json(AgentChannels {
        assigned,
        available,
        mode: "allowlist".into(),
    }))
}
