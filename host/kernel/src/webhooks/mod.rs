//! Webhooks: bus events delivered to operator-configured URLs, signed.
//!
//! Owns `webhooks.v1` (subscriptions), `webhook_queue.v1` (deliveries due
//! or waiting for a retry) and `webhook_dead.v1` (deliveries that used up
//! their attempts). Uses only the foundation.
//!
//! Guarantee: an event is queued for every subscription that wants it in
//! one synced transaction right after it is published (events are published
//! after their own change commits), and a queued delivery is attempted until
//! a receiver answers 2xx or `webhooks.max_attempts` is reached, across
//! restarts and crashes. It is at least once: an attempt's outcome is
//! recorded without its own sync, so a crash right after a success may send
//! that delivery again (same `X-Talon-Delivery` id). An event published in
//! the instant before a crash, not yet queued, is not delivered; nor are
//! events a full bus drops (logged as a warning). See docs/WEBHOOKS.md.

pub mod deliver;
mod records;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use records::Outcome;
pub use records::{Delivery, Webhook, WebhookKind};

use crate::KernelError;
use crate::events::Event;
use crate::shared::{Shared, blocking_kernel};
use crate::store::{self, audit::AuditEvent};

/// Longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest name or secret, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;
/// Most event types one subscription may list.
pub const MAX_EVENTS: usize = 64;
/// Most deliveries attempted at once.
const PARALLEL: usize = 32;
/// Most events queued in one transaction.
const BATCH: usize = 512;

/// What a caller may set on a subscription; `None` keeps the current value
/// (or takes the default, on creation).
#[derive(Debug, Clone, Default)]
pub struct WebhookSpec {
    /// A name for operators.
    pub name: Option<String>,
    /// Where to POST (http or https).
    pub url: Option<String>,
    /// The signing key; generated when a new subscription has none.
    pub secret: Option<String>,
    /// Event types; `*` for all.
    pub events: Option<Vec<String>>,
    /// On or off.
    pub enabled: Option<bool>,
}

/// What a test delivery did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestResult {
    /// The receiver answered 2xx.
    pub success: bool,
    /// Its status, if it answered.
    pub status_code: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// The webhooks domain.
