//! The XMPP channel: one client-to-server connection (RFC 6120) logged in
//! with SASL PLAIN, a bound resource, available presence, and the
//! configured multi-user chat rooms joined (XEP-0045). `groupchat` messages
//! in a joined room are group chats; `chat`/`normal` messages are direct
//! chats with the sender's bare JID (or, from a room occupant, with the
//! occupant's JID). Replies go back to the same chat and thread; streamed
//! replies are one message corrected in place (XEP-0308); typing is a chat
//! state (XEP-0085); reactions are XEP-0444.
//!
//! Plain TCP only: TLS needs a TLS stack in the guest or a host-side TLS
//! socket, neither of which exists yet, so a server that requires STARTTLS
//! is refused at connect with a clear error.

mod stanza;
mod xml;

#[allow(clippy::all, missing_docs)]
mod wit {
    talon_sdk::channel_world!();
}

use std::sync::Mutex;

use talon_sdk::net::{NetError, TcpStream};
use talon_sdk::serde::Deserialize;
use wit::exports::talon::plugin::channel_adapter::Guest;
use wit::talon::plugin::channel_types::{
    Capabilities, ChannelError, ChannelEvent, ChannelHealth, ChannelInfo, ChatKind,
    ConnectionState, Destination, InboundMessage, OutboundMessage, Sender, WebhookRequest,
    WebhookResponse,
};
use wit::talon::plugin::log::{Level, log};
use wit::talon::plugin::memory;

use stanza::{Jid, NS_CHATSTATES, NS_MUC_USER, NS_REACTIONS, NS_REPLY, NS_SID};
use xml::{Element, Item, StreamParser, escape};

/// The channel's configuration (`config-schema` describes it).
#[derive(Deserialize)]
#[serde(crate = "talon_sdk::serde", deny_unknown_fields)]
struct Config {
    jid: String,
    password: String,
    #[serde(default)]
    server: Option<String>,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    nick: Option<String>,
    #[serde(default)]
    rooms: Vec<String>,
}

fn default_port() -> u16 {
    5222
}

const CONFIG_SCHEMA: &str = r##"{
  "type": "object",
  "required": ["jid", "password"],
  "additionalProperties": false,
  "properties": {
    "jid": {"type": "string", "description": "The bot's bare JID, user@domain"},
    "password": {"type": "string", "description": "The account's password, a secret"},
    "server": {"type": "string", "description": "Host name or IP address to connect to (default: the JID's domain)"},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 5222},
    "resource": {"type": "string", "default": "talon"},
    "nick": {"type": "string", "description": "The nick in rooms (default: the JID's local part)"},
    "rooms": {"type": "array", "items": {"type": "string"}, "description": "Bare JIDs of the rooms to join, room@conference.domain"}
  }
}"##;

/// How long `connect` waits for login, bind and every room's join.
const CONNECT_TIMEOUT_MS: u64 = 15_000;
/// Silence after which the server is pinged (XEP-0199), and after which an
/// unanswered ping means the connection is gone.
const PING_AFTER_MS: u64 = 60_000;
const DEAD_AFTER_MS: u64 = 120_000;
/// The longest body one `send` takes; the host splits longer replies.
const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Streamed replies open at once (each holds its text until it ends).
const MAX_STREAMS: usize = 64;
/// A rejoined room's history covers the time we were away, at most a day.
const MAX_HISTORY_SECONDS: u64 = 86_400;

/// A reply being streamed: one message, corrected as it grows.
struct Streamed {
    id: String,
    to: Destination,
    text: String,
    /// The id of the message first sent, which corrections replace.
    first: Option<String>,
}

struct Session {
    stream: TcpStream,
    parser: StreamParser,
    /// Our bare JID and the full JID the server bound.
    bare: String,
    bound: String,
    nick: String,
    /// Joined rooms' bare JIDs, lowercased.
    rooms: Vec<String>,
    server: String,
    events: Vec<ChannelEvent>,
    streams: Vec<Streamed>,
    last_heard_ms: u64,
    pinged: bool,
    lost: Option<String>,
}

