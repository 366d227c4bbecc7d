//! Webhooks: outbound subscriptions, their queue and dead letters, and the
//! inbound hooks (`/api/hooks/wake`, `/api/hooks/agent`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use talon_kernel::conversation::MessageInput;
use talon_kernel::events::Event;
use talon_kernel::webhooks::{Delivery, TestResult, Webhook, WebhookKind, WebhookSpec};
use utoipa::ToSchema;
use uuid::Uuid;

use super::outcome::Outcome;
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::middleware::auth::keys_match;
use crate::state::AppState;

/// An outbound webhook without its secret (shown once, when made).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: Uuid,
    /// A name for operators.
    pub name: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types delivered; `*` (or none) is every event.
    pub events: Vec<String>,
    /// Off: nothing is queued for it.
    pub enabled: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(hook: Webhook) -> Self {
        Self {
            id: hook.id,
            name: hook.name,
            url: hook.url,
            events: hook.events,
            enabled: hook.enabled,
            created_at: hook.created_at,
            updated_at: hook.updated_at,
        }
    }
}

/// An event subscription in LibreFang's shape, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventSubscriptionView {
    /// Its id.
    pub id: Uuid,
    /// The event type delivered (`*` for all).
    pub event_type: Option<String>,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Off: nothing is queued for it.
    pub enabled: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Webhook> for EventSubscriptionView {
    fn from(hook: Webhook) -> Self {
        Self {
            id: hook.id,
            event_type: hook.events.into_iter().next(),
            url: hook.url,
            enabled: hook.enabled,
            created_at: hook.created_at,
            updated_at: hook.updated_at,
        }
    }
}

/// A subscription just made, with its secret: the only time it is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct WithSecret<T> {
    /// The subscription.
    #[serde(flatten)]
    pub subscription: T,
    /// The HMAC-SHA256 key deliveries are signed with.
    pub secret: String,
}

impl<T: From<Webhook>> From<Webhook> for WithSecret<T> {
    fn from(hook: Webhook) -> Self {
        Self {
            secret: hook.secret.clone(),
            subscription: hook.into(),
        }
    }
}

/// A queued delivery or a dead letter.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Its id, sent as `X-Talon-Delivery`.
    pub id: Uuid,
    /// The subscription.
    pub webhook_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// The JSON body sent (`null` if it is not JSON).
    pub payload: serde_json::Value,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            payload: serde_json::from_str(&d.body).unwrap_or_default(),
            id: d.id,
            webhook_id: d.webhook_id,
            event_type: d.event_type,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error,
            created_at: d.created_at,
        }
    }
}

/// The outbound webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Every one.
    pub webhooks: Vec<WebhookView>,
    /// How many.
    pub total: usize,
}

/// The event subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventSubscriptionList {
    /// Every one.
    pub subscriptions: Vec<EventSubscriptionView>,
    /// How many.
    pub total: usize,
}

/// The deliveries waiting for an attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Every one, oldest first.
    pub deliveries: Vec<DeliveryView>,
    /// How many.
    pub total: usize,
}

/// The deliveries that used up their attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    /// Every one, oldest first.
    pub dead_letters: Vec<DeliveryView>,
    /// How many.
    pub total: usize,
}

/// The answer of removing a webhook or an event subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionDeleted {
    /// Always `deleted`.
    pub status: Outcome,
    /// The subscription removed.
    pub id: Uuid,
}

/// The answer of `POST /api/hooks/wake`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WakeAccepted {
    /// Always `accepted`.
    pub status: Outcome,
    /// The agent sent the text, if one was named.
    pub agent_id: Option<Uuid>,
    /// The session its turn runs in, if an agent was named.
    pub session_id: Option<Uuid>,
}

/// The answer of `POST /api/hooks/agent`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentHookReply {
    /// Always `ok`.
    pub status: Outcome,
    /// The agent.
    pub agent_id: Uuid,
    /// The session the turn ran in.
    pub session_id: Uuid,
    /// The agent's reply.
    pub response: String,
}

/// Body of `POST`/`PUT /api/webhooks`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// A name for operators (at most 256 bytes).
    pub name: Option<String>,
    /// Where deliveries are POSTed: http:// or https:// (required on create).
    pub url: Option<String>,
    /// HMAC-SHA256 signing key (generated when absent on create; at most 256 bytes).
    pub secret: Option<String>,
    /// Event types (`turn_completed`, `approval_requested`, ...) or `*` (default).
    pub events: Option<Vec<String>>,
    /// On (default) or off.
    pub enabled: Option<bool>,
}

