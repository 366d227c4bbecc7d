//! The email channel: unseen messages of an IMAP mailbox in, replies out
//! over SMTP in the same thread. Each sender is a direct chat; a thread is
//! the first message of the conversation (the root of `References`). A
//! message is marked `\Seen` only at the next `receive`, once the host has
//! taken the events of the one before: a crash in between leaves it unseen
//! and it is delivered again with the same id (its Message-ID), which the
//! host deduplicates.
//!
//! Plain TCP only (no STARTTLS or implicit TLS yet): use it with servers on
//! loopback or a trusted network.

mod imap;
mod smtp;

#[allow(clippy::all, missing_docs)]
mod wit {
    talon_sdk::channel_world!();
}

use std::collections::VecDeque;
use std::sync::Mutex;

use mail_parser::MessageParser;
use talon_sdk::net::NetError;
use talon_sdk::serde::Deserialize;
use wit::exports::talon::plugin::channel_adapter::Guest;
use wit::talon::plugin::channel_types::{
    Capabilities, ChannelError, ChannelEvent, ChannelHealth, ChannelInfo, ChatKind,
    ConnectionState, Destination, InboundMessage, OutboundMessage, Sender, WebhookRequest,
    WebhookResponse,
};
use wit::talon::plugin::log::{Level, log};

use imap::{Imap, ImapError};

/// The channel's configuration (`config-schema` describes it).
#[derive(Deserialize)]
#[serde(crate = "talon_sdk::serde", deny_unknown_fields)]
struct Config {
    address: String,
    imap_server: String,
    #[serde(default = "default_imap_port")]
    imap_port: u16,
    username: String,
    password: String,
    #[serde(default = "default_mailbox")]
    mailbox: String,
    smtp_server: String,
    #[serde(default = "default_smtp_port")]
    smtp_port: u16,
    #[serde(default)]
    smtp_username: Option<String>,
    #[serde(default)]
    smtp_password: Option<String>,
}

fn default_imap_port() -> u16 {
    143
}
fn default_smtp_port() -> u16 {
    25
}
fn default_mailbox() -> String {
    "INBOX".into()
}

const CONFIG_SCHEMA: &str = r##"{
  "type": "object",
  "required": ["address", "imap_server", "username", "password", "smtp_server"],
  "additionalProperties": false,
  "properties": {
    "address": {"type": "string", "description": "The bot's address, the From of its replies"},
    "imap_server": {"type": "string"},
    "imap_port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 143},
    "username": {"type": "string", "description": "IMAP login"},
    "password": {"type": "string", "description": "IMAP password, a secret"},
    "mailbox": {"type": "string", "default": "INBOX"},
    "smtp_server": {"type": "string"},
    "smtp_port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 25},
    "smtp_username": {"type": "string", "description": "SMTP login (AUTH PLAIN), if the server wants one"},
    "smtp_password": {"type": "string", "description": "SMTP password, a secret"}
  }
}"##;

const TIMEOUT_MS: u64 = 15_000;
/// The most of one message fetched; a larger one arrives truncated, and
/// says so.
const MAX_FETCH: usize = 1024 * 1024;
/// The most text of one message handed to the host, a truncation note
/// included (the host keeps at most 64 KiB of a message).
const MAX_TEXT: usize = 64 * 1024;
/// Messages fetched per receive; the rest wait for the next one.
const FETCH_BATCH: usize = 8;
/// Threads remembered for replies (subject and references), oldest dropped.
const MAX_THREADS: usize = 512;
/// The longest reply one `send` takes; the host splits longer ones.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// What a reply needs of the message it answers.
struct Known {
    message_id: String,
    subject: String,
    references: Vec<String>,
}

struct Session {
    imap: Imap,
    config: Config,
    idle: bool,
    uidvalidity: u64,
    /// Fetched and handed to the host: marked seen at the next receive.
    to_mark: Vec<u32>,
    known: VecDeque<Known>,
    lost: Option<String>,
}

static SESSION: Mutex<Option<Session>> = Mutex::new(None);

