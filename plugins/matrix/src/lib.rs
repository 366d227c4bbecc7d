//! The Matrix channel: one bot account on one homeserver, over the
//! client-server API (plain JSON over `wasi:http`; see docs/CHANNELS.md
//! for why not `ruma`).
//!
//! `connect` logs in with a password (reusing the device it logged in as
//! before, kept in memory) or takes an access token, then resumes the sync
//! where it stopped: the `since` token is kept in the channel's memory
//! after every sync, so a restarted channel neither replays nor loses
//! messages. On its very first start it syncs once without delivering the
//! rooms' history. `receive` keeps one `/sync` long poll in flight across
//! calls (the host runs the request between them).
//!
//! Joined rooms' `m.room.message` events from others become messages
//! (threads from `m.thread` relations, replies from `m.in_reply_to`, the
//! reply fallback stripped; notices and edits are not answered); a room of
//! two members, or one the bot was invited to as direct, is a direct chat.
//! Invitations are accepted when `auto_join` is on.
//!
//! Outbound: `m.room.message` sent with `PUT .../send/m.room.message/{txnId}`
//! (a retry reuses the transaction id, so the homeserver posts it once),
//! threads and replies as relations, streamed replies as `m.replace`
//! edits, typing notifications, reactions as `m.annotation`.

mod client;
mod sync;

#[allow(clippy::all, missing_docs)]
mod wit {
    talon_sdk::channel_world!();
}

use std::collections::BTreeMap;
use std::sync::Mutex;

use talon_sdk::http::{HttpError, Pending, encode};
use talon_sdk::serde::Deserialize;
use talon_sdk::serde_json::{self, Value, json};
use wit::exports::talon::plugin::channel_adapter::Guest;
use wit::talon::plugin::channel_types::{
    Capabilities, ChannelError, ChannelEvent, ChannelHealth, ChannelInfo, ChatKind,
    ConnectionState, Destination, InboundMessage, OutboundMessage, Sender, WebhookRequest,
    WebhookResponse,
};
use wit::talon::plugin::log::{Level, log};
use wit::talon::plugin::memory;

use client::{ApiError, Client};

/// The channel's configuration (`config-schema` describes it).
#[derive(Deserialize)]
#[serde(crate = "talon_sdk::serde", deny_unknown_fields)]
struct Config {
    homeserver: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default = "yes")]
    auto_join: bool,
    #[serde(default = "default_sync_timeout")]
    sync_timeout_ms: u32,
}

fn yes() -> bool {
    true
}

fn default_sync_timeout() -> u32 {
    30_000
}

const CONFIG_SCHEMA: &str = r##"{
  "type": "object",
  "required": ["homeserver"],
  "additionalProperties": false,
  "properties": {
    "homeserver": {"type": "string", "description": "Base URL of the homeserver's client API, e.g. https://matrix.example.org"},
    "user_id": {"type": "string", "description": "The bot's user id, @bot:example.org (with password)"},
    "password": {"type": "string", "description": "The bot's password, a secret (or use access_token)"},
    "access_token": {"type": "string", "description": "An access token of the bot, a secret (instead of user_id and password)"},
    "auto_join": {"type": "boolean", "default": true, "description": "Accept invitations to rooms"},
    "sync_timeout_ms": {"type": "integer", "minimum": 0, "maximum": 120000, "default": 30000, "description": "Long-poll timeout of /sync"}
  }
}"##;

