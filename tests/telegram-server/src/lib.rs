//! A local Telegram Bot API server for tests.
//!
//! The real Bot API cannot be reached from tests, so this one speaks its
//! wire format on a loopback port: `POST` (JSON body) or `GET` (query
//! string) to `/bot<token>/<method>`, answered with Telegram's envelope,
//! `{"ok":true,"result":...}` or `{"ok":false,"error_code":N,"description":"..."}`
//! (with `parameters.retry_after` on a 429), and Telegram's own error texts
//! for the mistakes a bot makes (unknown chat, empty or too long text, a
//! message that is not modified...).
//!
//! Methods: `getMe`, `getUpdates` (long-polled, `offset` confirms),
//! `setWebhook`, `deleteWebhook`, `getWebhookInfo`, `sendMessage`,
//! `editMessageText`, `sendChatAction`, `setMessageReaction`.
//!
//! The test plays the people: [`TelegramServer::person_says`] creates a
//! message in a chat and returns the `Update` as Telegram would push it to
//! a webhook (it is also queued for `getUpdates`). What the bot did is
//! recorded: every call ([`Call`]) and the chats' messages as they are now
//! ([`BotMessage`]). [`TelegramServer::rate_limit_next`] makes the next
//! call of a method answer 429 with `retry_after`.

// Errors are answered as axum responses, as Telegram answers them; boxing
// them would buy nothing in a test server.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::serve::ListenerExt;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

/// The bot's user id, as `getMe` reports it.
pub const BOT_ID: i64 = 7_000_000_001;
/// The bot's username, as `getMe` reports it.
pub const BOT_USERNAME: &str = "talon_test_bot";
/// Telegram's limit of one text message, in UTF-16 code units.
pub const MAX_TEXT: usize = 4096;
/// The longest wait a hang guard in [`TelegramServer::wait_for`] allows.
const WAIT_GUARD: Duration = Duration::from_secs(60);

/// One call the bot made, as received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The parameters, merged from the query string and the JSON body.
    pub params: Value,
    /// The HTTP status answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

/// A message the bot posted, as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotMessage {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    pub thread_id: Option<i64>,
    /// The message it replies to.
    pub reply_to: Option<i64>,
    /// How many times it was edited.
    pub edits: u32,
}

/// A person's message for [`TelegramServer::person_says`].
#[derive(Debug, Clone)]
pub struct Said<'a> {
    pub chat_id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    pub chat_type: &'a str,
    pub from_id: i64,
    pub first_name: &'a str,
    pub username: Option<&'a str>,
    pub text: &'a str,
    /// A forum topic: sets `message_thread_id` and `is_topic_message`.
    pub thread_id: Option<i64>,
    pub reply_to: Option<i64>,
}

#[derive(Default)]
struct Chat {
    kind: String,
    title: Option<String>,
    /// Every message id in the chat (people's and the bot's).
    ids: Vec<i64>,
}

#[derive(Default)]
struct Inner {
    next_update: i64,
    next_message: i64,
    updates: VecDeque<(i64, Value)>,
    chats: BTreeMap<i64, Chat>,
    bot_messages: Vec<BotMessage>,
    /// (chat, message, emoji) set by `setMessageReaction`.
    reactions: Vec<(i64, i64, String)>,
    calls: Vec<Call>,
    webhook: Option<(String, Option<String>)>,
    /// method → retry_after seconds of the next call's 429.
    rate_limited: BTreeMap<String, u32>,
}

struct Shared {
    token: String,
    inner: Mutex<Inner>,
    /// Bumped on every change; long polls and waiters watch it.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The server, on a free loopback port; stops when dropped.
pub struct TelegramServer {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TelegramServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl TelegramServer {
    /// Starts a server that accepts `token` (the bot's token).
    pub async fn start(token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared {
            token: token.to_string(),
            inner: Mutex::new(Inner {
                next_update: 100_000,
                next_message: 1,
                ..Default::default()
            }),
            changed: watch::channel(0).0,
        });
        let app = Router::new()
            .route("/{bot}/{method}", any(handle))
            .with_state(shared.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { port, shared, task }
    }

