//! Replies streamed as edits, end to end: the Telegram channel (which has
//! edits) against talon-test-telegram, bound to an agent answering from
//! talon-test-llm in fragments. The reply is posted at its first text and
//! edited in place up to the final text; after `kill -9` mid-stream the
//! final text still arrives, once, as its own message.

use std::time::Duration;

use talon_test_llm::{Reply, TestLlm};
use talon_test_telegram::{BotMessage, Said, TelegramServer};

use crate::channel_kit::{configure, install_channel, spawn_llm_agent, wait_connected};
use crate::harness::Daemon;

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const CHAT: i64 = 4242;

fn says(text: &str) -> Said<'_> {
    Said {
        chat_id: CHAT,
        chat_type: "private",
        from_id: CHAT,
        first_name: "Alice",
        username: Some("alice"),
        text,
        thread_id: None,
        reply_to: None,
    }
}

/// The bot's message in the chat whose text is `text`, once there is one.
async fn message_saying(server: &TelegramServer, text: &str) -> BotMessage {
    server
        .wait_for(&format!("the bot says {text:?}"), |s| {
            s.bot_messages(CHAT).into_iter().find(|m| m.text == text)
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_reply_is_edited_in_place_and_survives_kill_9() {
    let server = TelegramServer::start(TOKEN).await;
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    install_channel(
        &daemon,
        "plugins/telegram",
        "telegram",
        serde_json::json!({ "network": [format!("127.0.0.1:{}", server.port)] }),
    )
    .await;
    spawn_llm_agent(&daemon, &llm, "streamer").await;
    configure(
        &daemon,
        "telegram",
        serde_json::json!({
            "agent": "streamer", "token": TOKEN, "api_base": server.api_base(),
            "poll_timeout_s": 1,
        }),
    )
    .await;
    wait_connected(&daemon, "telegram").await;

    // The reply comes in three fragments, seconds apart: the first is
    // posted, the rest arrive as edits of the same message.
    let text = "First part. Second part. Third part.";
    llm.push(
        Reply::text(text)
            .in_chunks(3)
            .with_chunk_delay(Duration::from_secs(2)),
    );
    server.person_says(&says("tell me in parts"));
    let partial = server
        .wait_for("a partial reply", |s| {
            s.bot_messages(CHAT)
                .into_iter()
                .find(|m| !m.text.is_empty() && m.text != text)
        })
        .await;
    assert!(text.starts_with(&partial.text), "{partial:?}");
    let done = message_saying(&server, text).await;
    assert_eq!(done.message_id, partial.message_id, "edited in place");
    assert!(done.edits >= 1, "{done:?}");
    assert_eq!(server.bot_messages(CHAT).len(), 1, "one message");

    // kill -9 while the model is mid-answer: the partial text stays as it
    // was; the turn runs again after the restart and its final text
    // arrives once, as a message of its own.
    llm.push(Reply::stall("Half an answ"));
    server.person_says(&says("and now?"));
    let stalled = message_saying(&server, "Half an answ").await;
    daemon.kill9();
    let final_text = "The whole answer, after the restart.";
    llm.set_default_reply(final_text);
    daemon.restart();
    message_saying(&server, final_text).await;
    let messages = server.bot_messages(CHAT);
    assert_eq!(
        messages.iter().filter(|m| m.text == final_text).count(),
        1,
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.message_id == stalled.message_id && m.text == "Half an answ"),
        "{messages:#?}"
    );

    // A sentinel after it: nothing else was queued twice.
    llm.push(Reply::text("sentinel"));
    server.person_says(&says("sentinel?"));
    message_saying(&server, "sentinel").await;
    let messages = server.bot_messages(CHAT);
    assert_eq!(
        messages.iter().filter(|m| m.text == final_text).count(),
        1,
        "{messages:#?}"
    );
}