/// Memory keys (granted as `matrix.*`).
const SINCE_KEY: &str = "matrix.since";
const DEVICE_KEY: &str = "matrix.device_id";
/// A message body is cut into events of at most this many bytes (Matrix
/// caps a whole event at 64 KiB).
const MAX_BODY_BYTES: usize = 32 * 1024;
/// Edits of a streamed reply are at most this frequent.
const EDIT_EVERY_MS: u64 = 1_000;
/// Streams a host may hold open at once.
const MAX_STREAMS: usize = 64;
/// The sync filter: messages, reactions and member changes, short
/// timelines, lazy-loaded members (which brings the rooms' member counts).
const FILTER: &str = r#"{"room":{"timeline":{"limit":50,"types":["m.room.message","m.reaction","m.room.member"]},"state":{"lazy_load_members":true,"types":["m.room.member"]},"ephemeral":{"types":[]},"account_data":{"types":[]}},"presence":{"types":[]},"account_data":{"types":[]}}"#;

/// A streamed reply: the text so far and the events that show it.
struct Stream {
    room: String,
    thread: Option<String>,
    reply_to: Option<String>,
    text: String,
    /// Events posted for it (one per piece) and the text each shows.
    posted: Vec<(String, String)>,
    last_edit_ms: u64,
}

#[derive(Default)]
struct Room {
    members: Option<u64>,
    direct: bool,
}

struct Session {
    client: Client,
    me: String,
    homeserver: String,
    auto_join: bool,
    sync_timeout_ms: u32,
    since: String,
    sync: Option<Pending>,
    rooms: BTreeMap<String, Room>,
    txn_prefix: String,
    txn_counter: u64,
    streams: BTreeMap<String, Stream>,
    next_stream: u64,
    lost: Option<String>,
    /// Whether memory refused a write already (logged once).
    memory_warned: bool,
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
            status: 401 | 403, ..
        } => ChannelError::PermissionDenied(e.to_string()),
        ApiError::Refused { status: 400, .. } => ChannelError::Invalid(e.to_string()),
        ApiError::RateLimited(ms) => {
            ChannelError::RateLimited(u32::try_from(ms).unwrap_or(u32::MAX))
        }
        other => ChannelError::Remote(other.to_string()),
    }
}

fn room_of(chat_id: &str) -> Result<String, ChannelError> {
    // `!opaque:server`, or `!hash` from room version 12 on.
    if chat_id.len() > 1
        && chat_id.len() <= 255
        && chat_id.starts_with('!')
        && !chat_id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Ok(chat_id.to_string())
    } else {
        Err(ChannelError::Invalid(format!(
            "chat id {chat_id:?}: a Matrix room id starts with !"
        )))
    }
}

fn event_of(event_id: &str) -> Result<String, ChannelError> {
    if event_id.len() > 1
        && event_id.len() <= 255
        && event_id.starts_with('$')
        && !event_id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        Ok(event_id.to_string())
    } else {
        Err(ChannelError::Invalid(format!(
            "event id {event_id:?}: a Matrix event id starts with $"
        )))
    }
}

fn remember(key: &str, value: &str) -> Result<(), String> {
    memory::set(key, value).map_err(|e| format!("{e:?}"))
}

fn recall(key: &str) -> Option<String> {
    memory::get(key).ok().flatten()
}

fn random_prefix() -> String {
    format!("{:016x}", wasip2::random::random::get_random_u64())
}

impl Session {
    fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ChannelError> {
        match self.client.call(method, path, body) {
            Ok(value) => Ok(value),
            Err(e) => {
                if matches!(e, ApiError::Http(_)) {
                    self.lost = Some(e.to_string());
                }
                Err(channel_error(e))
            }
        }
    }

    fn next_txn(&mut self) -> String {
        self.txn_counter += 1;
        format!("talon.{}.{}", self.txn_prefix, self.txn_counter)
    }