    /// The base URL to configure in the bot (`api_base`).
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A person writes in a chat (created on first use): returns the
    /// `Update` as Telegram would post it to the webhook, and queues it
    /// for `getUpdates`.
    pub fn person_says(&self, said: &Said<'_>) -> Value {
        let mut inner = self.shared.lock();
        let update_id = inner.next_update;
        inner.next_update += 1;
        let message_id = inner.next_message;
        inner.next_message += 1;
        let chat = inner.chats.entry(said.chat_id).or_default();
        chat.kind = said.chat_type.to_string();
        if said.chat_type != "private" {
            chat.title.get_or_insert_with(|| "Talon test group".into());
        }
        chat.ids.push(message_id);
        let mut message = json!({
            "message_id": message_id,
            "from": {
                "id": said.from_id,
                "is_bot": false,
                "first_name": said.first_name,
            },
            "chat": chat_json(said.chat_id, chat),
            "date": unix_now(),
            "text": said.text,
        });
        if let Some(username) = said.username {
            message["from"]["username"] = json!(username);
            if said.chat_type == "private" {
                message["chat"]["username"] = json!(username);
            }
        }
        if said.chat_type == "private" {
            message["chat"]["first_name"] = json!(said.first_name);
        }
        if let Some(thread) = said.thread_id {
            message["message_thread_id"] = json!(thread);
            message["is_topic_message"] = json!(true);
        }
        if let Some(reply) = said.reply_to {
            let from_bot = inner.bot_messages.iter().any(|m| m.message_id == reply);
            let mut original = json!({
                "message_id": reply,
                "chat": message["chat"].clone(),
                "date": unix_now(),
            });
            if from_bot {
                original["from"] = bot_user();
            }
            message["reply_to_message"] = original;
        }
        let update = json!({ "update_id": update_id, "message": message });
        inner.updates.push_back((update_id, update.clone()));
        drop(inner);
        self.shared.bump();
        update
    }