static SESSION: Mutex<Option<Session>> = Mutex::new(None);
/// When the last connection last heard the server (wall clock, seconds):
/// a reconnection asks the rooms for the history since then, so a message
/// written while the channel was away is not lost (the host deduplicates
/// what it saw already).
static LAST_HEARD_WALL: Mutex<Option<u64>> = Mutex::new(None);
/// The memory key keeping [`LAST_HEARD_WALL`] for a restarted instance or
/// daemon, when memory is granted (`xmpp.*`).
const LAST_HEARD_KEY: &str = "xmpp.last_heard";
/// How often the time last heard is written to memory, in seconds: a
/// rejoin asks for up to this much more history than it missed, which the
/// host deduplicates.
const REMEMBER_EVERY_S: u64 = 30;
/// When the time last heard was last written to memory (wall clock, s).
static REMEMBERED_WALL: Mutex<u64> = Mutex::new(0);

/// Notes that the server was heard now: in this instance, and in memory
/// at most every [`REMEMBER_EVERY_S`]. Without memory granted only this
/// instance knows it, and a new instance rejoins without history.
fn heard_now() {
    let now = wall_seconds();
    *LAST_HEARD_WALL.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
    let mut remembered = REMEMBERED_WALL.lock().unwrap_or_else(|p| p.into_inner());
    if now.saturating_sub(*remembered) >= REMEMBER_EVERY_S {
        // Tried once per interval whether or not memory is granted.
        *remembered = now;
        let _ = memory::set(LAST_HEARD_KEY, &now.to_string());
    }
}

/// When the server was last heard, by this instance or (from memory) an
/// earlier one.
fn last_heard() -> Option<u64> {
    let known = *LAST_HEARD_WALL.lock().unwrap_or_else(|p| p.into_inner());
    known.or_else(|| {
        memory::get(LAST_HEARD_KEY)
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok())
    })
}

fn now_ms() -> u64 {
    wasip2::clocks::monotonic_clock::now() / 1_000_000
}

fn wall_seconds() -> u64 {
    wasip2::clocks::wall_clock::now().seconds
}

/// A fresh stanza id.
fn new_id() -> String {
    format!("talon-{:016x}", wasip2::random::random::get_random_u64())
}

fn remote(e: NetError) -> ChannelError {
    match e {
        NetError::Denied(m) => ChannelError::PermissionDenied(m),
        other => ChannelError::Remote(other.to_string()),
    }
}

fn not_connected() -> ChannelError {
    ChannelError::NotConnected("connect first".into())
}

impl Session {
    fn write(&mut self, data: &str) -> Result<(), ChannelError> {
        self.stream.write_all(data.as_bytes()).map_err(|e| {
            let e = remote(e);
            self.lost = Some(format!("{e:?}"));
            e
        })
    }

    fn fail(&mut self, why: String) -> ChannelError {
        self.lost = Some(why.clone());
        ChannelError::Remote(why)
    }

