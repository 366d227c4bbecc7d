//! Session repair: making a stored conversation valid for any provider
//! before it is sent.
//!
//! Histories go wrong in ordinary ways: a turn stopped between a tool call
//! and its result, a compaction that cut a call from its result, two user
//! messages in a row (an attachment header and the prompt). Providers reject
//! the first two outright and small local models attend badly to the third,
//! so every request goes through [`repair`] first. It never drops user text.

use std::collections::HashSet;
use std::sync::Arc;

use talon_llm::{ContentPart, Message, Role};

/// What the model is told about a call whose result was never recorded.
const MISSING_RESULT: &str = "no result was recorded for this call (the turn was interrupted)";

/// Repairs `messages` in place:
/// - tool results that answer no earlier call are dropped;
/// - calls without a result get an error result right after their results;
/// - assistant messages with neither text nor calls are dropped;
/// - adjacent user messages are merged, and adjacent text parts within a
///   message joined, so the model sees one user text run plus images.
///
/// The messages are shared with the session's window: one that must change
/// is copied first (`Arc::make_mut`), the window keeps what was stored.
pub fn repair(messages: &mut Vec<Arc<Message>>) {
    let mut out: Vec<Arc<Message>> = Vec::with_capacity(messages.len());
    // Calls of the latest assistant message still waiting for a result.
    let mut open: Vec<String> = Vec::new();
    let mut answered: HashSet<String> = HashSet::new();
    for message in messages.drain(..) {
        match message.role {
            Role::Tool => {
                let id = message.tool_call_id.as_deref().unwrap_or_default();
                if let Some(pos) = open.iter().position(|c| c == id) {
                    answered.insert(open.remove(pos));
                    out.push(message);
                }
            }
            role => {
                close_open_calls(&mut out, &mut open);
                if role == Role::Assistant && message.tool_calls.is_empty() && is_blank(&message) {
                    continue;
                }
                if role == Role::Assistant {
                    open = message
                        .tool_calls
                        .iter()
                        .filter(|c| !answered.contains(&c.id))
                        .map(|c| c.id.clone())
                        .collect();
                }
                match out.last_mut() {
                    Some(last) if role == Role::User && last.role == Role::User => {
                        let content = Arc::unwrap_or_clone(message).content;
                        Arc::make_mut(last).content.extend(content);
                    }
                    _ => out.push(message),
                }
            }
        }
    }
    close_open_calls(&mut out, &mut open);
    for message in &mut out {
        if has_adjacent_text(&message.content) {
            join_text_parts(&mut Arc::make_mut(message).content);
        }
    }
    *messages = out;
}

fn close_open_calls(out: &mut Vec<Arc<Message>>, open: &mut Vec<String>) {
    for id in open.drain(..) {
        out.push(Arc::new(Message::tool_error(id, MISSING_RESULT)));
    }
}

fn is_blank(message: &Message) -> bool {
    message.content.iter().all(|part| match part {
        ContentPart::Text { text } => text.trim().is_empty(),
        ContentPart::Image { .. } => false,
    })
}

fn has_adjacent_text(parts: &[ContentPart]) -> bool {
    parts
        .windows(2)
        .any(|pair| matches!(pair, [ContentPart::Text { .. }, ContentPart::Text { .. }]))
}

fn join_text_parts(parts: &mut Vec<ContentPart>) {
    let mut joined: Vec<ContentPart> = Vec::with_capacity(parts.len());
    for part in parts.drain(..) {
        match (joined.last_mut(), part) {
            (Some(ContentPart::Text { text: last }), ContentPart::Text { text }) => {
                last.push_str("\n\n");
                last.push_str(&text);
            }
            (_, part) => joined.push(part),
        }
    }
    *parts = joined;
}

#[cfg(test)]
mod tests {
    use super::*;
    use talon_llm::ToolCall;

    fn shared(messages: Vec<Message>) -> Vec<Arc<Message>> {
        messages.into_iter().map(Arc::new).collect()
    }

    #[test]
    fn orphans_are_dropped_and_missing_results_supplied() {
        let mut history = shared(vec![
            Message::tool_result("ghost", "orphan"),
            Message::user("list files"),
            Message::assistant_tool_calls(
                "",
                vec![
                    ToolCall::new("c1", "file_list", "{}"),
                    ToolCall::new("c2", "file_read", "{}"),
                ],
            ),
            Message::tool_result("c1", "a.txt"),
            Message::user("and now?"),
        ]);
        repair(&mut history);
        let roles: Vec<Role> = history.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::Tool,
                Role::User
            ]
        );
        assert_eq!(history[3].tool_call_id.as_deref(), Some("c2"));
        assert!(history[3].is_error);
    }

    #[test]
    fn adjacent_user_text_is_coalesced_and_blank_replies_dropped() {
        let mut history = shared(vec![
            Message::user("[Attached file: a.md]\n# A"),
            Message::user("summarize it"),
            Message::assistant("   "),
            Message::user("please").with_image("image/png", "AAAA"),
        ]);
        // The session's window holds the same messages.
        let window = history.clone();
        repair(&mut history);
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].content.len(), 2, "one text run plus the image");
        assert_eq!(
            history[0].text(),
            "[Attached file: a.md]\n# A\n\nsummarize it\n\nplease"
        );
        assert_eq!(
            window[0].text(),
            "[Attached file: a.md]\n# A",
            "copied, not changed"
        );
        assert_eq!(window.len(), 4);
    }

    #[test]
    fn a_repaired_history_is_left_alone() {
        let mut history = shared(vec![
            Message::user("hi"),
            Message::assistant_tool_calls("", vec![ToolCall::new("c1", "t", "{}")]),
            Message::tool_result("c1", "ok"),
            Message::assistant("done"),
        ]);
        let before = history.clone();
        repair(&mut history);
        assert_eq!(history, before);
        assert!(
            history.iter().zip(&before).all(|(a, b)| Arc::ptr_eq(a, b)),
            "nothing was copied"
        );
    }
}