impl From<WebhookBody> for WebhookSpec {
    fn from(b: WebhookBody) -> Self {
        WebhookSpec {
            name: b.name,
            url: b.url,
            secret: b.secret,
            events: b.events,
            enabled: b.enabled,
        }
    }
}

/// Outbound webhooks.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    responses((status = 200, description = "Every outbound webhook", body = WebhookList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<WebhookList>, ApiError> {
    let hooks = state.kernel.webhooks().list(WebhookKind::Webhook).await?;
    let webhooks: Vec<_> = hooks.into_iter().map(WebhookView::from).collect();
    Ok(Json(WebhookList {
        total: webhooks.len(),
        webhooks,
    }))
}

/// Makes an outbound webhook; the answer holds its secret, the only time it is shown.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = WebhookBody,
    responses((status = 201, description = "The webhook with its `secret`", body = WithSecret<WebhookView>),
              (status = 400, description = "Missing or non-http(s) URL, bad event type, oversized field")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<WebhookBody>,
) -> Result<(StatusCode, Json<WithSecret<WebhookView>>), ApiError> {
    let hook = state
        .kernel
        .webhooks()
        .create(WebhookKind::Webhook, body.into())
        .await?;
    Ok((StatusCode::CREATED, Json(hook.into())))
}

/// One outbound webhook.
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook", body = WebhookView),
              (status = 404, description = "No such webhook")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<WebhookView>, ApiError> {
    let hook = state
        .kernel
        .webhooks()
        .get(WebhookKind::Webhook, id)
        .await?;
    Ok(Json(hook.into()))
}

/// Changes an outbound webhook (the fields given).
#[utoipa::path(put, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")), request_body = WebhookBody,
    responses((status = 200, description = "The webhook", body = WebhookView),
              (status = 400, description = "Invalid field"),
              (status = 404, description = "No such webhook")))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<WebhookBody>,
) -> Result<Json<WebhookView>, ApiError> {
    let hook = state
        .kernel
        .webhooks()
        .update(WebhookKind::Webhook, id, body.into())
        .await?;
    Ok(Json(hook.into()))
}

/// Removes an outbound webhook with its queued deliveries and dead letters.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "`{status: \"deleted\", id}`", body = SubscriptionDeleted),
              (status = 404, description = "No such webhook")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<SubscriptionDeleted>, ApiError> {
    state
        .kernel
        .webhooks()
        .delete(WebhookKind::Webhook, id)
        .await?;
    Ok(Json(SubscriptionDeleted {
        status: Outcome::Deleted,
        id,
    }))
}

/// Sends a signed `test` event now and reports what the receiver did.
#[utoipa::path(post, path = "/api/webhooks/{id}/test", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "What the receiver did", body = TestResult),
              (status = 404, description = "No such webhook")))]
pub async fn test(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<TestResult>, ApiError> {
    let result = state
        .kernel
        .webhooks()
        .test(WebhookKind::Webhook, id)
        .await?;
    Ok(Json(result))
}

/// Body of `POST`/`PUT /api/webhooks/events`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// The event type delivered (`agent_spawned`, `turn_completed`, ...; `*` for all).
    pub event_type: Option<String>,
    /// Where: http:// or https:// (required on create).
    pub url: Option<String>,
    /// HMAC-SHA256 signing key (generated when absent on create).
    pub secret: Option<String>,
    /// On (default) or off.
    pub enabled: Option<bool>,
}

impl From<EventBody> for WebhookSpec {
    fn from(b: EventBody) -> Self {
        WebhookSpec {
            name: None,
            url: b.url,
            secret: b.secret,
            events: b.event_type.map(|e| vec![e]),
            enabled: b.enabled,
        }
    }
}

/// Event subscriptions.
#[utoipa::path(get, path = "/api/webhooks/events", tag = "webhooks",
    responses((status = 200, description = "Every event subscription", body = EventSubscriptionList)))]