    /// Sends one event into a room; its event id.
    fn send_event(
        &mut self,
        room: &str,
        kind: &str,
        content: &Value,
    ) -> Result<String, ChannelError> {
        let path = format!(
            "/rooms/{}/send/{kind}/{}",
            encode(room),
            encode(&self.next_txn())
        );
        let sent = self.call("PUT", &path, Some(content))?;
        sent.get("event_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ChannelError::Remote("the homeserver answered without an event_id".into())
            })
    }

    /// Posts a text, in a thread and as a reply where asked.
    fn post(
        &mut self,
        room: &str,
        thread: Option<&str>,
        reply_to: Option<&str>,
        text: &str,
    ) -> Result<String, ChannelError> {
        let mut content = json!({ "msgtype": "m.text", "body": text });
        match (thread, reply_to) {
            (Some(thread), reply) => {
                content["m.relates_to"] = json!({
                    "rel_type": "m.thread",
                    "event_id": thread,
                    // Without a real reply, clients that know no threads
                    // show it as a reply to the thread's last message.
                    "is_falling_back": reply.is_none(),
                    "m.in_reply_to": { "event_id": reply.unwrap_or(thread) },
                });
            }
            (None, Some(reply)) => {
                content["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": reply } });
            }
            (None, None) => {}
        }
        self.send_event(room, "m.room.message", &content)
    }

    /// Replaces the text of an event the bot posted (`m.replace`).
    fn edit(&mut self, room: &str, event: &str, text: &str) -> Result<(), ChannelError> {
        let content = json!({
            "msgtype": "m.text",
            "body": format!("* {text}"),
            "m.new_content": { "msgtype": "m.text", "body": text },
            "m.relates_to": { "rel_type": "m.replace", "event_id": event },
        });
        self.send_event(room, "m.room.message", &content)
            .map(|_| ())
    }

    /// Brings a stream's events up to its text.
    fn flush(&mut self, id: &str) -> Result<(), ChannelError> {
        let Some(stream) = self.streams.get(id) else {
            return Err(ChannelError::Invalid(format!("no stream {id:?}")));
        };
        let (room, thread, reply_to) = (
            stream.room.clone(),
            stream.thread.clone(),
            stream.reply_to.clone(),
        );
        let pieces = talon_sdk::channel::split_text(&stream.text, MAX_BODY_BYTES, char::len_utf8);
        let posted = stream.posted.clone();
        for (i, piece) in pieces.iter().enumerate() {
            match posted.get(i) {
                Some((_, shown)) if shown == piece => {}
                Some((event, _)) => {
                    self.edit(&room, event, piece)?;
                    if let Some(s) = self.streams.get_mut(id) {
                        s.posted[i].1 = piece.clone();
                    }
                }
                None => {
                    let reply = if i == 0 { reply_to.as_deref() } else { None };
                    let event = self.post(&room, thread.as_deref(), reply, piece)?;
                    if let Some(s) = self.streams.get_mut(id) {
                        s.posted.push((event, piece.clone()));
                    }
                }
            }
        }
        if let Some(s) = self.streams.get_mut(id) {
            s.last_edit_ms = now_ms();
        }
        Ok(())
    }

    fn sync_query(&self, timeout_ms: u32) -> String {
        let mut query = format!("timeout={timeout_ms}&filter={}", encode(FILTER));
        if !self.since.is_empty() {
            query.push_str(&format!("&since={}", encode(&self.since)));
        }
        query
    }

    /// Applies one sync answer; the events to deliver (none when
    /// `deliver` is false: the first sync only learns where "now" is).
    fn apply(&mut self, answer: &Value, deliver: bool) -> Result<Vec<ChannelEvent>, ChannelError> {
        let batch = sync::read(answer, &self.me).map_err(ChannelError::Remote)?;
        for room in &batch.left {
            self.rooms.remove(room);
        }
        for room in &batch.membership_changed {
            self.rooms.entry(room.clone()).or_default().members = None;
        }
        for (room, count) in &batch.member_counts {
            self.rooms.entry(room.clone()).or_default().members = Some(*count);
        }
        for (room, direct) in &batch.invites {
            self.rooms.entry(room.clone()).or_default().direct |= *direct;
            if self.auto_join {
                match self.call("POST", &format!("/join/{}", encode(room)), Some(&json!({}))) {
                    Ok(_) => log(Level::Info, &format!("joined {room} (invited)")),
                    Err(e) => log(Level::Warn, &format!("cannot join {room}: {e:?}")),
                }
            }
        }
        let mut events = Vec::new();
        if deliver {
            for message in batch.messages {
                let kind = self.kind_of(&message.room);
                let me_lower = self.me.to_lowercase();
                let localpart = me_lower
                    .trim_start_matches('@')
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let body_lower = message.body.to_lowercase();
                let mentioned = kind == ChatKind::Direct
                    || message.mentions_me
                    || body_lower.contains(&me_lower)
                    || (!localpart.is_empty() && body_lower.contains(&localpart));
                events.push(ChannelEvent::Message(InboundMessage {
                    id: Some(message.event_id),
                    chat_id: message.room,
                    chat_kind: kind,
                    thread_id: message.thread,
                    reply_to: message.reply_to,
                    sender: Sender {
                        id: message.sender,
                        display_name: None,
                        is_bot: false,
                    },
                    text: message.body,
                    attachments: Vec::new(),
                    mentioned,
                    timestamp_ms: message.timestamp_ms,
                }));
            }
            for reaction in batch.reactions {
                events.push(ChannelEvent::Reaction((
                    reaction.room,
                    reaction.event_id,
                    reaction.key,
                    Sender {
                        id: reaction.sender,
                        display_name: None,
                        is_bot: false,
                    },
                )));
            }
        }
        self.since = batch.next_batch;
        // Kept after the events are taken: a restart resumes after them.
        if let Err(e) = remember(SINCE_KEY, &self.since)
            && !self.memory_warned
        {
            self.memory_warned = true;
            log(
                Level::Warn,
                &format!("cannot keep the sync position ({e}); a restart starts from now"),
            );
        }
        Ok(events)
    }

    /// Direct or group: the invite said direct, or two members.
    fn kind_of(&mut self, room: &str) -> ChatKind {
        let known = self.rooms.get(room).and_then(|r| r.members);
        let members = match known {
            Some(n) => Some(n),
            None => {
                let path = format!("/rooms/{}/joined_members", encode(room));
                let counted = self.call("GET", &path, None).ok().and_then(|v| {
                    v.get("joined")
                        .and_then(Value::as_object)
                        .map(|m| m.len() as u64)
                });
                if let Some(n) = counted {
                    self.rooms.entry(room.to_string()).or_default().members = Some(n);
                }
                counted
            }
        };
        let direct = self.rooms.get(room).is_some_and(|r| r.direct);
        if direct || members == Some(2) {
            ChatKind::Direct
        } else {
            ChatKind::Group
        }
    }
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