fn now_ms() -> u64 {
    wasip2::clocks::monotonic_clock::now() / 1_000_000
}

fn imap_error(e: ImapError) -> ChannelError {
    match e {
        ImapError::Net(NetError::Denied(m)) => ChannelError::PermissionDenied(m),
        other => ChannelError::Remote(format!("IMAP: {other}")),
    }
}

/// A plain address: something@domain, nothing that could break a header
/// or an SMTP command.
fn valid_address(address: &str) -> bool {
    let parts: Vec<&str> = address.split('@').collect();
    address.len() <= 254
        && parts.len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && !address
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "<>()[],;:\"\\".contains(c))
}

/// `<id>` as a header wants it.
fn angle(id: &str) -> String {
    format!("<{}>", id.trim_matches(['<', '>']))
}

impl Known {
    /// What a reply to `parsed` (whose id is `message_id`) needs of it.
    fn of(parsed: &mail_parser::Message<'_>, message_id: &str) -> Self {
        let mut references: Vec<String> = parsed
            .references()
            .as_text_list()
            .map(|l| l.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        references.push(message_id.to_string());
        Self {
            message_id: message_id.to_string(),
            subject: parsed.subject().unwrap_or_default().to_string(),
            references,
        }
    }
}

impl Session {
    /// The message `id` as found in the mailbox, when this connection has
    /// not fetched it: after a restart the host answers messages fetched
    /// by an earlier instance, and their replies keep the subject and the
    /// references all the same. A connection lost on the way is noticed
    /// (the next receive reconnects); the reply then goes out without them.
    fn look_up(&mut self, id: &str) -> Option<()> {
        let quoted = imap::quote(&angle(id))?;
        let found = self
            .imap
            .with_message_id(&quoted, now_ms() + TIMEOUT_MS)
            .map_err(|e| self.fail(e))
            .ok()?;
        let uid = *found.last()?;
        let fetched = self
            .imap
            .fetch(uid, MAX_TEXT, now_ms() + TIMEOUT_MS)
            .map_err(|e| self.fail(e))
            .ok()?;
        let parsed = MessageParser::default().parse(&fetched.bytes)?;
        let message_id = parsed.message_id()?.to_string();
        if message_id != id.trim_matches(['<', '>']) {
            return None;
        }
        self.remember(Known::of(&parsed, &message_id));
        Some(())
    }

    fn fail(&mut self, e: ImapError) -> ChannelError {
        let e = imap_error(e);
        self.lost = Some(format!("{e:?}"));
        e
    }

    fn remember(&mut self, known: Known) {
        if self.known.len() >= MAX_THREADS {
            self.known.pop_front();
        }
        self.known.push_back(known);
    }

    fn message_event(&mut self, fetched: imap::Fetched) -> Option<ChannelEvent> {
        let truncated = fetched.size as usize > fetched.bytes.len();
        let Some(parsed) = MessageParser::default().parse(&fetched.bytes) else {
            log(
                Level::Warn,
                &format!("message {} is not a readable email; skipped", fetched.uid),
            );
            return None;
        };
        let Some(from) = parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address.as_deref())
            .filter(|a| valid_address(a))
            .map(str::to_lowercase)
        else {
            log(
                Level::Warn,
                &format!("message {} has no usable From; skipped", fetched.uid),
            );
            return None;
        };
        let display_name = parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.name.as_deref())
            .map(str::to_string);
        let message_id = parsed
            .message_id()
            .map(str::to_string)
            .unwrap_or_else(|| format!("imap-{}-{}", self.uidvalidity, fetched.uid));
        let known = Known::of(&parsed, &message_id);
        let in_reply_to = parsed.in_reply_to().as_text().map(str::to_string);
        // The thread is the root of References (the last one is this message).
        let thread = known
            .references
            .split_last()
            .and_then(|(_, earlier)| earlier.first())
            .cloned()
            .or_else(|| in_reply_to.clone())
            .unwrap_or_else(|| message_id.clone());
        let mut text = parsed
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default();
        if truncated || text.len() > MAX_TEXT {
            // The note fits within MAX_TEXT with the text, which is the
            // host's own limit too: cut after it, the note would be lost.
            let note = format!(
                "\n\n[truncated: the message has {} bytes; only the beginning is shown]",
                fetched.size.max(fetched.bytes.len() as u64)
            );
            let mut end = text.len().min(MAX_TEXT - note.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str(&note);
        }
        self.remember(known);
        Some(ChannelEvent::Message(InboundMessage {
            id: Some(message_id),
            chat_id: from.clone(),
            chat_kind: ChatKind::Direct,
            thread_id: Some(thread),
            reply_to: in_reply_to,
            sender: Sender {
                id: from,
                display_name,
                is_bot: false,
            },
            text,
            attachments: Vec::new(),
            mentioned: true,
            timestamp_ms: parsed
                .date()
                .and_then(|d| u64::try_from(d.to_timestamp()).ok())
                .map(|s| s * 1000),
        }))
    }

