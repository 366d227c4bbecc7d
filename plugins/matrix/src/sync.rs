//! Reading a `/sync` answer: the joined rooms' new `m.room.message` and
//! `m.reaction` events, invitations, and what tells a direct chat from a
//! group (member counts, `is_direct`).
//!
//! The JSON is read as a tree rather than into strict structs: one event
//! of an unexpected shape is skipped, never the whole batch.

use talon_sdk::serde_json::Value;

/// A message event the channel turns into an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub room: String,
    pub event_id: String,
    pub sender: String,
    pub body: String,
    /// The thread root, for `m.thread` relations.
    pub thread: Option<String>,
    /// The event replied to (not a thread's fallback reply).
    pub reply_to: Option<String>,
    /// The bot is in `m.mentions.user_ids`.
    pub mentions_me: bool,
    pub timestamp_ms: Option<u64>,
}

/// A reaction (`m.annotation`) to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub room: String,
    pub event_id: String,
    pub key: String,
    pub sender: String,
}

/// What one sync carried.
#[derive(Debug, Default)]
pub struct Batch {
    pub next_batch: String,
    pub messages: Vec<Message>,
    pub reactions: Vec<Reaction>,
    /// Rooms the bot was invited to, and whether the invite says direct.
    pub invites: Vec<(String, bool)>,
    /// `m.joined_member_count` of rooms whose count the sync reports.
    pub member_counts: Vec<(String, u64)>,
    /// Rooms whose membership changed (their cached count is stale).
    pub membership_changed: Vec<String>,
    /// Rooms the bot left or was removed from.
    pub left: Vec<String>,
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Reads a sync answer for the bot `me`.
pub fn read(sync: &Value, me: &str) -> Result<Batch, String> {
    let next_batch = str_at(sync, "/next_batch")
        .ok_or("the sync answer has no next_batch")?
        .to_string();
    let mut batch = Batch {
        next_batch,
        ..Default::default()
    };
    if let Some(joined) = sync.pointer("/rooms/join").and_then(Value::as_object) {
        for (room, data) in joined {
            if let Some(count) = data
                .pointer("/summary/m.joined_member_count")
                .and_then(Value::as_u64)
            {
                batch.member_counts.push((room.clone(), count));
            }
            let events = data
                .pointer("/timeline/events")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for event in events {
                read_event(&mut batch, room, event, me);
            }
        }
    }
    if let Some(invited) = sync.pointer("/rooms/invite").and_then(Value::as_object) {
        for (room, data) in invited {
            let direct = data
                .pointer("/invite_state/events")
                .and_then(Value::as_array)
                .is_some_and(|events| {
                    events.iter().any(|e| {
                        str_at(e, "/type") == Some("m.room.member")
                            && str_at(e, "/state_key") == Some(me)
                            && e.pointer("/content/is_direct").and_then(Value::as_bool)
                                == Some(true)
                    })
                });
            batch.invites.push((room.clone(), direct));
        }
    }
    if let Some(left) = sync.pointer("/rooms/leave").and_then(Value::as_object) {
        batch.left.extend(left.keys().cloned());
    }
    Ok(batch)
}

fn read_event(batch: &mut Batch, room: &str, event: &Value, me: &str) {
    let (Some(kind), Some(event_id), Some(sender)) = (
        str_at(event, "/type"),
        str_at(event, "/event_id"),
        str_at(event, "/sender"),
    ) else {
        return;
    };
    match kind {
        "m.room.member" => batch.membership_changed.push(room.to_string()),
        "m.reaction" if sender != me => {
            let relation = event.pointer("/content/m.relates_to");
            if let Some(relation) =
                relation.filter(|r| str_at(r, "/rel_type") == Some("m.annotation"))
                && let (Some(target), Some(key)) =
                    (str_at(relation, "/event_id"), str_at(relation, "/key"))
            {
                batch.reactions.push(Reaction {
                    room: room.to_string(),
                    event_id: target.to_string(),
                    key: key.to_string(),
                    sender: sender.to_string(),
                });
            }
        }
        "m.room.message" if sender != me => {
            if let Some(message) = read_message(room, event_id, sender, event, me) {
                batch.messages.push(message);
            }
        }
        _ => {}
    }
}

fn read_message(
    room: &str,
    event_id: &str,
    sender: &str,
    event: &Value,
    me: &str,
) -> Option<Message> {
    let content = event.get("content")?;
    // Notices are what bots post: answering them makes bots talk in loops.
    let msgtype = str_at(content, "/msgtype")?;
    if msgtype == "m.notice" {
        return None;
    }
    let body = str_at(content, "/body")?;
    let relation = content.get("m.relates_to");
    let rel_type = relation.and_then(|r| str_at(r, "/rel_type"));
    // An edit of an earlier message: that one was answered already.
    if rel_type == Some("m.replace") {
        return None;
    }
    let thread = (rel_type == Some("m.thread"))
        .then(|| relation.and_then(|r| str_at(r, "/event_id")))
        .flatten()
        .map(str::to_string);
    let falling_back = relation
        .and_then(|r| r.get("is_falling_back"))
        .and_then(Value::as_bool)
        == Some(true);
    let reply_to = relation
        .and_then(|r| str_at(r, "/m.in_reply_to/event_id"))
        .filter(|_| !(thread.is_some() && falling_back))
        .map(str::to_string);
    let body = if reply_to.is_some() {
        strip_reply_fallback(body)
    } else {
        body.to_string()
    };
    let body = if msgtype == "m.emote" {
        format!("* {body}")
    } else {
        body
    };
    let mentions_me = content
        .pointer("/m.mentions/user_ids")
        .and_then(Value::as_array)
        .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(me)));
    Some(Message {
        room: room.to_string(),
        event_id: event_id.to_string(),
        sender: sender.to_string(),
        body,
        thread,
        reply_to,
        mentions_me,
        timestamp_ms: event.get("origin_server_ts").and_then(Value::as_u64),
    })
}