    /// The next item of the stream, waiting until `deadline_ms` at most
    /// (`None` when nothing complete came in time).
    fn next_item(&mut self, deadline_ms: u64) -> Result<Option<Item>, ChannelError> {
        loop {
            match self.parser.next() {
                Ok(Some(item)) => return Ok(Some(item)),
                Ok(None) => {}
                Err(e) => return Err(self.fail(e.to_string())),
            }
            let left = deadline_ms.saturating_sub(now_ms());
            if left == 0 {
                return Ok(None);
            }
            let bytes = match self.stream.read_timeout(16 * 1024, left) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let e = remote(e);
                    self.lost = Some(format!("{e:?}"));
                    return Err(e);
                }
            };
            if bytes.is_empty() {
                return Ok(None);
            }
            self.last_heard_ms = now_ms();
            self.pinged = false;
            self.parser.push(&bytes);
        }
    }

    /// Like `next_item`, but running out of time is an error of `connect`.
    fn expect_item(&mut self, deadline_ms: u64, what: &str) -> Result<Item, ChannelError> {
        match self.next_item(deadline_ms)? {
            Some(Item::Closed) => Err(self.fail(format!("the server closed the stream {what}"))),
            Some(item) => Ok(item),
            None => Err(self.fail(format!(
                "{}: no answer {what} within {} s",
                self.server,
                CONNECT_TIMEOUT_MS / 1000
            ))),
        }
    }

    /// Opens a stream to `domain` and returns the server's features.
    fn open_stream(&mut self, domain: &str, deadline_ms: u64) -> Result<Element, ChannelError> {
        self.parser.reset();
        self.write(&format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xml:lang='en' \
             xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            escape(domain)
        ))?;
        loop {
            match self.expect_item(deadline_ms, "to the stream header")? {
                Item::Opened(_) => {}
                Item::Stanza(s) if s.name == "stream:features" => return Ok(s),
                Item::Stanza(s) if s.name == "stream:error" => {
                    return Err(self.fail(format!(
                        "the server refused the stream: {}",
                        stanza::error_condition(&s)
                    )));
                }
                Item::Stanza(_) | Item::Closed => {}
            }
        }
    }

    /// Waits for the answer to the IQ `id`, handling whatever else comes.
    fn await_iq(&mut self, id: &str, deadline_ms: u64) -> Result<Element, ChannelError> {
        loop {
            match self.expect_item(deadline_ms, &format!("to the request {id}"))? {
                Item::Stanza(s) if s.name == "iq" && s.attr("id") == Some(id) => return Ok(s),
                Item::Stanza(s) => self.handle(s)?,
                Item::Opened(_) | Item::Closed => {}
            }
        }
    }

    /// Reads what comes within `wait_ms` and handles every stanza.
    fn pump(&mut self, wait_ms: u64) -> Result<(), ChannelError> {
        let deadline = now_ms() + wait_ms;
        while let Some(item) = self.next_item(deadline)? {
            match item {
                Item::Stanza(s) => self.handle(s)?,
                Item::Closed => return Err(self.fail("the server closed the stream".into())),
                Item::Opened(_) => {}
            }
            // Return what came as soon as it came; later stanzas wait for
            // the next receive.
            if !self.events.is_empty() {
                break;
            }
        }
        Ok(())
    }

    fn is_room(&self, bare: &str) -> bool {
        self.rooms.iter().any(|r| r.eq_ignore_ascii_case(bare))
    }

    /// Handles one stanza outside of connect's own requests.
    fn handle(&mut self, s: Element) -> Result<(), ChannelError> {
        match s.name.as_str() {
            "message" => self.handle_message(&s),
            "iq" => self.handle_iq(&s)?,
            "stream:error" => {
                let why = format!("stream error: {}", stanza::error_condition(&s));
                return Err(self.fail(why));
            }
            "presence" if s.attr("type") == Some("error") => {
                log(
                    Level::Warn,
                    &format!(
                        "presence error from {}: {}",
                        s.attr("from").unwrap_or("?"),
                        stanza::error_condition(&s)
                    ),
                );
            }
            _ => {}
        }
        Ok(())
    }

    fn handle_iq(&mut self, iq: &Element) -> Result<(), ChannelError> {
        let kind = iq.attr("type").unwrap_or_default();
        if kind != "get" && kind != "set" {
            return Ok(());
        }
        let id = escape(iq.attr("id").unwrap_or_default());
        let to = iq
            .attr("from")
            .map(|f| format!(" to='{}'", escape(f)))
            .unwrap_or_default();
        // A request must be answered (RFC 6120 8.2.3): a ping with a
        // result, anything else with service-unavailable.
        let answer = if kind == "get" && iq.child("ping", Some(stanza::NS_PING)).is_some() {
            format!("<iq type='result' id='{id}'{to}/>")
        } else {
            format!(
                "<iq type='error' id='{id}'{to}><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            )
        };
        self.write(&answer)
    }

    fn handle_message(&mut self, m: &Element) {
        let kind = m.attr("type").unwrap_or("normal");
        if kind == "error" {
            log(
                Level::Warn,
                &format!(
                    "message error from {}: {}",
                    m.attr("from").unwrap_or("?"),
                    stanza::error_condition(m)
                ),
            );
            return;
        }
        let Some(from) = m.attr("from").and_then(Jid::parse) else {
            return;
        };
        let in_room = self.is_room(&from.bare);
        let (chat_id, chat_kind, sender) = match (kind, in_room) {
            ("groupchat", true) => {
                let Some(nick) = from.resource.clone() else {
                    // The room itself (a subject, a notice): not a person.
                    return;
                };
                if nick == self.nick {
                    return;
                }
                let sender = Sender {
                    id: from.full(),
                    display_name: Some(nick),
                    is_bot: false,
                };
                (from.bare.clone(), ChatKind::Group, sender)
            }
            ("groupchat", false) => return,
            // A private message from a room occupant: the chat is the occupant.
            (_, true) => {
                let Some(nick) = from.resource.clone() else {
                    return;
                };
                let sender = Sender {
                    id: from.full(),
                    display_name: Some(nick),
                    is_bot: false,
                };
                (from.full(), ChatKind::Direct, sender)
            }
            _ => {
                if from.bare == self.bare {
                    // Our own other resources (carbons are not enabled).
                    return;
                }
                let sender = Sender {
                    id: from.bare.clone(),
                    display_name: None,
                    is_bot: false,
                };
                (from.bare.clone(), ChatKind::Direct, sender)
            }
        };
        let id = message_id(m, &chat_id, &self.bare);
        if let Some(body) = m.child("body", None) {
            let text = body.text.clone();
            let mentioned = chat_kind == ChatKind::Direct
                || text.to_lowercase().contains(&self.nick.to_lowercase());
            let thread_id = m
                .child("thread", None)
                .map(|t| t.text.trim().to_string())
                .filter(|t| !t.is_empty());
            let reply_to = m
                .child("reply", Some(NS_REPLY))
                .and_then(|r| r.attr("id"))
                .map(str::to_string);
            self.events.push(ChannelEvent::Message(InboundMessage {
                id,
                chat_id,
                chat_kind,
                thread_id,
                reply_to,
                sender,
                text,
                attachments: Vec::new(),
                mentioned,
                timestamp_ms: m
                    .child("delay", Some(stanza::NS_DELAY))
                    .and_then(|d| d.attr("stamp"))
                    .and_then(stanza::parse_stamp_ms),
            }));
            return;
        }
        if let Some(reactions) = m.child("reactions", Some(NS_REACTIONS))
            && let Some(target) = reactions.attr("id")
        {
            for reaction in reactions
                .children
                .iter()
                .filter(|c| c.local() == "reaction")
            {
                self.events.push(ChannelEvent::Reaction((
                    chat_id.clone(),
                    target.to_string(),
                    reaction.text.clone(),
                    sender.clone(),
                )));
            }
            return;
        }
        if let Some(state) = m.children_in(NS_CHATSTATES).next() {
            let typing = state.local() == "composing";
            self.events
                .push(ChannelEvent::Typing((chat_id, sender, typing)));
        }
    }

    /// Joins a room and waits for our own presence in it (status 110);
    /// a new room is configured as an instant room.
    fn join(&mut self, room: &str, history: &str, deadline_ms: u64) -> Result<(), ChannelError> {
        let occupant = format!("{room}/{}", self.nick);
        self.write(&format!(
            "<presence to='{}'><x xmlns='http://jabber.org/protocol/muc'>{history}</x></presence>",
            escape(&occupant)
        ))?;
        loop {
            let item = self.expect_item(deadline_ms, &format!("to joining {room}"))?;
            let Item::Stanza(s) = item else { continue };
            let from_room = s
                .attr("from")
                .and_then(Jid::parse)
                .is_some_and(|j| j.bare.eq_ignore_ascii_case(room));
            if s.name != "presence" || !from_room {
                self.handle(s)?;
                continue;
            }
            if s.attr("type") == Some("error") {
                return Err(self.fail(format!(
                    "cannot join {room}: {}",
                    stanza::error_condition(&s)
                )));
            }
            let codes: Vec<&str> = s
                .child("x", Some(NS_MUC_USER))
                .map(|x| {
                    x.children
                        .iter()
                        .filter(|c| c.local() == "status")
                        .filter_map(|c| c.attr("code"))
                        .collect()
                })
                .unwrap_or_default();
            if !codes.contains(&"110") {
                continue;
            }
            if codes.contains(&"201") {
                // We created it: accept the default configuration so
                // others can enter (XEP-0045 10.1.2, instant room).
                self.write(&format!(
                    "<iq type='set' id='{}' to='{}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
                     <x xmlns='jabber:x:data' type='submit'/></query></iq>",
                    new_id(),
                    escape(room)
                ))?;
            }
            return Ok(());
        }
    }

    /// Writes one message stanza; returns its id.
    fn send_message(
        &mut self,
        to: &Destination,
        body: Option<&str>,
        extra: &str,
    ) -> Result<String, ChannelError> {
        let kind = if !to.chat_id.contains('/') && self.is_room(&to.chat_id) {
            "groupchat"
        } else {
            "chat"
        };
        let id = new_id();
        let mut xml = format!(
            "<message to='{}' type='{kind}' id='{id}'>",
            escape(&to.chat_id)
        );
        if let Some(body) = body {
            xml.push_str(&format!("<body>{}</body>", escape(body)));
        }
        if let Some(thread) = &to.thread_id {
            xml.push_str(&format!("<thread>{}</thread>", escape(thread)));
        }
        xml.push_str(extra);
        xml.push_str(&format!(
            "<origin-id xmlns='{NS_SID}' id='{id}'/></message>"
        ));
        self.write(&xml)?;
        Ok(id)
    }
}