    fn receive(&mut self, max_wait_ms: u64) -> Result<Vec<ChannelEvent>, ChannelError> {
        let deadline = now_ms() + max_wait_ms;
        if !self.to_mark.is_empty() {
            let set = self
                .to_mark
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            self.imap
                .command(
                    &format!("UID STORE {set} +FLAGS.SILENT (\\Seen)"),
                    now_ms() + TIMEOUT_MS,
                )
                .map_err(|e| self.fail(e))?;
            self.to_mark.clear();
        }
        let mut unseen = self
            .imap
            .unseen(now_ms() + TIMEOUT_MS)
            .map_err(|e| self.fail(e))?;
        if unseen.is_empty() && max_wait_ms > 0 {
            if self.idle {
                self.imap.idle(deadline).map_err(|e| self.fail(e))?;
            } else {
                // No IDLE: the wait is a read that nothing answers.
                self.imap.read_line(deadline).map_err(|e| self.fail(e))?;
            }
            unseen = self
                .imap
                .unseen(now_ms() + TIMEOUT_MS)
                .map_err(|e| self.fail(e))?;
        }
        let mut events = Vec::new();
        for uid in unseen.into_iter().take(FETCH_BATCH) {
            let fetched = self
                .imap
                .fetch(uid, MAX_FETCH, now_ms() + TIMEOUT_MS)
                .map_err(|e| self.fail(e))?;
            if let Some(event) = self.message_event(fetched) {
                events.push(event);
            }
            // Unreadable ones are marked too, or they would come back forever.
            self.to_mark.push(uid);
        }
        Ok(events)
    }
}

fn with_session<T>(
    f: impl FnOnce(&mut Session) -> Result<T, ChannelError>,
) -> Result<T, ChannelError> {
    let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
    let session = guard
        .as_mut()
        .ok_or_else(|| ChannelError::NotConnected("connect first".into()))?;
    f(session)
}

/// The email channel.
struct Email;

impl Guest for Email {
    fn describe() -> ChannelInfo {
        ChannelInfo {
            name: "email".into(),
            display_name: "Email".into(),
            config_schema: CONFIG_SCHEMA.into(),
            secret_keys: vec!["password".into(), "smtp_password".into()],
            capabilities: Capabilities::THREADS,
            max_message_bytes: MAX_MESSAGE_BYTES as u32,
        }
    }