pub async fn list_events(
    State(state): State<AppState>,
) -> Result<Json<EventSubscriptionList>, ApiError> {
    let hooks = state.kernel.webhooks().list(WebhookKind::Event).await?;
    let subscriptions: Vec<_> = hooks.into_iter().map(EventSubscriptionView::from).collect();
    Ok(Json(EventSubscriptionList {
        total: subscriptions.len(),
        subscriptions,
    }))
}

/// Subscribes a URL to one event type.
#[utoipa::path(post, path = "/api/webhooks/events", tag = "webhooks", request_body = EventBody,
    responses((status = 201, description = "The subscription with its `secret`", body = WithSecret<EventSubscriptionView>),
              (status = 400, description = "Missing event type or URL, or invalid field")))]
pub async fn create_event(
    State(state): State<AppState>,
    Json(body): Json<EventBody>,
) -> Result<(StatusCode, Json<WithSecret<EventSubscriptionView>>), ApiError> {
    if body.event_type.is_none() {
        return Err(ApiError::BadRequest("`event_type` is required".into()));
    }
    let hook = state
        .kernel
        .webhooks()
        .create(WebhookKind::Event, body.into())
        .await?;
    Ok((StatusCode::CREATED, Json(hook.into())))
}

/// Changes an event subscription.
#[utoipa::path(put, path = "/api/webhooks/events/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Subscription id")), request_body = EventBody,
    responses((status = 200, description = "The subscription", body = EventSubscriptionView),
              (status = 400, description = "Invalid field"),
              (status = 404, description = "No such subscription")))]
pub async fn update_event(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<EventBody>,
) -> Result<Json<EventSubscriptionView>, ApiError> {
    let hook = state
        .kernel
        .webhooks()
        .update(WebhookKind::Event, id, body.into())
        .await?;
    Ok(Json(hook.into()))
}

/// Removes an event subscription.
#[utoipa::path(delete, path = "/api/webhooks/events/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Subscription id")),
    responses((status = 200, description = "`{status: \"deleted\", id}`", body = SubscriptionDeleted),
              (status = 404, description = "No such subscription")))]
pub async fn delete_event(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<SubscriptionDeleted>, ApiError> {
    state
        .kernel
        .webhooks()
        .delete(WebhookKind::Event, id)
        .await?;
    Ok(Json(SubscriptionDeleted {
        status: Outcome::Deleted,
        id,
    }))
}

/// Deliveries waiting for their first attempt or a retry.
#[utoipa::path(get, path = "/api/webhooks/deliveries", tag = "webhooks",
    responses((status = 200, description = "The queue, oldest first", body = DeliveryList)))]
pub async fn deliveries(State(state): State<AppState>) -> Result<Json<DeliveryList>, ApiError> {
    let queue = state.kernel.webhooks().queue().await?;
    let deliveries: Vec<_> = queue.into_iter().map(DeliveryView::from).collect();
    Ok(Json(DeliveryList {
        total: deliveries.len(),
        deliveries,
    }))
}

/// Deliveries that used up their attempts.
#[utoipa::path(get, path = "/api/webhooks/dead-letters", tag = "webhooks",
    responses((status = 200, description = "The dead letters, oldest first", body = DeadLetterList)))]
pub async fn dead_letters(State(state): State<AppState>) -> Result<Json<DeadLetterList>, ApiError> {
    let dead = state.kernel.webhooks().dead_letters().await?;
    let dead_letters: Vec<_> = dead.into_iter().map(DeliveryView::from).collect();
    Ok(Json(DeadLetterList {
        total: dead_letters.len(),
        dead_letters,
    }))
}

/// Puts a dead letter back on the queue with fresh attempts.
#[utoipa::path(post, path = "/api/webhooks/dead-letters/{id}/retry", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Delivery id")),
    responses((status = 202, description = "The delivery, queued again", body = DeliveryView),
              (status = 404, description = "No such dead letter")))]
pub async fn retry_dead_letter(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let delivery = state.kernel.webhooks().retry_dead_letter(id).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}

/// Checks an inbound hook's bearer token: 404 when the hook has no token
/// configured (it is off), 401 when the request's is missing or wrong.
fn check_token(headers: &HeaderMap, expected: &str, hook: &str) -> Result<(), ApiError> {
    if expected.is_empty() {
        return Err(ApiError::NotFound(format!(
            "the {hook} hook is off: set webhooks.{hook}_token in config.toml"
        )));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match presented {
        Some(token) if keys_match(token, expected) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized(format!("invalid {hook} hook token"))),
        None => Err(ApiError::Unauthorized(format!(
            "missing token: send `Authorization: Bearer <webhooks.{hook}_token>`"
        ))),
    }
}

