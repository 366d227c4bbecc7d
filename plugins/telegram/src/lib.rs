//! The Telegram channel: one bot, over the Bot API (HTTPS to
//! `api.telegram.org`, or the base URL configured).
//!
//! Inbound, two ways: with a `webhook_secret` Telegram pushes `Update`s to
//! the daemon's webhook route, which hands them to `handle-webhook` (the
//! `X-Telegram-Bot-Api-Secret-Token` header is checked against the secret,
//! in constant time; `webhook_url`, if set, is registered with `setWebhook`
//! at connect). Without one, `receive` long-polls `getUpdates`: one poll
//! stays in flight across `receive` calls (the host keeps the request
//! running between them), so the bot asks Telegram once per
//! `poll_timeout_s`, not once per `receive`.
//!
//! Outbound: `sendMessage` (replies with `reply_parameters`, forum topics
//! with `message_thread_id`, long texts split at 4096 UTF-16 units),
//! streamed replies as `editMessageText`, `sendChatAction` for typing,
//! `setMessageReaction`. A 429 is honoured: a short `retry_after` is waited
//! out and the call retried, a long one reported as `rate-limited`.

mod api;
mod text;
mod update;

#[allow(clippy::all, missing_docs)]
mod wit {
    talon_sdk::channel_world!();
}

use std::collections::BTreeMap;
use std::sync::Mutex;

use subtle::ConstantTimeEq;
use talon_sdk::http::{self, HttpError, Pending};
use talon_sdk::serde::Deserialize;
use talon_sdk::serde_json::{self, Value, json};
use wit::exports::talon::plugin::channel_adapter::Guest;
use wit::talon::plugin::channel_types::{
    Capabilities, ChannelError, ChannelEvent, ChannelHealth, ChannelInfo, ConnectionState,
    Destination, OutboundMessage, WebhookRequest, WebhookResponse,
};
use wit::talon::plugin::log::{Level, log};

use api::{ALLOWED_UPDATES, ApiError, Bot};
use update::{Me, Update, message_id_of, message_ref};

/// The channel's configuration (`config-schema` describes it).
#[derive(Deserialize)]
#[serde(crate = "talon_sdk::serde", deny_unknown_fields)]
struct Config {
    token: String,
    #[serde(default = "default_base")]
    api_base: String,
    #[serde(default)]
    webhook_secret: Option<String>,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default = "default_poll")]
    poll_timeout_s: u32,
}

fn default_base() -> String {
    "https://api.telegram.org".into()
}

fn default_poll() -> u32 {
    25
}

const CONFIG_SCHEMA: &str = r##"{
  "type": "object",
  "required": ["token"],
  "additionalProperties": false,
  "properties": {
    "token": {"type": "string", "pattern": "^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$", "description": "The bot's token from @BotFather, a secret"},
    "api_base": {"type": "string", "default": "https://api.telegram.org", "description": "Base URL of the Bot API (a local Bot API server, or a test server)"},
    "webhook_secret": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,256}$", "description": "Receive by webhook: the secret Telegram sends in X-Telegram-Bot-Api-Secret-Token, a secret. Without it the channel long-polls getUpdates"},
    "webhook_url": {"type": "string", "description": "Public HTTPS URL of the daemon's webhook route for this channel; registered with setWebhook at connect (needs webhook_secret)"},
    "poll_timeout_s": {"type": "integer", "minimum": 0, "maximum": 50, "default": 25, "description": "Long-poll timeout of getUpdates"}
  }
}"##;

/// Timeout of an ordinary Bot API call.
const CALL_TIMEOUT_MS: u64 = 10_000;
/// The largest webhook body accepted (an `Update` is a few KiB).
const MAX_UPDATE_BYTES: usize = 1024 * 1024;
/// Edits of a streamed reply are at most this frequent (Telegram limits
/// edits per chat); the end always sends the final text.
const EDIT_EVERY_MS: u64 = 1_000;
/// After this long without a successful call, `health` asks `getMe`.
const HEALTH_PROBE_AFTER_MS: u64 = 60_000;
/// Streams a host may hold open at once.
const MAX_STREAMS: usize = 64;

/// A streamed reply: the text so far and the messages it fills.
struct Stream {
    chat: i64,
    thread: Option<i64>,
    reply_to: Option<i64>,
    text: String,
    /// The messages posted for it so far and the text each shows.
    posted: Vec<(i64, String)>,
    last_edit_ms: u64,
}