/// The id the host deduplicates on: the room's (or our server's) stanza id
/// where it assigned one (XEP-0359), else the sender's origin id, else the
/// stanza's `id`.
fn message_id(m: &Element, chat_id: &str, our_bare: &str) -> Option<String> {
    let assigned = m.children_in(NS_SID).find(|c| {
        c.local() == "stanza-id"
            && c.attr("by")
                .is_some_and(|by| by.eq_ignore_ascii_case(chat_id) || by == our_bare)
    });
    assigned
        .or_else(|| m.child("origin-id", Some(NS_SID)))
        .and_then(|c| c.attr("id"))
        .or_else(|| m.attr("id"))
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

fn check_destination(to: &Destination) -> Result<(), ChannelError> {
    if Jid::parse(&to.chat_id).is_none() {
        return Err(ChannelError::Invalid(format!(
            "{:?} is not a JID (a room's bare JID, a person's bare JID or an occupant's JID)",
            to.chat_id
        )));
    }
    Ok(())
}

fn check_length(text: &str) -> Result<(), ChannelError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ChannelError::Invalid(format!(
            "a message of {} bytes; at most {MAX_MESSAGE_BYTES} per message",
            text.len()
        )));
    }
    Ok(())
}

fn with_session<T>(
    f: impl FnOnce(&mut Session) -> Result<T, ChannelError>,
) -> Result<T, ChannelError> {
    let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
    let session = guard.as_mut().ok_or_else(not_connected)?;
    if let Some(lost) = &session.lost {
        return Err(ChannelError::NotConnected(lost.clone()));
    }
    f(session)
}