/// Drops the quoted lines (`> ...`) a client puts before a reply's text.
fn strip_reply_fallback(body: &str) -> String {
    if !body.starts_with("> ") {
        return body.to_string();
    }
    let mut lines = body.lines().skip_while(|l| l.starts_with('>'));
    // The blank line after the quote.
    let rest: Vec<&str> = match lines.next() {
        Some(first) if first.trim().is_empty() => lines.collect(),
        Some(first) => std::iter::once(first).chain(lines).collect(),
        None => Vec::new(),
    };
    rest.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use talon_sdk::serde_json::json;

    const ME: &str = "@bot:test";

    fn sync(events: Value) -> Value {
        json!({
            "next_batch": "s2",
            "rooms": {
                "join": { "!r:test": {
                    "summary": { "m.joined_member_count": 2 },
                    "timeline": { "events": events }
                }},
                "invite": { "!i:test": { "invite_state": { "events": [
                    { "type": "m.room.member", "state_key": ME, "sender": "@a:test", "content": { "membership": "invite", "is_direct": true } }
                ]}}},
                "leave": { "!l:test": {} }
            }
        })
    }

    #[test]
    fn messages_threads_replies_reactions_and_invites() {
        let batch = read(
            &sync(json!([
                { "type": "m.room.message", "event_id": "$1", "sender": "@a:test", "origin_server_ts": 5,
                  "content": { "msgtype": "m.text", "body": "hello", "m.mentions": { "user_ids": [ME] } } },
                { "type": "m.room.message", "event_id": "$2", "sender": "@a:test",
                  "content": { "msgtype": "m.text", "body": "in thread",
                    "m.relates_to": { "rel_type": "m.thread", "event_id": "$1", "is_falling_back": true, "m.in_reply_to": { "event_id": "$1" } } } },
                { "type": "m.room.message", "event_id": "$3", "sender": "@a:test",
                  "content": { "msgtype": "m.text", "body": "> <@bot:test> hi\n\nthanks",
                    "m.relates_to": { "m.in_reply_to": { "event_id": "$0" } } } },
                { "type": "m.room.message", "event_id": "$4", "sender": ME, "content": { "msgtype": "m.text", "body": "mine" } },
                { "type": "m.room.message", "event_id": "$5", "sender": "@a:test", "content": { "msgtype": "m.notice", "body": "a bot" } },
                { "type": "m.room.message", "event_id": "$6", "sender": "@a:test",
                  "content": { "msgtype": "m.text", "body": "* fixed", "m.new_content": {}, "m.relates_to": { "rel_type": "m.replace", "event_id": "$1" } } },
                { "type": "m.reaction", "event_id": "$7", "sender": "@a:test",
                  "content": { "m.relates_to": { "rel_type": "m.annotation", "event_id": "$1", "key": "👍" } } },
                { "type": "m.room.message", "event_id": "$8", "sender": "@a:test", "content": "not an object" },
                { "type": "m.room.member", "event_id": "$9", "sender": "@b:test", "state_key": "@b:test", "content": { "membership": "join" } },
                42
            ])),
            ME,
        )
        .unwrap();
        assert_eq!(batch.next_batch, "s2");
        let ids: Vec<&str> = batch.messages.iter().map(|m| m.event_id.as_str()).collect();
        assert_eq!(ids, ["$1", "$2", "$3"]);
        let [first, threaded, reply] = &batch.messages[..] else {
            panic!()
        };
        assert!(first.mentions_me);
        assert_eq!(first.timestamp_ms, Some(5));
        assert_eq!(threaded.thread.as_deref(), Some("$1"));
        assert_eq!(
            threaded.reply_to, None,
            "a thread's fallback is not a reply"
        );
        assert_eq!(reply.reply_to.as_deref(), Some("$0"));
        assert_eq!(reply.body, "thanks");
        assert_eq!(batch.reactions[0].key, "👍");
        assert_eq!(batch.invites, vec![("!i:test".to_string(), true)]);
        assert_eq!(batch.member_counts, vec![("!r:test".to_string(), 2)]);
        assert_eq!(batch.membership_changed, vec!["!r:test".to_string()]);
        assert_eq!(batch.left, vec!["!l:test".to_string()]);
    }

    #[test]
    fn garbage_is_an_error_or_nothing() {
        assert!(read(&json!({"rooms": {}}), ME).is_err());
        assert!(read(&json!([1, 2]), ME).is_err());
        let batch = read(&json!({"next_batch": "x", "rooms": {"join": {"!r:t": {"timeline": {"events": "no"}}}}}), ME).unwrap();
        assert!(batch.messages.is_empty());
    }
}
