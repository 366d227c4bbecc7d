//! The Matrix channel end to end, through the daemon, against a real
//! Synapse (`talon-test-synapse`): the signed plugin installed with the
//! homeserver and its memory granted, configured with a bot account and
//! bound to an agent answering from talon-test-llm. A person invites the
//! bot into a room; her message is answered in the room as a reply, and
//! in the thread when she wrote in one; `kill -9` mid-turn still answers
//! exactly once; a restart resumes `/sync` from the token the channel
//! stored, so nothing is replayed and what came meanwhile is answered.
//!
//! One Synapse (a couple of seconds to start, more on a loaded machine)
//! serves the whole scenario, so it is one test.

use std::time::Duration;

use serde_json::{Value, json};
use talon_test_llm::{Reply, TestLlm};
use talon_test_synapse::{Person, Synapse};

use crate::channel_kit::{
    channel_until, configure, inbound, install_channel, sent_recorded, spawn_llm_agent,
    wait_connected,
};
use crate::harness::Daemon;

const BOT_PASSWORD: &str = "bot-password";

/// Skips (with the reason) only outside CI when Synapse is not installed;
/// in CI a missing Synapse fails the test.
fn synapse_missing() -> bool {
    if talon_test_synapse::installed() || std::env::var_os("CI").is_some() {
        return false;
    }
    eprintln!(
        "SKIPPED channels_matrix: Synapse is not installed (scripts/test installs it into \
         target/test-tools/synapse-venv, or set TALON_SYNAPSE_PYTHON); in CI this fails"
    );
    true
}

fn relation<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    event["content"]["m.relates_to"][key].as_str()
}

/// The bodies of the bot's messages in `room`, oldest first.
async fn bot_bodies(person: &Person, room: &str, bot: &str) -> Vec<String> {
    person
        .events(room)
        .await
        .into_iter()
        .filter(|e| e["type"] == "m.room.message" && e["sender"] == bot)
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_string))
        .collect()
}

/// Waits for the bot's message saying `body` in `room`; the event.
async fn bot_says(person: &Person, room: &str, bot: &str, body: &str) -> Value {
    person
        .wait_for(room, &format!("the bot saying {body:?}"), |e| {
            e["type"] == "m.room.message" && e["sender"] == bot && e["content"]["body"] == body
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_people_talk_to_an_agent_durably() {
    if synapse_missing() {
        return;
    }
    let synapse = Synapse::start().await;
    let bot = synapse.register("talonbot", BOT_PASSWORD).await;
    let alice = synapse.register("alice", "alice-password").await;
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    install_channel(
        &daemon,
        "plugins/matrix",
        "matrix",
        json!({
            "network": [format!("127.0.0.1:{}", synapse.port)],
            "memory": ["matrix.*"],
        }),
    )
    .await;
    let agent = spawn_llm_agent(&daemon, &llm, "mxbot").await;
    let shown = configure(
        &daemon,
        "matrix",
        json!({
            "agent": "mxbot",
            "homeserver": synapse.url(),
            "user_id": bot.user_id,
            "password": BOT_PASSWORD,
        }),
    )
    .await;
    assert!(!shown.to_string().contains(BOT_PASSWORD), "{shown}");
    wait_connected(&daemon, "matrix").await;

    // Alice invites the bot into a room; it joins.
    let room = alice.create_room(&[&bot.user_id], false).await;
    for _ in 0..1200 {
        if alice.members(&room).await.contains(&bot.user_id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(alice.members(&room).await.contains(&bot.user_id));

    // A message is answered in the room, as a reply to it.
    llm.push(Reply::text("Hello Alice, from the agent."));
    let hello = alice.say(&room, "hello talonbot, who are you?").await;
    let reply = bot_says(&alice, &room, &bot.user_id, "Hello Alice, from the agent.").await;
    assert_eq!(
        reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        hello.as_str(),
        "{reply}"
    );
    assert_eq!(relation(&reply, "rel_type"), None, "not in a thread");
    let request = llm.last_request().expect("the model was asked");
    assert!(
        request.body.to_string().contains("who are you?"),
        "{}",
        request.body
    );

    // A message in a thread is answered in that thread.
    llm.push(Reply::text("In the thread."));
    let threaded = alice.say_in_thread(&room, &hello, "and in a thread?").await;
    let reply = bot_says(&alice, &room, &bot.user_id, "In the thread.").await;
    assert_eq!(relation(&reply, "rel_type"), Some("m.thread"), "{reply}");
    assert_eq!(relation(&reply, "event_id"), Some(hello.as_str()));
    assert_eq!(
        reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        threaded.as_str()
    );

    // kill -9 mid-turn: the stored message is answered exactly once after
    // the restart.
    let asked = llm.request_count();
    llm.push(Reply::text("too late").with_delay(Duration::from_secs(30)));
    llm.set_default_reply("answered once");
    alice.say(&room, "a slow question").await;
    for _ in 0..2400 {
        if llm.request_count() > asked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        llm.request_count() > asked,
        "the turn never reached the model"
    );
    daemon.kill9();
    daemon.restart();
    bot_says(&alice, &room, &bot.user_id, "answered once").await;
    llm.push(Reply::text("sentinel one"));
    alice.say(&room, "sentinel").await;
    bot_says(&alice, &room, &bot.user_id, "sentinel one").await;
    assert_eq!(
        bot_bodies(&alice, &room, &bot.user_id).await,
        [
            "Hello Alice, from the agent.",
            "In the thread.",
            "answered once",
            "sentinel one"
        ]
    );

    // Stopped, then started: the sync resumes from the stored token.
    // What was said meanwhile is answered; nothing before it is replayed.
    daemon.terminate();
    alice.say(&room, "while you were away").await;
    llm.set_default_reply("welcome back");
    daemon.restart();
    bot_says(&alice, &room, &bot.user_id, "welcome back").await;
    llm.push(Reply::text("sentinel two"));
    alice.say(&room, "sentinel again").await;
    bot_says(&alice, &room, &bot.user_id, "sentinel two").await;
    assert_eq!(
        bot_bodies(&alice, &room, &bot.user_id).await,
        [
            "Hello Alice, from the agent.",
            "In the thread.",
            "answered once",
            "sentinel one",
            "welcome back",
            "sentinel two"
        ]
    );
    let view = channel_until(&daemon, "matrix", "every message settled", |c| {
        inbound(c, "pending") == 0
    })
    .await;
    assert_eq!(inbound(&view, "answered"), 6, "{view}");
    assert_eq!(inbound(&view, "failed"), 0, "{view}");
    let receipts = sent_recorded(&daemon, &agent, 6).await;
    assert_eq!(receipts["count"], 6, "{receipts}");
    assert!(
        receipts["receipts"].as_array().is_some_and(|r| r
            .iter()
            .all(|d| d["status"] == "sent" && d["recipient"] == room.as_str())),
        "{receipts}"
    );
}