struct Session {
    bot: Bot,
    me: Me,
    webhook_secret: Option<String>,
    poll_timeout_s: u32,
    poll: Option<Pending>,
    offset: i64,
    streams: BTreeMap<String, Stream>,
    next_stream: u64,
    last_ok_ms: u64,
    lost: Option<String>,
}

static SESSION: Mutex<Option<Session>> = Mutex::new(None);

fn now_ms() -> u64 {
    wasip2::clocks::monotonic_clock::now() / 1_000_000
}

fn channel_error(e: ApiError) -> ChannelError {
    match e {
        ApiError::Http(HttpError::Denied { .. }) => ChannelError::PermissionDenied(e.to_string()),
        ApiError::Http(HttpError::InvalidUrl(_)) => ChannelError::Invalid(e.to_string()),
        ApiError::Refused {
            code: 401 | 403, ..
        } => ChannelError::PermissionDenied(e.to_string()),
        ApiError::Refused { code: 400, .. } => ChannelError::Invalid(e.to_string()),
        ApiError::RateLimited(s) => ChannelError::RateLimited(s.saturating_mul(1000)),
        other => ChannelError::Remote(other.to_string()),
    }
}

fn chat_of(chat_id: &str) -> Result<i64, ChannelError> {
    chat_id.parse().map_err(|_| {
        ChannelError::Invalid(format!(
            "chat id {chat_id:?}: a Telegram chat id is a number"
        ))
    })
}

fn thread_of(thread: Option<&String>) -> Result<Option<i64>, ChannelError> {
    thread
        .map(|t| {
            t.parse()
                .map_err(|_| ChannelError::Invalid(format!("thread id {t:?} is not a number")))
        })
        .transpose()
}

fn reply_of(reply: Option<&String>) -> Result<Option<i64>, ChannelError> {
    reply
        .map(|r| {
            message_id_of(r)
                .ok_or_else(|| ChannelError::Invalid(format!("message id {r:?} is not Telegram's")))
        })
        .transpose()
}

impl Session {
    /// Calls the API; notes success (for health) and transport failures.
    fn call(&mut self, method: &str, params: &Value) -> Result<Value, ChannelError> {
        match self.bot.call(method, params, CALL_TIMEOUT_MS) {
            Ok(value) => {
                self.last_ok_ms = now_ms();
                self.lost = None;
                Ok(value)
            }
            Err(e) => {
                if matches!(e, ApiError::Http(_)) {
                    self.lost = Some(e.to_string());
                }
                Err(channel_error(e))
            }
        }
    }