/// The XMPP channel.
struct Xmpp;

impl Guest for Xmpp {
    fn describe() -> ChannelInfo {
        ChannelInfo {
            name: "xmpp".into(),
            display_name: "XMPP".into(),
            config_schema: CONFIG_SCHEMA.into(),
            secret_keys: vec!["password".into()],
            capabilities: Capabilities::TYPING
                | Capabilities::REACTIONS
                | Capabilities::EDITS
                | Capabilities::THREADS,
            max_message_bytes: MAX_MESSAGE_BYTES as u32,
        }
    }

    fn connect(config: String) -> Result<(), ChannelError> {
        let config: Config = talon_sdk::serde_json::from_str(&config)
            .map_err(|e| ChannelError::Invalid(format!("configuration: {e}")))?;
        let jid = Jid::parse(&config.jid)
            .filter(|j| j.resource.is_none() && j.local.is_some())
            .ok_or_else(|| {
                ChannelError::Invalid(format!("jid {:?}: a bare JID, user@domain", config.jid))
            })?;
        let local = jid.local.clone().unwrap_or_default();
        let mut rooms = Vec::new();
        for room in &config.rooms {
            match Jid::parse(room) {
                Some(r) if r.resource.is_none() && r.local.is_some() => rooms.push(r.bare),
                _ => {
                    return Err(ChannelError::Invalid(format!(
                        "room {room:?}: a room's bare JID, room@conference.domain"
                    )));
                }
            }
        }
        let nick = config.nick.clone().unwrap_or_else(|| local.clone());
        if nick.is_empty() || nick.chars().any(char::is_control) {
            return Err(ChannelError::Invalid(format!("nick {nick:?}")));
        }
        let resource = config.resource.clone().unwrap_or_else(|| "talon".into());
        let host = config.server.clone().unwrap_or_else(|| jid.domain.clone());

        let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut old) = guard.take() {
            let _ = old.write("</stream:stream>");
        }
        let stream = TcpStream::connect(&host, config.port, CONNECT_TIMEOUT_MS).map_err(remote)?;
        let mut session = Session {
            stream,
            parser: StreamParser::default(),
            bare: jid.bare.clone(),
            bound: String::new(),
            nick,
            rooms: Vec::new(),
            server: format!("{host}:{}", config.port),
            events: Vec::new(),
            streams: Vec::new(),
            last_heard_ms: now_ms(),
            pinged: false,
            lost: None,
        };
        let deadline = now_ms() + CONNECT_TIMEOUT_MS;

