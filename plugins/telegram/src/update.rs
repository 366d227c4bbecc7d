//! Telegram's `Update` objects (the fields the channel reads) and the
//! channel events they become.
//!
//! Message ids: Telegram numbers messages per chat, so an inbound message's
//! id is `<chat id>:<message id>` (an edit adds `:edit:<edit date>`, so the
//! host routes each edit once). Where the host hands an id back (`reply-to`,
//! `react`), both that form and the bare message id are accepted.

use talon_sdk::serde::Deserialize;

use crate::wit::talon::plugin::channel_types::{ChannelEvent, ChatKind, InboundMessage, Sender};

#[derive(Debug, Deserialize)]
#[serde(crate = "talon_sdk::serde")]
pub struct Update {
    /// Required, so that a body without it is refused as not an `Update`;
    /// the channel itself does not need it (polling reads it raw).
    #[allow(dead_code)]
    pub update_id: i64,
    pub message: Option<Message>,
    pub edited_message: Option<Message>,
    pub channel_post: Option<Message>,
    pub edited_channel_post: Option<Message>,
    pub message_reaction: Option<ReactionUpdate>,
}

#[derive(Debug, Deserialize)]
#[serde(crate = "talon_sdk::serde")]
pub struct Message {
    pub message_id: i64,
    pub message_thread_id: Option<i64>,
    #[serde(default)]
    pub is_topic_message: bool,
    pub from: Option<User>,
    pub sender_chat: Option<Chat>,
    pub date: Option<i64>,
    pub edit_date: Option<i64>,
    pub chat: Chat,
    pub text: Option<String>,
    pub caption: Option<String>,
    pub reply_to_message: Option<Box<Message>>,
}

#[derive(Debug, Deserialize)]
#[serde(crate = "talon_sdk::serde")]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(crate = "talon_sdk::serde")]
pub struct Chat {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(crate = "talon_sdk::serde")]
pub struct ReactionUpdate {
    pub chat: Chat,
    pub message_id: i64,
    pub user: Option<User>,
    #[serde(default)]
    pub new_reaction: Vec<Reaction>,
}

#[derive(Debug, Deserialize)]
#[serde(crate = "talon_sdk::serde")]
pub struct Reaction {
    #[serde(rename = "type")]
    pub kind: String,
    pub emoji: Option<String>,
}

/// Who the bot is, for "was it addressed".
#[derive(Debug, Clone)]
pub struct Me {
    pub id: i64,
    pub username: String,
}

/// The id the channel gives a message: `<chat>:<message>`.
pub fn message_ref(chat: i64, message: i64) -> String {
    format!("{chat}:{message}")
}

/// The Telegram message id in `reference` (`<chat>:<message>[...]` or a
/// bare message id).
pub fn message_id_of(reference: &str) -> Option<i64> {
    let mut parts = reference.split(':');
    let first = parts.next()?;
    match parts.next() {
        Some(second) => second.parse().ok(),
        None => first.parse().ok(),
    }
}

fn sender_of(user: &User) -> Sender {
    let name = match &user.last_name {
        Some(last) => format!("{} {last}", user.first_name),
        None => user.first_name.clone(),
    };
    Sender {
        id: user.id.to_string(),
        display_name: (!name.trim().is_empty())
            .then_some(name)
            .or_else(|| user.username.clone()),
        is_bot: user.is_bot,
    }
}

impl Update {
    /// The events this update carries: a text message (or a caption), or a
    /// reaction. Service messages, stickers and the like carry none.
    pub fn events(self, me: &Me) -> Vec<ChannelEvent> {
        if let Some(reaction) = self.message_reaction {
            let Some(user) = &reaction.user else {
                return Vec::new();
            };
            let sender = sender_of(user);
            return reaction
                .new_reaction
                .iter()
                .filter(|r| r.kind == "emoji")
                .filter_map(|r| r.emoji.clone())
                .map(|emoji| {
                    ChannelEvent::Reaction((
                        reaction.chat.id.to_string(),
                        message_ref(reaction.chat.id, reaction.message_id),
                        emoji,
                        sender.clone(),
                    ))
                })
                .collect();
        }
        let message = self
            .message
            .or(self.edited_message)
            .or(self.channel_post)
            .or(self.edited_channel_post);
        match message.and_then(|m| m.into_inbound(me)) {
            Some(inbound) => vec![ChannelEvent::Message(inbound)],
            None => Vec::new(),
        }
    }
}