    /// Posts one message; its id.
    fn post(
        &mut self,
        chat: i64,
        thread: Option<i64>,
        reply_to: Option<i64>,
        text: &str,
    ) -> Result<i64, ChannelError> {
        let mut params = json!({ "chat_id": chat, "text": text });
        if let Some(thread) = thread {
            params["message_thread_id"] = json!(thread);
        }
        if let Some(reply) = reply_to {
            // The reply goes out even if the original was deleted meanwhile.
            params["reply_parameters"] =
                json!({ "message_id": reply, "allow_sending_without_reply": true });
        }
        let sent = self.call("sendMessage", &params)?;
        sent.get("message_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| ChannelError::Remote("sendMessage answered without a message_id".into()))
    }

    fn edit(&mut self, chat: i64, message: i64, text: &str) -> Result<(), ChannelError> {
        let params = json!({ "chat_id": chat, "message_id": message, "text": text });
        match self.call("editMessageText", &params) {
            // The same text again: nothing to change, not a failure.
            Err(ChannelError::Invalid(m)) if m.contains("message is not modified") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Brings a stream's messages up to its text: edits what changed,
    /// posts the pieces that have no message yet.
    fn flush(&mut self, id: &str) -> Result<(), ChannelError> {
        let Some(stream) = self.streams.get(id) else {
            return Err(ChannelError::Invalid(format!("no stream {id:?}")));
        };
        let (chat, thread, reply_to) = (stream.chat, stream.thread, stream.reply_to);
        let pieces = text::split(&stream.text);
        let posted = stream.posted.clone();
        for (i, piece) in pieces.iter().enumerate() {
            match posted.get(i) {
                Some((_, shown)) if shown == piece => {}
                Some((message, _)) => {
                    let message = *message;
                    self.edit(chat, message, piece)?;
                    if let Some(s) = self.streams.get_mut(id) {
                        s.posted[i].1 = piece.clone();
                    }
                }
                None => {
                    // Only the first piece answers the message replied to.
                    let reply = if i == 0 { reply_to } else { None };
                    let message = self.post(chat, thread, reply, piece)?;
                    if let Some(s) = self.streams.get_mut(id) {
                        s.posted.push((message, piece.clone()));
                    }
                }
            }
        }
        if let Some(s) = self.streams.get_mut(id) {
            s.last_edit_ms = now_ms();
        }
        Ok(())
    }

    /// The long poll: starts one if none is in flight, waits for it at
    /// most `wait_ms`.
    fn poll(&mut self, wait_ms: u64) -> Result<Vec<ChannelEvent>, ChannelError> {
        if self.poll.is_none() {
            let pending = self
                .bot
                .start_poll(self.offset, self.poll_timeout_s)
                .map_err(channel_error)?;
            self.poll = Some(pending);
        }
        let answer = match self.poll.as_ref().map(|p| p.wait(wait_ms)) {
            Some(Ok(None)) | None => return Ok(Vec::new()),
            Some(Ok(Some(response))) => Ok(response),
            Some(Err(e)) => Err(e),
        };
        self.poll = None;
        let result = answer
            .map_err(ApiError::Http)
            .and_then(|response| api::decode(&response));
        let updates = match result {
            Ok(Value::Array(updates)) => updates,
            Ok(_) => {
                return Err(ChannelError::Remote(
                    "getUpdates answered something other than a list".into(),
                ));
            }
            Err(e) => {
                let error = channel_error(e.clone());
                if !matches!(e, ApiError::RateLimited(_)) {
                    self.lost = Some(e.to_string());
                }
                return Err(error);
            }
        };
        self.last_ok_ms = now_ms();
        self.lost = None;
        let mut events = Vec::new();
        for raw in updates {
            // Every update moves the offset on, even one that does not
            // parse: otherwise it would come back forever.
            if let Some(id) = raw.get("update_id").and_then(Value::as_i64) {
                self.offset = self.offset.max(id + 1);
            }
            match serde_json::from_value::<Update>(raw) {
                Ok(update) => events.extend(update.events(&self.me)),
                Err(e) => log(
                    Level::Warn,
                    &format!("skipped an update that does not parse: {e}"),
                ),
            }
        }
        Ok(events)
    }
}

fn webhook_answer(status: u16, body: &str, events: Vec<ChannelEvent>) -> WebhookResponse {
    WebhookResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
        events,
    }
}

fn refusal(status: u16, description: &str) -> WebhookResponse {
    let body = json!({ "ok": false, "description": description }).to_string();
    webhook_answer(status, &body, Vec::new())
}

fn lock() -> std::sync::MutexGuard<'static, Option<Session>> {
    SESSION.lock().unwrap_or_else(|p| p.into_inner())
}

fn connected<T>(
    work: impl FnOnce(&mut Session) -> Result<T, ChannelError>,
) -> Result<T, ChannelError> {
    let mut guard = lock();
    let session = guard
        .as_mut()
        .ok_or_else(|| ChannelError::NotConnected("connect first".into()))?;
    work(session)
}

/// The Telegram channel.
struct Telegram;

impl Guest for Telegram {
    fn describe() -> ChannelInfo {
        ChannelInfo {
            name: "telegram".into(),
            display_name: "Telegram".into(),
            config_schema: CONFIG_SCHEMA.into(),
            secret_keys: vec!["token".into(), "webhook_secret".into()],
            capabilities: Capabilities::TYPING
                | Capabilities::REACTIONS
                | Capabilities::EDITS
                | Capabilities::THREADS
                | Capabilities::WEBHOOKS,
            // The channel splits by Telegram's own measure (UTF-16 units).
            max_message_bytes: 0,
        }
    }

