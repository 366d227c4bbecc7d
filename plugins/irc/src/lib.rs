//! The IRC channel: one connection to one server, joined to the configured
//! channels. PRIVMSGs to a joined channel (group chats) or to the bot's
//! nick (direct chats) become inbound messages; replies are sent as
//! PRIVMSGs, one per line of the reply, split to fit IRC's 512-byte lines.
//! PINGs are answered inside `receive`; a server that stays silent is
//! pinged, and one that does not answer is reported as disconnected.
//!
//! `tls = true` connects with implicit TLS (port 6697 unless set): the host
//! runs the handshake and checks the server's certificate (`wasi:tls`, see
//! talon_sdk::net); a failed check refuses the connection, with no fallback
//! to plain text.

mod line;

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

use line::{Line, split_text};

/// The channel's configuration (`config-schema` describes it).
#[derive(Deserialize)]
#[serde(crate = "talon_sdk::serde", deny_unknown_fields)]
struct Config {
    server: String,
    /// 6667, or 6697 with `tls`.
    #[serde(default)]
    port: Option<u16>,
    nick: String,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    realname: Option<String>,
    #[serde(default)]
    tls: bool,
}

impl Config {
    fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 6697 } else { 6667 })
    }
}

const CONFIG_SCHEMA: &str = r##"{
  "type": "object",
  "required": ["server", "nick"],
  "additionalProperties": false,
  "properties": {
    "server": {"type": "string", "description": "Host name or IP address of the IRC server"},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "6667, or 6697 with tls"},
    "nick": {"type": "string", "description": "The bot's nick"},
    "channels": {"type": "array", "items": {"type": "string", "pattern": "^[#&][^ ,\\u0007]+$"}},
    "password": {"type": "string", "description": "Server password (PASS), a secret"},
    "realname": {"type": "string"},
    "tls": {"type": "boolean", "default": false, "description": "Implicit TLS; the server's certificate must name `server` and chain to a trusted root"}
  }
}"##;

/// How long `connect` waits for the server to welcome and join us.
const CONNECT_TIMEOUT_MS: u64 = 15_000;
/// Silence after which the server is pinged, and after which an unanswered
/// ping means the connection is gone.
const PING_AFTER_MS: u64 = 90_000;
const DEAD_AFTER_MS: u64 = 150_000;
/// The most bytes kept waiting for the end of a line; a longer "line" is
/// dropped (servers send at most 512 bytes, 8 KiB with tags).
const MAX_PENDING: usize = 16 * 1024;

struct Session {
    stream: TcpStream,
    nick: String,
    server: String,
    pending: Vec<u8>,
    events: Vec<ChannelEvent>,
    last_heard_ms: u64,
    pinged: bool,
    lost: Option<String>,
}

static SESSION: Mutex<Option<Session>> = Mutex::new(None);

fn now_ms() -> u64 {
    wasip2::clocks::monotonic_clock::now() / 1_000_000
}

fn remote(e: NetError) -> ChannelError {
    match e {
        NetError::Denied(m) => ChannelError::PermissionDenied(m),
        other => ChannelError::Remote(other.to_string()),
    }
}