/// Logs in (or checks the token); the bot's user id.
fn log_in(client: &mut Client, config: &Config) -> Result<String, ChannelError> {
    if let Some(token) = &config.access_token {
        client.set_token(token);
        let who = client
            .call("GET", "/account/whoami", None)
            .map_err(channel_error)?;
        return who
            .get("user_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ChannelError::Remote("whoami answered without a user_id".into()));
    }
    let (Some(user), Some(password)) = (&config.user_id, &config.password) else {
        return Err(ChannelError::Invalid(
            "configure access_token, or user_id and password".into(),
        ));
    };
    let mut login = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": user },
        "password": password,
        "initial_device_display_name": "Talon",
    });
    // The same device as last time: logging in again adds no device.
    if let Some(device) = recall(DEVICE_KEY) {
        login["device_id"] = json!(device);
    }
    let answer = client
        .call("POST", "/login", Some(&login))
        .map_err(channel_error)?;
    let token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| ChannelError::Remote("login answered without an access_token".into()))?;
    client.set_token(token);
    if let Some(device) = answer.get("device_id").and_then(Value::as_str) {
        let _ = remember(DEVICE_KEY, device);
    }
    answer
        .get("user_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ChannelError::Remote("login answered without a user_id".into()))
}

/// The Matrix channel.
struct Matrix;