    fn connect(config: String) -> Result<(), ChannelError> {
        let config: Config = serde_json::from_str(&config)
            .map_err(|e| ChannelError::Invalid(format!("configuration: {e}")))?;
        let token_ok = config.token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !token_ok {
            return Err(ChannelError::Invalid(
                "token: expected <digits>:<letters, digits, _ and ->, as @BotFather gives it"
                    .into(),
            ));
        }
        if let Some(secret) = &config.webhook_secret {
            let valid = (1..=256).contains(&secret.len())
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(ChannelError::Invalid(
                    "webhook_secret: 1 to 256 letters, digits, _ and - (Telegram's rule)".into(),
                ));
            }
        }
        if config.webhook_url.is_some() && config.webhook_secret.is_none() {
            return Err(ChannelError::Invalid(
                "webhook_url needs webhook_secret, so that pushes can be verified".into(),
            ));
        }
        if config.poll_timeout_s > 50 {
            return Err(ChannelError::Invalid("poll_timeout_s: at most 50".into()));
        }
        let bot = Bot::new(&config.api_base, &config.token);
        let me = bot
            .call("getMe", &json!({}), CALL_TIMEOUT_MS)
            .map_err(channel_error)?;
        let me = Me {
            id: me.get("id").and_then(Value::as_i64).unwrap_or_default(),
            username: me
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        };
        match (&config.webhook_url, &config.webhook_secret) {
            (Some(url), Some(secret)) => {
                let params = json!({
                    "url": url,
                    "secret_token": secret,
                    "allowed_updates": ALLOWED_UPDATES,
                });
                bot.call("setWebhook", &params, CALL_TIMEOUT_MS)
                    .map_err(channel_error)?;
            }
            // Pushed to a webhook someone else registered: leave it be.
            (None, Some(_)) => {}
            // Polling: getUpdates is refused while a webhook is set.
            (_, None) => {
                bot.call("deleteWebhook", &json!({}), CALL_TIMEOUT_MS)
                    .map_err(channel_error)?;
            }
        }
        log(
            Level::Info,
            &format!(
                "connected as @{} ({})",
                me.username,
                if config.webhook_secret.is_some() {
                    "webhook"
                } else {
                    "long polling"
                }
            ),
        );
        let mut guard = lock();
        // A reconnect keeps the offset: what was confirmed stays confirmed.
        let offset = guard.as_ref().map_or(0, |s| s.offset);
        *guard = Some(Session {
            bot,
            me,
            webhook_secret: config.webhook_secret,
            poll_timeout_s: config.poll_timeout_s,
            poll: None,
            offset,
            streams: BTreeMap::new(),
            next_stream: 0,
            last_ok_ms: now_ms(),
            lost: None,
        });
        Ok(())
    }

    fn receive(max_wait_ms: u32) -> Result<Vec<ChannelEvent>, ChannelError> {
        let mut guard = lock();
        let session = guard
            .as_mut()
            .ok_or_else(|| ChannelError::NotConnected("connect first".into()))?;
        if session.webhook_secret.is_some() {
            // Pushed: nothing to fetch. Wait as asked so the host's loop
            // does not spin.
            drop(guard);
            http::sleep_ms(u64::from(max_wait_ms));
            return Ok(Vec::new());
        }
        session.poll(u64::from(max_wait_ms))
    }