    fn connect(config: String) -> Result<(), ChannelError> {
        let config: Config = talon_sdk::serde_json::from_str(&config)
            .map_err(|e| ChannelError::Invalid(format!("configuration: {e}")))?;
        if !valid_address(&config.address) {
            return Err(ChannelError::Invalid(format!(
                "address {:?}: a plain address, user@domain",
                config.address
            )));
        }
        if config.smtp_username.is_some() != config.smtp_password.is_some() {
            return Err(ChannelError::Invalid(
                "smtp_username and smtp_password go together".into(),
            ));
        }
        let (Some(user), Some(password), Some(mailbox)) = (
            imap::quote(&config.username),
            imap::quote(&config.password),
            imap::quote(&config.mailbox),
        ) else {
            return Err(ChannelError::Invalid(
                "username, password and mailbox cannot hold line breaks".into(),
            ));
        };
        let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
        // What the last connection knew: the threads, and the messages the
        // host took but that were not marked seen yet (still valid while
        // the mailbox's UIDVALIDITY is the same).
        let (known, to_mark, old_validity) = guard
            .take()
            .map(|s| (s.known, s.to_mark, s.uidvalidity))
            .unwrap_or_default();
        let mut imap = Imap::connect(&config.imap_server, config.imap_port, TIMEOUT_MS, MAX_FETCH)
            .map_err(imap_error)?;
        let deadline = now_ms() + TIMEOUT_MS;
        imap.command(&format!("LOGIN {user} {password}"), deadline)
            .map_err(|e| match e {
                ImapError::Refused(m) => {
                    ChannelError::Remote(format!("the IMAP server refused the login: {m}"))
                }
                other => imap_error(other),
            })?;
        let capabilities = imap.command("CAPABILITY", deadline).map_err(imap_error)?;
        let idle = capabilities
            .untagged
            .iter()
            .any(|l| l.text.starts_with("* CAPABILITY") && l.text.split(' ').any(|c| c == "IDLE"));
        let selected = imap
            .command(&format!("SELECT {mailbox}"), deadline)
            .map_err(imap_error)?;
        let uidvalidity = selected
            .untagged
            .iter()
            .find_map(|l| imap::number_after(&l.text, "[UIDVALIDITY "))
            .unwrap_or(0);
        log(
            Level::Info,
            &format!(
                "connected to {}:{} as {}, {} selected",
                config.imap_server, config.imap_port, config.username, config.mailbox
            ),
        );
        *guard = Some(Session {
            imap,
            config,
            idle,
            uidvalidity,
            to_mark: if uidvalidity == old_validity {
                to_mark
            } else {
                Vec::new()
            },
            known,
            lost: None,
        });
        Ok(())
    }

    fn receive(max_wait_ms: u32) -> Result<Vec<ChannelEvent>, ChannelError> {
        with_session(|s| {
            if let Some(lost) = &s.lost {
                return Err(ChannelError::Remote(lost.clone()));
            }
            s.receive(u64::from(max_wait_ms))
        })
    }