impl Guest for Matrix {
    fn describe() -> ChannelInfo {
        ChannelInfo {
            name: "matrix".into(),
            display_name: "Matrix".into(),
            config_schema: CONFIG_SCHEMA.into(),
            secret_keys: vec!["password".into(), "access_token".into()],
            capabilities: Capabilities::TYPING
                | Capabilities::REACTIONS
                | Capabilities::EDITS
                | Capabilities::THREADS,
            // The channel cuts long bodies itself.
            max_message_bytes: 0,
        }
    }

    fn connect(config: String) -> Result<(), ChannelError> {
        let config: Config = serde_json::from_str(&config)
            .map_err(|e| ChannelError::Invalid(format!("configuration: {e}")))?;
        let lower = config.homeserver.to_ascii_lowercase();
        if !lower.starts_with("https://") && !lower.starts_with("http://") {
            return Err(ChannelError::Invalid(
                "homeserver: an http(s):// URL".into(),
            ));
        }
        if config.sync_timeout_ms > 120_000 {
            return Err(ChannelError::Invalid(
                "sync_timeout_ms: at most 120000".into(),
            ));
        }
        let mut guard = lock();
        // A reconnect resumes where this instance was; a new instance
        // where the last one kept in memory.
        let since = guard
            .as_ref()
            .map(|s| s.since.clone())
            .filter(|s| !s.is_empty())
            .or_else(|| recall(SINCE_KEY))
            .unwrap_or_default();
        let mut client = Client::new(&config.homeserver);
        let me = log_in(&mut client, &config)?;
        let mut session = Session {
            client,
            me,
            homeserver: config.homeserver.clone(),
            auto_join: config.auto_join,
            sync_timeout_ms: config.sync_timeout_ms,
            since,
            sync: None,
            rooms: guard
                .as_mut()
                .map(|s| std::mem::take(&mut s.rooms))
                .unwrap_or_default(),
            txn_prefix: random_prefix(),
            txn_counter: 0,
            streams: BTreeMap::new(),
            next_stream: 0,
            lost: None,
            memory_warned: false,
        };
        if session.since.is_empty() {
            // First start: learn where "now" is without answering history.
            let query = session.sync_query(0);
            let answer = session.call("GET", &format!("/sync?{query}"), None)?;
            session.apply(&answer, false)?;
        }
        log(
            Level::Info,
            &format!("connected to {} as {}", session.homeserver, session.me),
        );
        *guard = Some(session);
        Ok(())
    }

    fn receive(max_wait_ms: u32) -> Result<Vec<ChannelEvent>, ChannelError> {
        connected(|session| {
            if session.sync.is_none() {
                let query = session.sync_query(session.sync_timeout_ms);
                let pending = session
                    .client
                    .start_sync(&query, u64::from(session.sync_timeout_ms))
                    .map_err(channel_error)?;
                session.sync = Some(pending);
            }
            let answer = match session
                .sync
                .as_ref()
                .map(|p| p.wait(u64::from(max_wait_ms)))
            {
                Some(Ok(None)) | None => return Ok(Vec::new()),
                Some(Ok(Some(response))) => client::decode(&response),
                Some(Err(e)) => Err(ApiError::Http(e)),
            };
            session.sync = None;
            match answer {
                Ok(answer) => {
                    let events = session.apply(&answer, true).inspect_err(|e| {
                        session.lost = Some(format!("{e:?}"));
                    })?;
                    session.lost = None;
                    Ok(events)
                }
                Err(e) => {
                    if !matches!(e, ApiError::RateLimited(_)) {
                        session.lost = Some(e.to_string());
                    }
                    Err(channel_error(e))
                }
            }
        })
    }