impl Session {
    fn write_line(&mut self, line: &str) -> Result<(), ChannelError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.stream.write_all(&bytes).map_err(|e| {
            let e = remote(e);
            self.lost = Some(format!("{e:?}"));
            e
        })
    }

    /// Reads what comes within `wait_ms` and handles every complete line.
    fn pump(&mut self, wait_ms: u64) -> Result<(), ChannelError> {
        let bytes = match self.stream.read_timeout(8192, wait_ms) {
            Ok(bytes) => bytes,
            Err(e) => {
                let e = remote(e);
                self.lost = Some(format!("{e:?}"));
                return Err(e);
            }
        };
        if !bytes.is_empty() {
            self.last_heard_ms = now_ms();
            self.pinged = false;
            self.pending.extend_from_slice(&bytes);
        }
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&raw);
            if let Some(line) = Line::parse(text.trim_end_matches(['\r', '\n'])) {
                self.handle(line)?;
            }
        }
        if self.pending.len() > MAX_PENDING {
            log(Level::Warn, "dropped an overlong line from the server");
            self.pending.clear();
        }
        Ok(())
    }

    fn handle(&mut self, line: Line) -> Result<(), ChannelError> {
        match line.command.as_str() {
            "PING" => {
                let token = line.params.first().cloned().unwrap_or_default();
                self.write_line(&format!("PONG :{token}"))?;
            }
            "ERROR" => {
                let why = line.params.join(" ");
                self.lost = Some(why.clone());
                return Err(ChannelError::Remote(format!("the server closed: {why}")));
            }
            "PRIVMSG" if line.params.len() >= 2 => {
                let target = &line.params[0];
                let mut text = line.params[1].clone();
                // CTCP: only ACTION (/me) is a message; the rest is ignored.
                if text.starts_with('\u{1}') {
                    match text.trim_matches('\u{1}').strip_prefix("ACTION ") {
                        Some(action) => text = format!("* {action}"),
                        None => return Ok(()),
                    }
                }
                let nick = line.nick().unwrap_or_default().to_string();
                if nick.is_empty() {
                    return Ok(());
                }
                let group = target.starts_with('#') || target.starts_with('&');
                let mentioned = text.to_lowercase().contains(&self.nick.to_lowercase());
                self.events.push(ChannelEvent::Message(InboundMessage {
                    id: line.message_id(),
                    chat_id: if group { target.clone() } else { nick.clone() },
                    chat_kind: if group {
                        ChatKind::Group
                    } else {
                        ChatKind::Direct
                    },
                    thread_id: None,
                    reply_to: None,
                    sender: Sender {
                        id: nick,
                        display_name: None,
                        is_bot: false,
                    },
                    text,
                    attachments: Vec::new(),
                    mentioned: mentioned || !group,
                    timestamp_ms: line.server_time_ms(),
                }));
            }
            // Nick in use while registering: take another.
            "433" => {
                self.nick.push('_');
                let nick = self.nick.clone();
                self.write_line(&format!("NICK {nick}"))?;
            }
            "NICK" if line.nick() == Some(self.nick.as_str()) => {
                if let Some(new) = line.params.first() {
                    self.nick = new.clone();
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The IRC channel.
struct Irc;

impl Guest for Irc {
    fn describe() -> ChannelInfo {
        ChannelInfo {
            name: "irc".into(),
            display_name: "IRC".into(),
            config_schema: CONFIG_SCHEMA.into(),
            secret_keys: vec!["password".into()],
            capabilities: Capabilities::empty(),
            max_message_bytes: 0,
        }
    }

    fn connect(config: String) -> Result<(), ChannelError> {
        let config: Config = talon_sdk::serde_json::from_str(&config)
            .map_err(|e| ChannelError::Invalid(format!("configuration: {e}")))?;
        if !line::valid_nick(&config.nick) {
            return Err(ChannelError::Invalid(format!(
                "nick {:?}: letters, digits and []\\`_^{{|}}- only, not starting with a digit or -",
                config.nick
            )));
        }
        if let Some(bad) = config.channels.iter().find(|c| !line::valid_channel(c)) {
            return Err(ChannelError::Invalid(format!(
                "channel {bad:?}: starts with # or &, no spaces, commas or control characters"
            )));
        }
        let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut old) = guard.take() {
            let _ = old.write_line("QUIT :reconnecting");
        }
        let port = config.port();
        let stream = if config.tls {
            TcpStream::connect_tls(&config.server, port, &config.server, CONNECT_TIMEOUT_MS)
        } else {
            TcpStream::connect(&config.server, port, CONNECT_TIMEOUT_MS)
        }
        .map_err(remote)?;
        let mut session = Session {
            stream,
            nick: config.nick.clone(),
            server: format!("{}:{port}", config.server),
            pending: Vec::new(),
            events: Vec::new(),
            last_heard_ms: now_ms(),
            pinged: false,
            lost: None,
        };
        if let Some(password) = &config.password {
            session.write_line(&format!("PASS {}", line::one_param(password)))?;
        }
        session.write_line(&format!("NICK {}", config.nick))?;
        let realname = config.realname.as_deref().unwrap_or("Talon");
        session.write_line(&format!(
            "USER {} 0 * :{}",
            config.nick,
            line::one_line(realname)
        ))?;
        let deadline = now_ms() + CONNECT_TIMEOUT_MS;
        // Welcome (001), then every channel's end of names (366).
        let mut welcomed = false;
        let mut joined: Vec<String> = Vec::new();
        let mut registered_lines = Vec::new();
        while !welcomed || joined.len() < config.channels.len() {
            let left = deadline.saturating_sub(now_ms());
            if left == 0 {
                return Err(ChannelError::Remote(format!(
                    "{}: no welcome or join within {} s",
                    session.server,
                    CONNECT_TIMEOUT_MS / 1000
                )));
            }
            let bytes = session.stream.read_timeout(8192, left).map_err(remote)?;
            session.pending.extend_from_slice(&bytes);
            while let Some(end) = session.pending.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = session.pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&raw).into_owned();
                let Some(parsed) = Line::parse(text.trim_end_matches(['\r', '\n'])) else {
                    continue;
                };
                match parsed.command.as_str() {
                    "001" => {
                        welcomed = true;
                        if let Some(nick) = parsed.params.first() {
                            session.nick = nick.clone();
                        }
                        for channel in &config.channels {
                            session.write_line(&format!("JOIN {channel}"))?;
                        }
                    }
                    "366" if parsed.params.len() >= 2 => {
                        joined.push(parsed.params[1].to_lowercase());
                    }
                    "464" | "465" => {
                        return Err(ChannelError::Remote(format!(
                            "the server refused the login: {}",
                            parsed.params.join(" ")
                        )));
                    }
                    // Join failures: banned, invite only, bad key, full.
                    "471" | "473" | "474" | "475" | "403" => {
                        return Err(ChannelError::Remote(format!(
                            "cannot join: {}",
                            parsed.params.join(" ")
                        )));
                    }
                    _ => registered_lines.push(parsed),
                }
            }
        }
        // PINGs and early messages that came while joining.
        for parsed in registered_lines {
            session.handle(parsed)?;
        }
        session.last_heard_ms = now_ms();
        log(
            Level::Info,
            &format!(
                "connected to {} as {}, joined {}",
                session.server,
                session.nick,
                config.channels.join(", ")
            ),
        );
        *guard = Some(session);
        Ok(())
    }

    fn receive(max_wait_ms: u32) -> Result<Vec<ChannelEvent>, ChannelError> {
        let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
        let session = guard
            .as_mut()
            .ok_or_else(|| ChannelError::NotConnected("connect first".into()))?;
        if session.events.is_empty() {
            session.pump(u64::from(max_wait_ms))?;
        }
        let silent = now_ms().saturating_sub(session.last_heard_ms);
        if silent > DEAD_AFTER_MS {
            session.lost = Some(format!("no answer from the server for {} s", silent / 1000));
            return Err(ChannelError::Remote(
                session.lost.clone().unwrap_or_default(),
            ));
        }
        if silent > PING_AFTER_MS && !session.pinged {
            session.pinged = true;
            session.write_line("PING :talon")?;
        }
        Ok(std::mem::take(&mut session.events))
    }

    fn send(message: OutboundMessage) -> Result<Vec<String>, ChannelError> {
        let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
        let session = guard
            .as_mut()
            .ok_or_else(|| ChannelError::NotConnected("connect first".into()))?;
        let target = &message.to.chat_id;
        if !line::valid_channel(target) && !line::valid_nick(target) {
            return Err(ChannelError::Invalid(format!(
                "{target:?} is neither a channel nor a nick"
            )));
        }
        if !message.attachments.is_empty() {
            return Err(ChannelError::Unsupported(
                "IRC carries text only; send attachments as URLs in the text".into(),
            ));
        }
        for chunk in split_text(&message.text, line::text_budget(target)) {
            session.write_line(&format!("PRIVMSG {target} :{chunk}"))?;
        }
        // IRC gives messages no ids.
        Ok(Vec::new())
    }

    fn typing(_to: Destination) -> Result<(), ChannelError> {
        Err(ChannelError::Unsupported(
            "IRC has no typing indicator".into(),
        ))
    }

    fn react(_chat: String, _message: String, _reaction: String) -> Result<(), ChannelError> {
        Err(ChannelError::Unsupported("IRC has no reactions".into()))
    }

    fn stream_start(_to: Destination) -> Result<String, ChannelError> {
        Err(ChannelError::Unsupported(
            "IRC messages cannot be edited".into(),
        ))
    }

    fn stream_delta(_stream: String, _text: String) -> Result<(), ChannelError> {
        Err(ChannelError::Unsupported(
            "IRC messages cannot be edited".into(),
        ))
    }

    fn stream_end(_stream: String) -> Result<String, ChannelError> {
        Err(ChannelError::Unsupported(
            "IRC messages cannot be edited".into(),
        ))
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookResponse, ChannelError> {
        Err(ChannelError::Unsupported(
            "IRC does not push over HTTP".into(),
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
                detail: format!("{} as {}", s.server, s.nick),
            },
        }
    }

    fn disconnect() {
        let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut session) = guard.take() {
            let _ = session.write_line("QUIT :Talon is stopping");
        }
    }
}

// Exported only in the component: natively (unit tests) there is no host.
#[cfg(target_arch = "wasm32")]
wit::export!(Irc with_types_in wit);