/// Finds an agent by id or name.
async fn agent_id(state: &AppState, agent: &str) -> Result<Uuid, ApiError> {
    if let Ok(id) = Uuid::parse_str(agent) {
        return Ok(id);
    }
    state
        .kernel
        .agents()
        .id_by_name(agent.to_string())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no agent named `{agent}`")))
}

/// Longest text a hook accepts, in bytes.
const MAX_HOOK_TEXT: usize = 64 * 1024;

fn check_hook_text(text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() || text.len() > MAX_HOOK_TEXT {
        return Err(ApiError::BadRequest(format!(
            "the text must be non-empty and at most {MAX_HOOK_TEXT} bytes"
        )));
    }
    Ok(())
}

/// Body of `POST /api/hooks/wake`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WakeBody {
    /// What happened (at most 64 KiB).
    pub text: String,
    /// LibreFang's delivery mode; only `now` exists here.
    pub mode: Option<String>,
    /// An agent (id or name) to send the text to as a message.
    pub agent: Option<String>,
}

/// Publishes a `hook_wake` event (triggers and webhooks see it) and, with
/// `agent`, starts a turn of that agent with the text.
#[utoipa::path(post, path = "/api/hooks/wake", tag = "webhooks", request_body = WakeBody,
    responses((status = 200, description = "`{status: \"accepted\", agent_id, session_id}`", body = WakeAccepted),
              (status = 400, description = "Blank or oversized text"),
              (status = 401, description = "Missing or invalid bearer token"),
              (status = 404, description = "The hook is off, or no such agent")))]
pub async fn wake(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<WakeBody>,
) -> Result<Json<WakeAccepted>, ApiError> {
    check_token(&headers, &state.kernel.config().webhooks.wake_token, "wake")?;
    check_hook_text(&body.text)?;
    if body.mode.as_deref().is_some_and(|m| m != "now") {
        return Err(ApiError::BadRequest("mode must be `now`".into()));
    }
    let agent = match &body.agent {
        Some(agent) => Some(agent_id(&state, agent).await?),
        None => None,
    };
    state.kernel.events().publish(Event::HookWake {
        text: body.text.clone(),
        agent_id: agent.map(|a| a.to_string()),
        at: state.kernel.store().now(),
    });
    let session = match agent {
        Some(agent) => {
            let input = MessageInput {
                text: body.text,
                ..MessageInput::default()
            };
            // The turn runs in its own task; the caller does not wait for it.
            let started = state
                .kernel
                .conversations()
                .start_turn(agent, input, false)
                .await?;
            Some(started.session_id)
        }
        None => None,
    };
    Ok(Json(WakeAccepted {
        status: Outcome::Accepted,
        agent_id: agent,
        session_id: session,
    }))
}

/// Body of `POST /api/hooks/agent`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentHookBody {
    /// The agent (id or name).
    pub agent: String,
    /// The message (at most 64 KiB).
    pub message: String,
}

/// Sends a message to an agent and answers with its reply.
#[utoipa::path(post, path = "/api/hooks/agent", tag = "webhooks", request_body = AgentHookBody,
    responses((status = 200, description = "The agent's reply", body = AgentHookReply),
              (status = 400, description = "Blank or oversized message"),
              (status = 401, description = "Missing or invalid bearer token"),
              (status = 404, description = "The hook is off, or no such agent")))]
pub async fn agent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<AgentHookBody>,
) -> Result<Json<AgentHookReply>, ApiError> {
    check_token(
        &headers,
        &state.kernel.config().webhooks.agent_token,
        "agent",
    )?;
    check_hook_text(&body.message)?;
    let agent = agent_id(&state, &body.agent).await?;
    let input = MessageInput {
        text: body.message,
        ..MessageInput::default()
    };
    let reply = state
        .kernel
        .conversations()
        .send_message(agent, input)
        .await?;
    Ok(Json(AgentHookReply {
        status: Outcome::Ok,
        agent_id: agent,
        session_id: reply.session_id,
        response: reply.response,
    }))
}