    fn send(message: OutboundMessage) -> Result<Vec<String>, ChannelError> {
        if !message.attachments.is_empty() {
            return Err(ChannelError::Unsupported(
                "attachments are not sent yet; send their URLs in the text".into(),
            ));
        }
        let room = room_of(&message.to.chat_id)?;
        let thread = message.to.thread_id.as_deref().map(event_of).transpose()?;
        let reply_to = message.to.reply_to.as_deref().map(event_of).transpose()?;
        let pieces = talon_sdk::channel::split_text(&message.text, MAX_BODY_BYTES, char::len_utf8);
        if pieces.is_empty() {
            return Err(ChannelError::Invalid("the message is empty".into()));
        }
        connected(|session| {
            let mut ids = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                let reply = if i == 0 { reply_to.as_deref() } else { None };
                ids.push(session.post(&room, thread.as_deref(), reply, piece)?);
            }
            Ok(ids)
        })
    }

    fn typing(to: Destination) -> Result<(), ChannelError> {
        let room = room_of(&to.chat_id)?;
        connected(|session| {
            let path = format!("/rooms/{}/typing/{}", encode(&room), encode(&session.me));
            session
                .call(
                    "PUT",
                    &path,
                    Some(&json!({ "typing": true, "timeout": 30_000 })),
                )
                .map(|_| ())
        })
    }

    fn react(chat_id: String, message_id: String, reaction: String) -> Result<(), ChannelError> {
        let room = room_of(&chat_id)?;
        let event = event_of(&message_id)?;
        if reaction.is_empty() || reaction.len() > 64 {
            return Err(ChannelError::Invalid(
                "reaction: a short key, an emoji".into(),
            ));
        }
        connected(|session| {
            let content = json!({
                "m.relates_to": { "rel_type": "m.annotation", "event_id": event, "key": reaction }
            });
            session
                .send_event(&room, "m.reaction", &content)
                .map(|_| ())
        })
    }

    fn stream_start(to: Destination) -> Result<String, ChannelError> {
        let room = room_of(&to.chat_id)?;
        let thread = to.thread_id.as_deref().map(event_of).transpose()?;
        let reply_to = to.reply_to.as_deref().map(event_of).transpose()?;
        connected(|session| {
            if session.streams.len() >= MAX_STREAMS {
                return Err(ChannelError::Invalid(format!(
                    "{MAX_STREAMS} streams are open; end some first"
                )));
            }
            session.next_stream += 1;
            let id = format!("s{}", session.next_stream);
            session.streams.insert(
                id.clone(),
                Stream {
                    room,
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
            let flushed = session.flush(&stream_id);
            let stream = session.streams.remove(&stream_id);
            flushed?;
            let stream =
                stream.ok_or_else(|| ChannelError::Invalid(format!("no stream {stream_id:?}")))?;
            stream
                .posted
                .first()
                .map(|(event, _)| event.clone())
                .ok_or_else(|| {
                    ChannelError::Invalid("the streamed reply was empty; nothing was posted".into())
                })
        })
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookResponse, ChannelError> {
        Err(ChannelError::Unsupported(
            "the Matrix channel syncs; homeservers do not push to it".into(),
        ))
    }

    fn health() -> ChannelHealth {
        let guard = lock();
        match guard.as_ref() {
            None => ChannelHealth {
                state: ConnectionState::Disconnected,
                detail: "not connected".into(),
            },
            Some(s) => match &s.lost {
                Some(why) => ChannelHealth {
                    state: ConnectionState::Disconnected,
                    detail: why.clone(),
                },
                None => ChannelHealth {
                    state: ConnectionState::Connected,
                    detail: format!("{} on {}", s.me, s.homeserver),
                },
            },
        }
    }

    fn disconnect() {
        // Dropping the session cancels the sync in flight. No logout: that
        // would end the device the next connect reuses.
        lock().take();
    }
}

// Exported only in the component: natively (unit tests) there is no host.
#[cfg(target_arch = "wasm32")]
wit::export!(Matrix with_types_in wit);