    /// The next call of `method` answers 429 with `retry_after` seconds.
    pub fn rate_limit_next(&self, method: &str, retry_after: u32) {
        self.shared
            .lock()
            .rate_limited
            .insert(method.to_string(), retry_after);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The calls of one method so far.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Checks that long polling confirms what it received: the offsets of
    /// `getUpdates` never go back, and every poll after the first (which
    /// brought `first_delivered`, an `update_id`) asks past it, so no update
    /// is fetched twice. A poll that ends empty (its timeout passed, as on a
    /// loaded machine) is rightly repeated with the same offset, so offsets
    /// need not grow strictly.
    pub fn assert_offsets_confirm(&self, first_delivered: i64) {
        let offsets: Vec<i64> = self
            .calls_of("getUpdates")
            .iter()
            .map(|c| c.params["offset"].as_i64().unwrap_or(0))
            .collect();
        assert!(
            offsets.windows(2).all(|w| w[0] <= w[1]),
            "getUpdates offsets went back: {offsets:?}"
        );
        assert!(
            offsets.iter().skip(1).all(|&o| o > first_delivered),
            "an update already delivered was asked for again: {offsets:?}"
        );
    }

    /// The bot's messages in `chat`, oldest first.
    pub fn bot_messages(&self, chat: i64) -> Vec<BotMessage> {
        self.shared
            .lock()
            .bot_messages
            .iter()
            .filter(|m| m.chat_id == chat)
            .cloned()
            .collect()
    }

    /// The reactions the bot set: (chat, message, emoji).
    pub fn reactions(&self) -> Vec<(i64, i64, String)> {
        self.shared.lock().reactions.clone()
    }

    /// The webhook the bot registered: (url, secret token).
    pub fn webhook(&self) -> Option<(String, Option<String>)> {
        self.shared.lock().webhook.clone()
    }

    /// Waits until `ready` returns something (checked after every change
    /// on the server); panics after a generous guard so a broken build
    /// fails instead of hanging.
    pub async fn wait_for<T>(&self, what: &str, ready: impl Fn(&Self) -> Option<T>) -> T {
        let mut changed = self.shared.changed.subscribe();
        let waited = tokio::time::timeout(WAIT_GUARD, async {
            loop {
                changed.borrow_and_update();
                if let Some(found) = ready(self) {
                    return found;
                }
                if changed.changed().await.is_err() {
                    panic!("the Telegram server stopped");
                }
            }
        })
        .await;
        match waited {
            Ok(found) => found,
            Err(_) => panic!("{what}: never happened; calls: {:#?}", self.calls()),
        }
    }
}

fn bot_user() -> Value {
    json!({
        "id": BOT_ID,
        "is_bot": true,
        "first_name": "Talon",
        "username": BOT_USERNAME,
    })
}

fn chat_json(id: i64, chat: &Chat) -> Value {
    let mut value = json!({ "id": id, "type": chat.kind });
    if let Some(title) = &chat.title {
        value["title"] = json!(title);
    }
    value
}

/// Telegram's error envelope.
fn error(code: u16, description: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({ "ok": false, "error_code": code, "description": description });
    (status, axum::Json(body)).into_response()
}

fn bad_request(description: &str) -> Response {
    error(400, &format!("Bad Request: {description}"))
}

fn ok(result: Value) -> Response {
    axum::Json(json!({ "ok": true, "result": result })).into_response()
}

/// The parameters of a call: the query string, then the JSON body over it.
fn params(query: Option<&str>, body: &[u8]) -> Result<Map<String, Value>, Response> {
    let mut params = Map::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(key.to_string(), Value::String(value.replace('+', " ")));
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => params.extend(map),
            _ => return Err(bad_request("can't parse JSON object")),
        }
    }
    Ok(params)
}

/// A numeric parameter, given as a number or a numeric string.
fn int(params: &Map<String, Value>, key: &str) -> Option<i64> {
    match params.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let parsed = params(query.as_deref(), &body);
    let response = match (bot.strip_prefix("bot"), parsed) {
        (Some(token), _) if token != shared.token => error(401, "Unauthorized"),
        (None, _) => error(404, "Not Found"),
        (_, Err(response)) => response,
        (Some(_), Ok(params)) => {
            let limited = shared.lock().rate_limited.remove(&method);
            match limited {
                Some(retry_after) => {
                    let body = json!({
                        "ok": false,
                        "error_code": 429,
                        "description": format!("Too Many Requests: retry after {retry_after}"),
                        "parameters": { "retry_after": retry_after },
                    });
                    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
                }
                None => call(&shared, &method, &params).await,
            }
        }
    };
    let params = params(query.as_deref(), &body)
        .map(Value::Object)
        .unwrap_or(Value::Null);
    shared.lock().calls.push(Call {
        method,
        params,
        status: response.status().as_u16(),
        at,
    });
    shared.bump();
    response
}

async fn call(shared: &Shared, method: &str, params: &Map<String, Value>) -> Response {
    match method {
        "getMe" => ok(bot_user()),
        "getUpdates" => get_updates(shared, params).await,
        "setWebhook" => {
            let Some(url) = params.get("url").and_then(Value::as_str) else {
                return bad_request("parameter \"url\" is required");
            };
            let secret = params
                .get("secret_token")
                .and_then(Value::as_str)
                .map(str::to_string);
            let mut inner = shared.lock();
            inner.webhook = (!url.is_empty()).then(|| (url.to_string(), secret));
            ok(json!(true))
        }
        "deleteWebhook" => {
            shared.lock().webhook = None;
            ok(json!(true))
        }
        "getWebhookInfo" => {
            let url = shared
                .lock()
                .webhook
                .as_ref()
                .map(|(u, _)| u.clone())
                .unwrap_or_default();
            ok(json!({ "url": url, "has_custom_certificate": false, "pending_update_count": 0 }))
        }
        "sendMessage" => send_message(shared, params),
        "editMessageText" => edit_message_text(shared, params),
        "sendChatAction" => {
            let inner = shared.lock();
            if let Err(response) = known_chat(&inner, params) {
                return response;
            }
            let actions = [
                "typing",
                "upload_photo",
                "record_video",
                "upload_video",
                "record_voice",
                "upload_voice",
                "upload_document",
                "choose_sticker",
                "find_location",
                "record_video_note",
                "upload_video_note",
            ];
            match params.get("action").and_then(Value::as_str) {
                Some(action) if actions.contains(&action) => ok(json!(true)),
                _ => bad_request("wrong parameter action in request"),
            }
        }
        "setMessageReaction" => {
            let mut inner = shared.lock();
            let chat = match known_chat(&inner, params) {
                Ok(chat) => chat,
                Err(response) => return response,
            };
            let Some(message) = int(params, "message_id") else {
                return bad_request("message_id is required");
            };
            if !inner.chats[&chat].ids.contains(&message) {
                return bad_request("message to react not found");
            }
            let reactions = params
                .get("reaction")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for reaction in reactions {
                match (
                    reaction.get("type").and_then(Value::as_str),
                    reaction.get("emoji").and_then(Value::as_str),
                ) {
                    (Some("emoji"), Some(emoji)) => {
                        inner.reactions.push((chat, message, emoji.to_string()))
                    }
                    _ => return bad_request("REACTION_INVALID"),
                }
            }
            ok(json!(true))
        }
        _ => error(404, "Not Found"),
    }
}

fn known_chat(inner: &Inner, params: &Map<String, Value>) -> Result<i64, Response> {
    match int(params, "chat_id") {
        Some(id) if inner.chats.contains_key(&id) => Ok(id),
        Some(_) => Err(bad_request("chat not found")),
        None => Err(bad_request("chat_id is empty")),
    }
}

async fn get_updates(shared: &Shared, params: &Map<String, Value>) -> Response {
    if shared.lock().webhook.is_some() {
        return error(
            409,
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
        );
    }
    let offset = int(params, "offset").unwrap_or(0);
    let limit = int(params, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(int(params, "timeout").unwrap_or(0).clamp(0, 50) as u64);
    let until = tokio::time::Instant::now() + timeout;
    let mut changed = shared.changed.subscribe();
    loop {
        changed.borrow_and_update();
        let found: Vec<Value> = {
            let mut inner = shared.lock();
            // An offset confirms every update before it.
            while inner.updates.front().is_some_and(|(id, _)| *id < offset) {
                inner.updates.pop_front();
            }
            inner
                .updates
                .iter()
                .take(limit)
                .map(|(_, u)| u.clone())
                .collect()
        };
        if !found.is_empty() || tokio::time::Instant::now() >= until {
            return ok(Value::Array(found));
        }
        if tokio::time::timeout_at(until, changed.changed())
            .await
            .is_err()
        {
            return ok(json!([]));
        }
    }
}

fn message_json(chat: i64, kind: &Chat, message: &BotMessage, edited: bool) -> Value {
    let mut value = json!({
        "message_id": message.message_id,
        "from": bot_user(),
        "chat": chat_json(chat, kind),
        "date": unix_now(),
        "text": message.text,
    });
    if let Some(thread) = message.thread_id {
        value["message_thread_id"] = json!(thread);
        value["is_topic_message"] = json!(true);
    }
    if let Some(reply) = message.reply_to {
        value["reply_to_message"] =
            json!({ "message_id": reply, "chat": chat_json(chat, kind), "date": unix_now() });
    }
    if edited {
        value["edit_date"] = json!(unix_now());
    }
    value
}

fn checked_text(params: &Map<String, Value>) -> Result<String, Response> {
    let text = params
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if text.trim().is_empty() {
        return Err(bad_request("message text is empty"));
    }
    if utf16_len(text) > MAX_TEXT {
        return Err(bad_request("message is too long"));
    }
    Ok(text.to_string())
}

fn send_message(shared: &Shared, params: &Map<String, Value>) -> Response {
    let mut inner = shared.lock();
    let chat = match known_chat(&inner, params) {
        Ok(chat) => chat,
        Err(response) => return response,
    };
    let text = match checked_text(params) {
        Ok(text) => text,
        Err(response) => return response,
    };
    let reply = params.get("reply_parameters");
    let reply_to = reply
        .and_then(|r| r.get("message_id"))
        .and_then(Value::as_i64);
    let lenient = reply
        .and_then(|r| r.get("allow_sending_without_reply"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let reply_to = match reply_to {
        Some(id) if inner.chats[&chat].ids.contains(&id) => Some(id),
        Some(_) if lenient => None,
        Some(_) => return bad_request("message to be replied not found"),
        None => None,
    };
    let message_id = inner.next_message;
    inner.next_message += 1;
    let message = BotMessage {
        chat_id: chat,
        message_id,
        text,
        thread_id: int(params, "message_thread_id"),
        reply_to,
        edits: 0,
    };
    let chat_state = inner.chats.entry(chat).or_default();
    chat_state.ids.push(message_id);
    let result = message_json(chat, chat_state, &message, false);
    inner.bot_messages.push(message);
    ok(result)
}

fn edit_message_text(shared: &Shared, params: &Map<String, Value>) -> Response {
    let mut inner = shared.lock();
    let chat = match known_chat(&inner, params) {
        Ok(chat) => chat,
        Err(response) => return response,
    };
    let text = match checked_text(params) {
        Ok(text) => text,
        Err(response) => return response,
    };
    let Some(id) = int(params, "message_id") else {
        return bad_request("message identifier is not specified");
    };
    let Some(index) = inner
        .bot_messages
        .iter()
        .position(|m| m.chat_id == chat && m.message_id == id)
    else {
        return bad_request("message to edit not found");
    };
    if inner.bot_messages[index].text == text {
        return bad_request(
            "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
    }
    inner.bot_messages[index].text = text;
    inner.bot_messages[index].edits += 1;
    let message = inner.bot_messages[index].clone();
    ok(message_json(chat, &inner.chats[&chat], &message, true))
}