impl Message {
    fn into_inbound(self, me: &Me) -> Option<InboundMessage> {
        let text = self.text.or(self.caption)?;
        let chat = self.chat.id;
        let sender = match (&self.from, &self.sender_chat) {
            (Some(user), _) => sender_of(user),
            // A channel post, or an anonymous group admin: the chat speaks.
            (None, Some(sender_chat)) => Sender {
                id: sender_chat.id.to_string(),
                display_name: sender_chat.title.clone().or(sender_chat.username.clone()),
                is_bot: false,
            },
            (None, None) => return None,
        };
        let direct = self.chat.kind == "private";
        let replies_to_me = self
            .reply_to_message
            .as_ref()
            .and_then(|m| m.from.as_ref())
            .is_some_and(|u| u.id == me.id);
        let mention = format!("@{}", me.username.to_lowercase());
        let mentioned = direct
            || replies_to_me
            || (!me.username.is_empty() && text.to_lowercase().contains(&mention));
        let mut id = message_ref(chat, self.message_id);
        if let Some(edited) = self.edit_date {
            id.push_str(&format!(":edit:{edited}"));
        }
        Some(InboundMessage {
            id: Some(id),
            chat_id: chat.to_string(),
            chat_kind: if direct {
                ChatKind::Direct
            } else {
                ChatKind::Group
            },
            thread_id: self
                .message_thread_id
                .filter(|_| self.is_topic_message)
                .map(|t| t.to_string()),
            reply_to: self
                .reply_to_message
                .map(|m| message_ref(chat, m.message_id)),
            sender,
            text,
            attachments: Vec::new(),
            mentioned,
            timestamp_ms: self
                .date
                .and_then(|d| u64::try_from(d).ok())
                .map(|d| d.saturating_mul(1000)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use talon_sdk::serde_json;

    fn me() -> Me {
        Me {
            id: 99,
            username: "talon_bot".into(),
        }
    }

    fn parse(json: &str) -> Vec<ChannelEvent> {
        serde_json::from_str::<Update>(json).unwrap().events(&me())
    }

    #[test]
    fn a_group_topic_message_replying_to_the_bot() {
        let events = parse(
            r#"{"update_id":1,"message":{"message_id":12,"message_thread_id":7,"is_topic_message":true,
            "from":{"id":5,"is_bot":false,"first_name":"Ada","last_name":"L","username":"ada"},
            "chat":{"id":-1001,"type":"supergroup","title":"G"},"date":1700000000,"text":"hi",
            "reply_to_message":{"message_id":11,"from":{"id":99,"is_bot":true,"first_name":"T"},"chat":{"id":-1001,"type":"supergroup"},"date":1}}}"#,
        );
        let [ChannelEvent::Message(m)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(m.id.as_deref(), Some("-1001:12"));
        assert_eq!(m.chat_id, "-1001");
        assert_eq!(m.chat_kind, ChatKind::Group);
        assert_eq!(m.thread_id.as_deref(), Some("7"));
        assert_eq!(m.reply_to.as_deref(), Some("-1001:11"));
        assert_eq!(m.sender.id, "5");
        assert_eq!(m.sender.display_name.as_deref(), Some("Ada L"));
        assert!(m.mentioned);
        assert_eq!(m.timestamp_ms, Some(1_700_000_000_000));
    }

    #[test]
    fn edits_channel_posts_and_non_text() {
        let events = parse(
            r#"{"update_id":2,"edited_message":{"message_id":3,"from":{"id":5,"first_name":"A"},
            "chat":{"id":5,"type":"private"},"date":1,"edit_date":9,"text":"fixed"}}"#,
        );
        let [ChannelEvent::Message(m)] = &events[..] else {
            panic!()
        };
        assert_eq!(m.id.as_deref(), Some("5:3:edit:9"));
        assert_eq!(m.chat_kind, ChatKind::Direct);
        assert!(m.mentioned);
        let events = parse(
            r#"{"update_id":3,"channel_post":{"message_id":4,"sender_chat":{"id":-100,"type":"channel","title":"News"},
            "chat":{"id":-100,"type":"channel","title":"News"},"date":1,"caption":"a photo"}}"#,
        );
        let [ChannelEvent::Message(m)] = &events[..] else {
            panic!()
        };
        assert_eq!((m.sender.id.as_str(), m.text.as_str()), ("-100", "a photo"));
        assert!(!m.mentioned);
        assert!(parse(r#"{"update_id":4,"message":{"message_id":5,"from":{"id":1,"first_name":"A"},"chat":{"id":1,"type":"private"},"date":1}}"#).is_empty());
        assert!(parse(r#"{"update_id":5}"#).is_empty());
    }

    #[test]
    fn a_mention_by_username_and_a_reaction() {
        let events = parse(
            r#"{"update_id":6,"message":{"message_id":8,"from":{"id":5,"first_name":"A"},
            "chat":{"id":-5,"type":"group"},"date":1,"text":"hey @Talon_Bot look"}}"#,
        );
        let [ChannelEvent::Message(m)] = &events[..] else {
            panic!()
        };
        assert!(m.mentioned);
        assert_eq!(m.thread_id, None);
        let events = parse(
            r#"{"update_id":7,"message_reaction":{"chat":{"id":-5,"type":"group"},"message_id":8,
            "user":{"id":5,"first_name":"A"},"date":1,"old_reaction":[],"new_reaction":[{"type":"emoji","emoji":"👍"}]}}"#,
        );
        let [ChannelEvent::Reaction((chat, message, emoji, who))] = &events[..] else {
            panic!()
        };
        assert_eq!(
            (
                chat.as_str(),
                message.as_str(),
                emoji.as_str(),
                who.id.as_str()
            ),
            ("-5", "-5:8", "👍", "5")
        );
    }

    #[test]
    fn message_references_parse_both_forms() {
        assert_eq!(message_id_of("-1001:12"), Some(12));
        assert_eq!(message_id_of("-1001:12:edit:9"), Some(12));
        assert_eq!(message_id_of("12"), Some(12));
        assert_eq!(message_id_of("x"), None);
    }
}