        // Login: SASL PLAIN on the first stream.
        let features = session.open_stream(&jid.domain, deadline)?;
        if let Some(tls) = features.child("starttls", Some(stanza::NS_TLS))
            && tls.child("required", None).is_some()
        {
            return Err(ChannelError::Unsupported(format!(
                "{} requires STARTTLS, and TLS is not supported yet: allow plain-text \
                 client connections on this server (loopback or a trusted network only)",
                session.server
            )));
        }
        let plain = features
            .child("mechanisms", Some(stanza::NS_SASL))
            .is_some_and(|m| m.children.iter().any(|c| c.text.trim() == "PLAIN"));
        if !plain {
            return Err(ChannelError::Unsupported(format!(
                "{} offers no SASL PLAIN login on a plain-text connection",
                session.server
            )));
        }
        let credentials = base64_encode(&format!("\0{local}\0{}", config.password));
        session.write(&format!(
            "<auth xmlns='{}' mechanism='PLAIN'>{credentials}</auth>",
            stanza::NS_SASL
        ))?;
        match session.expect_item(deadline, "to the login")? {
            Item::Stanza(s) if s.local() == "success" => {}
            Item::Stanza(s) if s.local() == "failure" => {
                let condition = s
                    .children
                    .first()
                    .map(|c| c.local().to_string())
                    .unwrap_or_default();
                return Err(ChannelError::Remote(format!(
                    "the server refused the login of {}: {condition}",
                    jid.bare
                )));
            }
            other => {
                return Err(session.fail(format!("unexpected answer to the login: {other:?}")));
            }
        }