    fn send(message: OutboundMessage) -> Result<Vec<String>, ChannelError> {
        let to = message.to.chat_id.to_lowercase();
        if !valid_address(&to) {
            return Err(ChannelError::Invalid(format!(
                "{:?} is not an email address",
                message.to.chat_id
            )));
        }
        if message.text.len() > MAX_MESSAGE_BYTES {
            return Err(ChannelError::Invalid(format!(
                "a message of {} bytes; at most {MAX_MESSAGE_BYTES}",
                message.text.len()
            )));
        }
        if !message.attachments.is_empty() {
            return Err(ChannelError::Unsupported(
                "attachments are not supported yet: send them as URLs in the text".into(),
            ));
        }
        with_session(|s| {
            // The message answered: the one named, else the thread's latest
            // we know of, else the thread's root.
            let answered = message
                .to
                .reply_to
                .clone()
                .or_else(|| message.to.thread_id.clone());
            let remembered = answered.as_ref().is_some_and(|id| {
                s.known
                    .iter()
                    .any(|k| k.message_id == *id || k.references.first() == Some(id))
            });
            if !remembered && let Some(id) = &answered {
                s.look_up(id);
            }
            let known = answered.as_ref().and_then(|id| {
                s.known
                    .iter()
                    .rev()
                    .find(|k| k.message_id == *id || k.references.first() == Some(id))
            });
            let subject = match known.map(|k| k.subject.trim()) {
                Some(subject) if subject.to_lowercase().starts_with("re:") => subject.to_string(),
                Some(subject) if !subject.is_empty() => format!("Re: {subject}"),
                _ => "Re: your message".to_string(),
            };
            let (in_reply_to, references) = match (known, &answered) {
                (Some(k), _) => (Some(k.message_id.clone()), k.references.clone()),
                (None, Some(id)) => (Some(id.clone()), vec![id.clone()]),
                (None, None) => (None, Vec::new()),
            };
            let domain = s
                .config
                .address
                .rsplit('@')
                .next()
                .unwrap_or("talon.invalid")
                .to_string();
            let id = format!(
                "talon-{:016x}@{domain}",
                wasip2::random::random::get_random_u64()
            );
            let mut headers = vec![
                format!("From: {}", s.config.address),
                format!("To: {to}"),
                format!("Subject: {}", smtp::header_value(&subject)),
                format!(
                    "Date: {}",
                    smtp::rfc5322_date(wasip2::clocks::wall_clock::now().seconds)
                ),
                format!("Message-ID: {}", angle(&id)),
            ];
            let clean = |r: &String| !r.chars().any(|c| c.is_control() || c.is_whitespace());
            if let Some(parent) = in_reply_to.as_ref().filter(|r| clean(r)) {
                headers.push(format!("In-Reply-To: {}", angle(parent)));
            }
            let references: Vec<String> = references
                .iter()
                .filter(|r| clean(r))
                .map(|r| angle(r))
                .collect();
            if !references.is_empty() {
                headers.push(format!("References: {}", references.join(" ")));
            }
            headers.push("MIME-Version: 1.0".into());
            headers.push("Content-Type: text/plain; charset=utf-8".into());
            headers.push("Content-Transfer-Encoding: quoted-printable".into());
            let body = smtp::quoted_printable(&message.text);
            let raw = format!("{}\r\n\r\n{body}\r\n", headers.join("\r\n"));
            let login = s
                .config
                .smtp_username
                .as_deref()
                .zip(s.config.smtp_password.as_deref());
            let server = smtp::Server {
                host: &s.config.smtp_server,
                port: s.config.smtp_port,
                login,
                timeout_ms: TIMEOUT_MS,
            };
            smtp::send(&server, &s.config.address, &to, &raw).map_err(|e| match e {
                smtp::SmtpError::Net(NetError::Denied(m)) => ChannelError::PermissionDenied(m),
                other => ChannelError::Remote(other.to_string()),
            })?;
            Ok(vec![id])
        })
    }

    fn typing(_to: Destination) -> Result<(), ChannelError> {
        Err(ChannelError::Unsupported(
            "email has no typing indicator".into(),
        ))
    }

    fn react(_chat: String, _message: String, _reaction: String) -> Result<(), ChannelError> {
        Err(ChannelError::Unsupported("email has no reactions".into()))
    }

    fn stream_start(_to: Destination) -> Result<String, ChannelError> {
        Err(ChannelError::Unsupported(
            "a sent email cannot be edited".into(),
        ))
    }

    fn stream_delta(_stream: String, _text: String) -> Result<(), ChannelError> {
        Err(ChannelError::Unsupported(
            "a sent email cannot be edited".into(),
        ))
    }

    fn stream_end(_stream: String) -> Result<String, ChannelError> {
        Err(ChannelError::Unsupported(
            "a sent email cannot be edited".into(),
        ))
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookResponse, ChannelError> {
        Err(ChannelError::Unsupported(
            "this channel polls IMAP; it takes no webhooks".into(),
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
            Some(s) => ChannelHealth {
                state: ConnectionState::Connected,
                detail: format!(
                    "{}:{} as {}",
                    s.config.imap_server, s.config.imap_port, s.config.username
                ),
            },
        }
    }

    fn disconnect() {
        let mut guard = SESSION.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut session) = guard.take() {
            let _ = session.imap.command("LOGOUT", now_ms() + 2_000);
        }
    }
}

// Exported only in the component: natively (unit tests) there is no host.
#[cfg(target_arch = "wasm32")]
wit::export!(Email with_types_in wit);