pub struct Webhooks {
    shared: Arc<Shared>,
    client: reqwest::Client,
    /// Rung when deliveries are queued, so the worker looks at once.
    queued: Notify,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

fn check_text(field: &str, value: &str) -> Result<(), KernelError> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(KernelError::Invalid(format!(
            "`{field}` must be at most {MAX_FIELD_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), KernelError> {
    if url.len() > MAX_URL_BYTES {
        return Err(KernelError::Invalid(format!(
            "`url` must be at most {MAX_URL_BYTES} bytes"
        )));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| KernelError::Invalid(format!("`url` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(KernelError::Invalid(
            "`url` must be an http:// or https:// URL with a host".into(),
        ));
    }
    Ok(())
}

fn check_events(events: &[String]) -> Result<(), KernelError> {
    if events.len() > MAX_EVENTS {
        return Err(KernelError::Invalid(format!(
            "`events` may list at most {MAX_EVENTS} event types"
        )));
    }
    for event in events {
        let ok = event == "*"
            || (!event.is_empty()
                && event.len() <= 64
                && event.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        if !ok {
            return Err(KernelError::Invalid(format!(
                "`events`: `{event}` is not an event type (snake_case, such as `turn_completed`, or `*`)"
            )));
        }
    }
    Ok(())
}

impl Webhooks {
    /// The domain; nothing is delivered until [`Webhooks::start`].
    pub fn new(shared: Arc<Shared>) -> Result<Self, KernelError> {
        let timeout = Duration::from_secs(shared.config().webhooks.timeout_secs.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| KernelError::Invalid(format!("cannot build the webhook client: {e}")))?;
        Ok(Self {
            shared,
            client,
            queued: Notify::new(),
        })
    }

    /// Subscriptions made through the API of `kind`.
    pub async fn list(&self, kind: WebhookKind) -> Result<Vec<Webhook>, KernelError> {
        let store = self.shared.store().clone();
        let all = store::blocking(move || records::webhooks(&store)).await?;
        Ok(all.into_iter().filter(|h| h.kind == kind).collect())
    }

    /// One subscription of `kind`.
    pub async fn get(&self, kind: WebhookKind, id: Uuid) -> Result<Webhook, KernelError> {
        self.list(kind)
            .await?
            .into_iter()
            .find(|h| h.id == id)
            .ok_or_else(|| KernelError::NotFound(format!("webhook {id} not found")))
    }

    /// Makes a subscription; `url` is required.
    pub async fn create(
        &self,
        kind: WebhookKind,
        spec: WebhookSpec,
    ) -> Result<Webhook, KernelError> {
        let url = spec
            .url
            .ok_or_else(|| KernelError::Invalid("`url` is required".into()))?;
        check_url(&url)?;
        let name = spec.name.unwrap_or_default();
        check_text("name", &name)?;
        let secret = match spec.secret {
            Some(s) if !s.is_empty() => s,
            _ => hex::encode(Uuid::new_v4().as_bytes()) + &hex::encode(Uuid::new_v4().as_bytes()),
        };
        check_text("secret", &secret)?;
        let events = spec.events.unwrap_or_else(|| vec!["*".into()]);
        check_events(&events)?;
        let now = self.shared.now();
        let hook = Webhook {
            id: Uuid::now_v7(),
            kind,
            name,
            url,
            secret,
            events,
            enabled: spec.enabled.unwrap_or(true),
            created_at: now,
            updated_at: now,
        };
        self.save(&hook, "webhook_created").await?;
        Ok(hook)
    }

    /// Changes a subscription.
    pub async fn update(
        &self,
        kind: WebhookKind,
        id: Uuid,
        spec: WebhookSpec,
    ) -> Result<Webhook, KernelError> {
        let mut hook = self.get(kind, id).await?;
        if let Some(url) = spec.url {
            check_url(&url)?;
            hook.url = url;
        }
        if let Some(name) = spec.name {
            check_text("name", &name)?;
            hook.name = name;
        }
        if let Some(secret) = spec.secret {
            check_text("secret", &secret)?;
            if secret.is_empty() {
                return Err(KernelError::Invalid("`secret` must not be empty".into()));
            }
            hook.secret = secret;
        }
        if let Some(events) = spec.events {
            check_events(&events)?;
            hook.events = events;
        }
        if let Some(enabled) = spec.enabled {
            hook.enabled = enabled;
        }
        hook.updated_at = self.shared.now();
        self.save(&hook, "webhook_updated").await?;
        Ok(hook)
    }

    async fn save(&self, hook: &Webhook, what: &str) -> Result<(), KernelError> {
        let store = self.shared.store().clone();
        let stored = hook.clone();
        store::blocking(move || records::put_webhook(&store, &stored)).await?;
        // The URL is recorded, never the secret.
        self.shared
            .audit(AuditEvent::new(
                what,
                format!("webhook {} to {}", hook.id, hook.url),
            ))
            .await?;
        Ok(())
    }

    /// Removes a subscription with its queued deliveries and dead letters.
    pub async fn delete(&self, kind: WebhookKind, id: Uuid) -> Result<(), KernelError> {
        self.get(kind, id).await?;
        let store = self.shared.store().clone();
        store::blocking(move || records::remove_webhook(&store, id)).await?;
        self.shared
            .audit(AuditEvent::new("webhook_deleted", format!("webhook {id}")))
            .await?;
        Ok(())
    }

    /// Sends a signed `test` event to a subscription now, outside the queue.
    pub async fn test(&self, kind: WebhookKind, id: Uuid) -> Result<TestResult, KernelError> {
        let hook = self.get(kind, id).await?;
        let now = self.shared.now();
        let delivery_id = Uuid::now_v7();
        let body = serde_json::json!({
            "id": delivery_id,
            "event_type": "test",
            "created_at": now,
            "data": {"type": "test", "webhook_id": hook.id},
        });
        let delivery = Delivery {
            id: delivery_id,
            webhook_id: hook.id,
            event_type: "test".into(),
            body: body.to_string(),
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
        };
        let started = Instant::now();
        let outcome = deliver::attempt(
            &self.client,
            &hook.url,
            &hook.secret,
            &delivery,
            now.timestamp(),
        )
        .await;
        let duration_ms = started.elapsed().as_millis() as u64;
        Ok(match outcome {
            Ok(status) => TestResult {
                success: true,
                status_code: Some(status),
                error: None,
                duration_ms,
            },
            Err(error) => TestResult {
                success: false,
                status_code: None,
                error: Some(error),
                duration_ms,
            },
        })
    }

    /// Deliveries waiting for an attempt, oldest first.
    pub async fn queue(&self) -> Result<Vec<Delivery>, KernelError> {
        let store = self.shared.store().clone();
        Ok(store::blocking(move || records::queued(&store)).await?)
    }

    /// Deliveries that used up their attempts, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<Delivery>, KernelError> {
        let store = self.shared.store().clone();
        Ok(store::blocking(move || records::dead_letters(&store)).await?)
    }

    /// Puts a dead letter back on the queue with fresh attempts.
    pub async fn retry_dead_letter(&self, id: Uuid) -> Result<Delivery, KernelError> {
        let store = self.shared.store().clone();
        let now = self.shared.now();
        let delivery = blocking_kernel(move || records::revive(&store, id, now)).await?;
        self.queued.notify_one();
        Ok(delivery)
    }

    /// Starts queueing bus events and delivering the queue (what a previous
    /// run left included). Call once.
    pub fn start(self: &Arc<Self>) {
        let events = self.shared.events().subscribe();
        tokio::spawn(Arc::clone(self).queue_events(events));
        tokio::spawn(Arc::clone(self).deliver_queue());
    }

    /// Takes events off the bus at once, so a slow synced commit never makes
    /// the bus drop them, and queues them for the subscriptions that want
    /// them, in batches.
    async fn queue_events(self: Arc<Self>, mut events: broadcast::Receiver<Event>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        if tx.send(event).is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(lost)) => {
                        tracing::warn!(
                            lost,
                            "webhooks fell behind the event bus; events were not queued"
                        );
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.enqueue(batch).await {
                tracing::warn!(error = %e, "cannot queue webhook deliveries");
            }
        }
    }

    async fn enqueue(&self, events: Vec<Event>) -> Result<(), KernelError> {
        let store = self.shared.store().clone();
        let hooks = store::blocking(move || records::webhooks(&store)).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        let now = self.shared.now();
        let mut deliveries = Vec::new();
        for event in &events {
            let event_type = event.type_name();
            for hook in hooks.iter().filter(|h| h.wants(&event_type)) {
                let id = Uuid::now_v7();
                let body = serde_json::json!({
                    "id": id,
                    "event_type": event_type,
                    "created_at": now,
                    "data": event,
                });
                deliveries.push(Delivery {
                    id,
                    webhook_id: hook.id,
                    event_type: event_type.clone(),
                    body: body.to_string(),
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                    created_at: now,
                });
            }
        }
        if deliveries.is_empty() {
            return Ok(());
        }
        let store = self.shared.store().clone();
        store::blocking(move || records::enqueue(&store, &deliveries)).await?;
        self.queued.notify_one();
        Ok(())
    }

    /// Attempts due deliveries, records each outcome, and sleeps until the
    /// next is due or something is queued.
    async fn deliver_queue(self: Arc<Self>) {
        loop {
            let next = match self.deliver_due().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery failed to read or record the queue");
                    Some(Duration::from_secs(1))
                }
            };
            let notified = self.queued.notified();
            match next {
                Some(wait) if wait.is_zero() => continue,
                Some(wait) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// One round over the queue: the wait until the next due delivery
    /// (zero when more are due now), or `None` when the queue is empty.
    async fn deliver_due(&self) -> Result<Option<Duration>, KernelError> {
        let store = self.shared.store().clone();
        let (queue, hooks) =
            store::blocking(move || Ok((records::queued(&store)?, records::webhooks(&store)?)))
                .await?;
        let now = self.shared.now();
        let (due, later): (Vec<Delivery>, Vec<Delivery>) =
            queue.into_iter().partition(|d| d.next_attempt_at <= now);
        if due.is_empty() {
            return Ok(later
                .iter()
                .map(|d| (d.next_attempt_at - now).to_std().unwrap_or_default())
                .min());
        }
        let hooks: HashMap<Uuid, Webhook> = hooks.into_iter().map(|h| (h.id, h)).collect();
        let config = self.shared.config().webhooks.clone();
        let base = Duration::from_millis(config.backoff_base_ms);
        let cap = Duration::from_secs(config.backoff_cap_secs);
        let mut outcomes = Vec::with_capacity(due.len());
        for chunk in due.chunks(PARALLEL) {
            let attempts = chunk.iter().map(|delivery| {
                let hook = hooks.get(&delivery.webhook_id);
                async move {
                    let Some(hook) = hook else {
                        // Its subscription is gone: nothing to deliver to.
                        return (delivery.id, Outcome::Delivered);
                    };
                    let sent = deliver::attempt(
                        &self.client,
                        &hook.url,
                        &hook.secret,
                        delivery,
                        self.shared.now().timestamp(),
                    )
                    .await;
                    let outcome = match sent {
                        Ok(_) => Outcome::Delivered,
                        Err(error) => {
                            let mut failed = delivery.clone();
                            failed.attempts += 1;
                            failed.last_error = Some(error);
                            if failed.attempts >= config.max_attempts {
                                Outcome::Dead(failed)
                            } else {
                                let wait = deliver::backoff(failed.attempts, base, cap);
                                failed.next_attempt_at = self.shared.now()
                                    + chrono::Duration::from_std(wait)
                                        .unwrap_or(chrono::Duration::MAX);
                                Outcome::Retry(failed)
                            }
                        }
                    };
                    (delivery.id, outcome)
                }
            });
            outcomes.extend(futures::future::join_all(attempts).await);
        }
        let store = self.shared.store().clone();
        store::blocking(move || records::record(&store, &outcomes)).await?;
        Ok(Some(Duration::ZERO))
    }
}