        // Bind a resource on the second stream.
        session.open_stream(&jid.domain, deadline)?;
        session.write(&format!(
            "<iq type='set' id='bind'><bind xmlns='{}'><resource>{}</resource></bind></iq>",
            stanza::NS_BIND,
            escape(&resource)
        ))?;
        let bound = session.await_iq("bind", deadline)?;
        if bound.attr("type") != Some("result") {
            return Err(session.fail(format!(
                "the server refused to bind {resource}: {}",
                stanza::error_condition(&bound)
            )));
        }
        session.bound = bound
            .child("bind", Some(stanza::NS_BIND))
            .and_then(|b| b.child("jid", None))
            .map(|j| j.text.trim().to_string())
            .unwrap_or_else(|| format!("{}/{resource}", jid.bare));

        // Available; then the rooms, with the history we missed when
        // reconnecting.
        session.write("<presence/>")?;
        let history = {
            match last_heard() {
                Some(then) => format!(
                    "<history seconds='{}'/>",
                    (wall_seconds().saturating_sub(then) + 10).min(MAX_HISTORY_SECONDS)
                ),
                None => "<history maxstanzas='0'/>".to_string(),
            }
        };
        session.rooms = rooms.clone();
        for room in &rooms {
            session.join(room, &history, deadline)?;
        }
        session.last_heard_ms = now_ms();
        log(
            Level::Info,
            &format!(
                "connected to {} as {}, joined {}",
                session.server,
                session.bound,
                rooms.join(", ")
            ),
        );
        heard_now();
        *guard = Some(session);
        Ok(())
    }

    fn receive(max_wait_ms: u32) -> Result<Vec<ChannelEvent>, ChannelError> {
        let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
        let session = guard.as_mut().ok_or_else(not_connected)?;
        if let Some(lost) = &session.lost {
            return Err(ChannelError::Remote(lost.clone()));
        }
        if session.events.is_empty() {
            session.pump(u64::from(max_wait_ms))?;
        }
        let silent = now_ms().saturating_sub(session.last_heard_ms);
        if silent > DEAD_AFTER_MS {
            let why = format!("no answer from the server for {} s", silent / 1000);
            return Err(session.fail(why));
        }
        if silent < PING_AFTER_MS {
            heard_now();
        } else if !session.pinged {
            session.pinged = true;
            let domain = Jid::parse(&session.bare)
                .map(|j| j.domain)
                .unwrap_or_default();
            session.write(&format!(
                "<iq type='get' id='{}' to='{}'><ping xmlns='{}'/></iq>",
                new_id(),
                escape(&domain),
                stanza::NS_PING
            ))?;
        }
        Ok(std::mem::take(&mut session.events))
    }

    fn send(message: OutboundMessage) -> Result<Vec<String>, ChannelError> {
        check_destination(&message.to)?;
        check_length(&message.text)?;
        if message.text.trim().is_empty() {
            return Err(ChannelError::Invalid("an empty message".into()));
        }
        if !message.attachments.is_empty() {
            return Err(ChannelError::Unsupported(
                "attachments are not supported yet: send them as URLs in the text".into(),
            ));
        }
        let reply = message
            .to
            .reply_to
            .as_ref()
            .map(|id| format!("<reply xmlns='{NS_REPLY}' id='{}'/>", escape(id)))
            .unwrap_or_default();
        with_session(|s| {
            let extra = format!("{reply}<active xmlns='{NS_CHATSTATES}'/>");
            s.send_message(&message.to, Some(&message.text), &extra)
                .map(|id| vec![id])
        })
    }

    fn typing(to: Destination) -> Result<(), ChannelError> {
        check_destination(&to)?;
        with_session(|s| {
            let extra =
                format!("<composing xmlns='{NS_CHATSTATES}'/><no-store xmlns='urn:xmpp:hints'/>");
            s.send_message(&to, None, &extra).map(|_| ())
        })
    }

    fn react(chat_id: String, message_id: String, reaction: String) -> Result<(), ChannelError> {
        let to = Destination {
            chat_id,
            thread_id: None,
            reply_to: None,
        };
        check_destination(&to)?;
        if reaction.is_empty() || reaction.len() > 64 || message_id.is_empty() {
            return Err(ChannelError::Invalid(
                "a reaction is 1 to 64 bytes, to a message id".into(),
            ));
        }
        with_session(|s| {
            let extra = format!(
                "<reactions xmlns='{NS_REACTIONS}' id='{}'><reaction>{}</reaction></reactions>\
                 <store xmlns='urn:xmpp:hints'/>",
                escape(&message_id),
                escape(&reaction)
            );
            s.send_message(&to, None, &extra).map(|_| ())
        })
    }

    fn stream_start(to: Destination) -> Result<String, ChannelError> {
        check_destination(&to)?;
        with_session(|s| {
            if s.streams.len() >= MAX_STREAMS {
                return Err(ChannelError::Invalid(format!(
                    "{MAX_STREAMS} streamed replies are open already: end one first"
                )));
            }
            let id = new_id();
            s.streams.push(Streamed {
                id: id.clone(),
                to,
                text: String::new(),
                first: None,
            });
            Ok(id)
        })
    }

    fn stream_delta(stream_id: String, text: String) -> Result<(), ChannelError> {
        with_session(|s| {
            let index = s
                .streams
                .iter()
                .position(|st| st.id == stream_id)
                .ok_or_else(|| ChannelError::Invalid(format!("no open stream {stream_id:?}")))?;
            if text.is_empty() {
                return Ok(());
            }
            let grown = s.streams[index].text.len() + text.len();
            if grown > MAX_MESSAGE_BYTES {
                return Err(ChannelError::Invalid(format!(
                    "a streamed reply of {grown} bytes; at most {MAX_MESSAGE_BYTES}"
                )));
            }
            s.streams[index].text.push_str(&text);
            let (to, body, first) = {
                let st = &s.streams[index];
                (st.to.clone(), st.text.clone(), st.first.clone())
            };
            // The first piece is a message; every later one corrects it
            // (XEP-0308: a correction names the original message's id).
            let extra = first
                .as_ref()
                .map(|id| format!("<replace xmlns='{}' id='{}'/>", stanza::NS_CORRECT, id))
                .unwrap_or_default();
            let id = s.send_message(&to, Some(&body), &extra)?;
            if first.is_none() {
                s.streams[index].first = Some(id);
            }
            Ok(())
        })
    }

    fn stream_end(stream_id: String) -> Result<String, ChannelError> {
        with_session(|s| {
            let index = s
                .streams
                .iter()
                .position(|st| st.id == stream_id)
                .ok_or_else(|| ChannelError::Invalid(format!("no open stream {stream_id:?}")))?;
            let streamed = s.streams.remove(index);
            match streamed.first {
                Some(id) => {
                    let extra = format!("<active xmlns='{NS_CHATSTATES}'/>");
                    s.send_message(&streamed.to, None, &extra)?;
                    Ok(id)
                }
                None => Err(ChannelError::Invalid(
                    "the streamed reply carried no text".into(),
                )),
            }
        })
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookResponse, ChannelError> {
        Err(ChannelError::Unsupported(
            "XMPP does not push over HTTP".into(),
        ))
    }

    fn health() -> ChannelHealth {
        let guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            None => ChannelHealth {
                state: ConnectionState::Disconnected,
                detail: "not connected".into(),
            },
            Some(s) if s.lost.is_some() => ChannelHealth {
                state: ConnectionState::Disconnected,
                detail: s.lost.clone().unwrap_or_default(),
            },
            Some(s) if now_ms().saturating_sub(s.last_heard_ms) > DEAD_AFTER_MS => ChannelHealth {
                state: ConnectionState::Disconnected,
                detail: format!("{}: silent", s.server),
            },
            Some(s) => ChannelHealth {
                state: ConnectionState::Connected,
                detail: format!("{} as {}", s.server, s.bound),
            },
        }
    }

    fn disconnect() {
        let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut session) = guard.take() {
            let _ = session.write("<presence type='unavailable'/></stream:stream>");
        }
    }
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

// Exported only in the component: natively (unit tests) there is no host.
#[cfg(target_arch = "wasm32")]
wit::export!(Xmpp with_types_in wit);