    fn send(message: OutboundMessage) -> Result<Vec<String>, ChannelError> {
        if !message.attachments.is_empty() {
            return Err(ChannelError::Unsupported(
                "attachments are not sent yet; send their URLs in the text".into(),
            ));
        }
        let chat = chat_of(&message.to.chat_id)?;
        let thread = thread_of(message.to.thread_id.as_ref())?;
        let reply_to = reply_of(message.to.reply_to.as_ref())?;
        let pieces = text::split(&message.text);
        if pieces.is_empty() {
            return Err(ChannelError::Invalid("the message is empty".into()));
        }
        connected(|session| {
            let mut ids = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                let reply = if i == 0 { reply_to } else { None };
                let id = session.post(chat, thread, reply, piece)?;
                ids.push(message_ref(chat, id));
            }
            Ok(ids)
        })
    }

    fn typing(to: Destination) -> Result<(), ChannelError> {
        let chat = chat_of(&to.chat_id)?;
        let thread = thread_of(to.thread_id.as_ref())?;
        connected(|session| {
            let mut params = json!({ "chat_id": chat, "action": "typing" });
            if let Some(thread) = thread {
                params["message_thread_id"] = json!(thread);
            }
            session.call("sendChatAction", &params).map(|_| ())
        })
    }

    fn react(chat_id: String, message_id: String, reaction: String) -> Result<(), ChannelError> {
        let chat = chat_of(&chat_id)?;
        let message = reply_of(Some(&message_id))?.unwrap_or_default();
        if reaction.is_empty() || reaction.chars().count() > 8 {
            return Err(ChannelError::Invalid(
                "reaction: one emoji from Telegram's reaction list".into(),
            ));
        }
        connected(|session| {
            let params = json!({
                "chat_id": chat,
                "message_id": message,
                "reaction": [{ "type": "emoji", "emoji": reaction }],
            });
            session.call("setMessageReaction", &params).map(|_| ())
        })
    }

    fn stream_start(to: Destination) -> Result<String, ChannelError> {
        let chat = chat_of(&to.chat_id)?;
        let thread = thread_of(to.thread_id.as_ref())?;
        let reply_to = reply_of(to.reply_to.as_ref())?;
        connected(|session| {
            if session.streams.len() >= MAX_STREAMS {
                return Err(ChannelError::Invalid(format!(
                    "{MAX_STREAMS} streams are open; end some first"
                )));
            }
            session.next_stream += 1;
            let id = format!("s{}", session.next_stream);
            // Telegram has no empty message: the first text posts it.
            session.streams.insert(
                id.clone(),
                Stream {
                    chat,
                    thread,
                    reply_to,
                    text: String::new(),
                    posted: Vec::new(),
                    last_edit_ms: 0,
                },
            );
            Ok(id)
        })
    }

    fn stream_delta(stream_id: String, text: String) -> Result<(), ChannelError> {
        connected(|session| {
            let stream = session
                .streams
                .get_mut(&stream_id)
                .ok_or_else(|| ChannelError::Invalid(format!("no stream {stream_id:?}")))?;
            stream.text.push_str(&text);
            let due = stream.posted.is_empty()
                || now_ms().saturating_sub(stream.last_edit_ms) >= EDIT_EVERY_MS;
            if due && !stream.text.trim().is_empty() {
                session.flush(&stream_id)?;
            }
            Ok(())
        })
    }

    fn stream_end(stream_id: String) -> Result<String, ChannelError> {
        connected(|session| {
            // A stream whose first post was refused (a 429, say) is dropped
            // as it is: posting its text now would ignore the platform's
            // delay, and the host sends the reply whole when it may.
            if session
                .streams
                .get(&stream_id)
                .is_some_and(|s| s.posted.is_empty())
            {
                session.streams.remove(&stream_id);
                return Err(ChannelError::Invalid(
                    "nothing of the streamed reply was posted; the stream is dropped".into(),
                ));
            }
            let flushed = session.flush(&stream_id);
            let stream = session.streams.remove(&stream_id);
            flushed?;
            let stream =
                stream.ok_or_else(|| ChannelError::Invalid(format!("no stream {stream_id:?}")))?;
            match stream.posted.last() {
                Some((message, _)) => Ok(message_ref(stream.chat, *message)),
                None => Err(ChannelError::Invalid(
                    "the streamed reply was empty; nothing was posted".into(),
                )),
            }
        })
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookResponse, ChannelError> {
        let guard = lock();
        let session = guard
            .as_ref()
            .ok_or_else(|| ChannelError::NotConnected("connect first".into()))?;
        let Some(secret) = &session.webhook_secret else {
            return Ok(refusal(
                404,
                "this channel long-polls getUpdates; it has no webhook (set webhook_secret)",
            ));
        };
        if !request.method.eq_ignore_ascii_case("POST") {
            return Ok(refusal(405, "Telegram posts updates with POST"));
        }
        let given = request
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("x-telegram-bot-api-secret-token"))
            .map(|(_, value)| value.as_bytes())
            .unwrap_or_default();
        if !bool::from(given.ct_eq(secret.as_bytes())) {
            log(
                Level::Warn,
                "refused a webhook call without the right secret token",
            );
            return Ok(refusal(
                401,
                "wrong or missing X-Telegram-Bot-Api-Secret-Token",
            ));
        }
        if request.body.len() > MAX_UPDATE_BYTES {
            return Ok(refusal(
                413,
                &format!("an update is at most {MAX_UPDATE_BYTES} bytes"),
            ));
        }
        let update: Update = match serde_json::from_slice(&request.body) {
            Ok(update) => update,
            Err(e) => return Ok(refusal(400, &format!("not a Telegram Update: {e}"))),
        };
        let events = update.events(&session.me);
        Ok(webhook_answer(200, "{}", events))
    }

    fn health() -> ChannelHealth {
        let mut guard = lock();
        let Some(session) = guard.as_mut() else {
            return ChannelHealth {
                state: ConnectionState::Disconnected,
                detail: "not connected".into(),
            };
        };
        if session.lost.is_none()
            && now_ms().saturating_sub(session.last_ok_ms) > HEALTH_PROBE_AFTER_MS
        {
            // Quiet for a while: ask Telegram whether it is still there.
            let _ = session.call("getMe", &json!({}));
        }
        match &session.lost {
            Some(why) => ChannelHealth {
                state: ConnectionState::Disconnected,
                detail: why.clone(),
            },
            None => ChannelHealth {
                state: ConnectionState::Connected,
                detail: format!(
                    "@{} ({})",
                    session.me.username,
                    if session.webhook_secret.is_some() {
                        "webhook"
                    } else {
                        "long polling"
                    }
                ),
            },
        }
    }

    fn disconnect() {
        // Dropping the session cancels a poll in flight.
        lock().take();
    }
}

// Exported only in the component: natively (unit tests) there is no host.
#[cfg(target_arch = "wasm32")]
wit::export!(Telegram with_types_in wit);
