//! The Matrix channel at the runtime's level, against a real Synapse
//! (`talon-test-synapse`): the bot joins when invited, a person's message
//! becomes one event, replies land in the room (and in the thread), a
//! streamed reply is an `m.replace` edit, reactions and typing reach the
//! homeserver, a huge body arrives whole, Synapse restarting means a
//! reconnect, and a new instance resumes the sync without replaying; a
//! homeserver answering garbage is an error and a reconnect, never a hang.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::channel::{TestMemory, next_message, text, to, until};
use common::{author_manifest, component, runtime};
use serde_json::{Value, json};
use talon_runtime::channel::{ChannelHandle, ChannelPlugin, ChatKind, SupervisorState};
use talon_runtime::{Ceilings, Permissions, Runtime};
use talon_test_synapse::Synapse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

async fn matrix(rt: &Runtime, port: u16) -> ChannelPlugin {
    let granted = Permissions {
        network: vec![format!("127.0.0.1:{port}")],
        memory: vec!["matrix.*".into()],
        ..Default::default()
    };
    rt.load_channel(
        author_manifest("plugins/matrix"),
        component("matrix"),
        granted,
        BTreeMap::new(),
    )
    .await
    .expect("the Matrix channel loads")
}

fn config(homeserver: &str) -> String {
    json!({
        "homeserver": homeserver,
        "user_id": "@talonbot:talon.test",
        "password": "bot-password",
    })
    .to_string()
}

fn relation<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    event["content"]["m.relates_to"][key].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_rooms_threads_edits_and_a_restarted_synapse() {
    let mut synapse = Synapse::start().await;
    let bot = synapse.register("talonbot", "bot-password").await;
    let alice = synapse.register("alice", "alice-password").await;
    let bob = synapse.register("bob", "bob-password").await;
    // A group room the bot is invited to before it starts.
    let room = alice
        .create_room(&[&bot.user_id, &bob.user_id], false)
        .await;
    bob.join(&room).await;

    let rt = runtime(Ceilings::default());
    let memory = Arc::new(TestMemory::default());
    rt.set_memory_backend(memory.clone());
    let plugin = matrix(&rt, synapse.port).await;
    assert_eq!(plugin.info().name, "matrix");
    let (tx, mut events) = mpsc::channel(64);
    let handle = ChannelHandle::start(&rt, &plugin, config(&synapse.url()), tx);
    until(&handle, "connected", |s| {
        s.state == SupervisorState::Connected
    })
    .await;
    // Invited before it started: it joins (auto_join).
    for _ in 0..600 {
        if alice.members(&room).await.contains(&bot.user_id) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(alice.members(&room).await.contains(&bot.user_id));

    // A message, once.
    let hello = alice.say(&room, "hello talonbot, what time is it?").await;
    let message = next_message(&mut events).await;
    assert_eq!(message.id.as_deref(), Some(hello.as_str()));
    assert_eq!(message.chat_id, room);
    assert_eq!(message.chat_kind, ChatKind::Group);
    assert_eq!(message.sender.id, alice.user_id);
    assert_eq!(message.text, "hello talonbot, what time is it?");
    assert!(message.mentioned);
    assert_eq!(message.thread_id, None);

    // A reply to it.
    let ids = handle
        .send(text(to(&room, None, Some(&hello)), "It is time."))
        .await
        .expect("sent");
    assert_eq!(ids.len(), 1);
    let reply = alice
        .wait_for(&room, "the reply", |e| e["event_id"] == ids[0].as_str())
        .await;
    assert_eq!(reply["sender"], bot.user_id.as_str());
    assert_eq!(reply["content"]["body"], "It is time.");
    assert_eq!(
        reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        hello.as_str()
    );

    // A thread: in, and the answer in the same thread.
    let threaded = alice.say_in_thread(&room, &hello, "and in a thread?").await;
    let message = next_message(&mut events).await;
    assert_eq!(message.id.as_deref(), Some(threaded.as_str()));
    assert_eq!(message.thread_id.as_deref(), Some(hello.as_str()));
    assert_eq!(message.reply_to, None);
    let ids = handle
        .send(text(
            to(&room, Some(&hello), Some(&threaded)),
            "In the thread.",
        ))
        .await
        .expect("sent");
    let in_thread = alice
        .wait_for(&room, "the threaded reply", |e| {
            e["event_id"] == ids[0].as_str()
        })
        .await;
    assert_eq!(relation(&in_thread, "rel_type"), Some("m.thread"));
    assert_eq!(relation(&in_thread, "event_id"), Some(hello.as_str()));

    // A streamed reply: one message, then an edit to its final text.
    let stream = handle
        .stream_start(to(&room, None, None))
        .await
        .expect("started");
    handle
        .stream_delta(stream.clone(), "Thinking".into())
        .await
        .expect("delta");
    handle
        .stream_delta(stream.clone(), "... done.".into())
        .await
        .expect("delta");
    let original = handle.stream_end(stream).await.expect("ended");
    let edit = alice
        .wait_for(&room, "the edit", |e| {
            relation(e, "rel_type") == Some("m.replace")
                && relation(e, "event_id") == Some(original.as_str())
        })
        .await;
    assert_eq!(
        edit["content"]["m.new_content"]["body"],
        "Thinking... done."
    );
    let first = alice
        .wait_for(&room, "the streamed message", |e| {
            e["event_id"] == original.as_str()
        })
        .await;
    assert_eq!(first["content"]["body"], "Thinking");

    // Typing and a reaction.
    handle.typing(to(&room, None, None)).await.expect("typing");
    handle
        .react(room.clone(), hello.clone(), "👍".into())
        .await
        .expect("reacted");
    let reaction = alice
        .wait_for(&room, "the reaction", |e| e["type"] == "m.reaction")
        .await;
    assert_eq!(relation(&reaction, "rel_type"), Some("m.annotation"));
    assert_eq!(relation(&reaction, "event_id"), Some(hello.as_str()));
    assert_eq!(relation(&reaction, "key"), Some("👍"));

    // A direct chat: invited as direct, joined, a direct message.
    let dm = alice.create_room(&[&bot.user_id], true).await;
    for _ in 0..600 {
        if alice.members(&dm).await.contains(&bot.user_id) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    alice.say(&dm, "psst").await;
    let direct = next_message(&mut events).await;
    assert_eq!(
        (
            direct.chat_id.as_str(),
            direct.chat_kind,
            direct.text.as_str()
        ),
        (dm.as_str(), ChatKind::Direct, "psst")
    );
    assert!(direct.mentioned);

    // A huge body (Synapse allows 64 KiB events) arrives whole.
    let huge = "x".repeat(60_000);
    alice.say(&room, &huge).await;
    let big = next_message(&mut events).await;
    assert_eq!(big.text.len(), huge.len());

    // A bad destination is refused by the component.
    let err = handle
        .send(text(to("#room:talon.test", None, None), "x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("room id"), "{err}");

    // Synapse restarts: the channel reconnects on its own (same instance).
    synapse.restart().await;
    until(&handle, "reconnected", |s| {
        s.state == SupervisorState::Connected && s.last_error.is_some()
    })
    .await;
    assert_eq!(handle.status().restarts, 0);
    alice.say(&room, "are you back?").await;
    let after = next_message(&mut events).await;
    assert_eq!(
        after.text, "are you back?",
        "nothing replayed, nothing lost"
    );

    // The sync position is kept in the channel's memory scope.
    assert!(
        memory
            .entries()
            .iter()
            .any(|(scope, key, _)| scope == "channel:matrix" && key.ends_with("matrix.since")),
        "{:?}",
        memory.entries()
    );

    // A new instance (after a stop, as after a daemon restart) resumes
    // where the last one stopped: what came meanwhile, and only that.
    handle.stop().await;
    alice.say(&room, "while you were away").await;
    let (tx, mut events) = mpsc::channel(64);
    let handle = ChannelHandle::start(&rt, &plugin, config(&synapse.url()), tx);
    let resumed = next_message(&mut events).await;
    assert_eq!(resumed.text, "while you were away");
    alice.say(&room, "and now").await;
    assert_eq!(next_message(&mut events).await.text, "and now");
    handle.stop().await;

    // An access token instead of a password (checked with whoami).
    let (tx, mut events) = mpsc::channel(64);
    let by_token = json!({ "homeserver": synapse.url(), "access_token": bot.token }).to_string();
    let handle = ChannelHandle::start(&rt, &plugin, by_token, tx);
    until(&handle, "connected by token", |s| {
        s.state == SupervisorState::Connected
    })
    .await;
    alice.say(&room, "token?").await;
    assert_eq!(next_message(&mut events).await.text, "token?");
    handle.stop().await;
}

/// A "homeserver" that answers every request with a 200 whose body is not
/// JSON.
async fn garbage_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let body = "{\"user_id\": garbage";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_homeserver_answering_garbage_is_an_error_not_a_hang() {
    let port = garbage_server().await;
    let rt = runtime(Ceilings::default());
    let plugin = matrix(&rt, port).await;
    let (tx, _events) = mpsc::channel(16);
    let config = json!({
        "homeserver": format!("http://127.0.0.1:{port}"),
        "access_token": "syt_whatever",
    })
    .to_string();
    let handle = ChannelHandle::start(&rt, &plugin, config, tx);
    until(&handle, "refused", |s| s.last_error.is_some()).await;
    let status = handle.status();
    let error = status.last_error.unwrap_or_default();
    assert!(error.contains("not a Matrix answer"), "{error}");
    assert_eq!(status.restarts, 0, "an error, not a crash");
    // Configuration mistakes are named.
    for (config, says) in [
        (json!({ "homeserver": "matrix.example.org" }), "http(s)://"),
        (
            json!({ "homeserver": format!("http://127.0.0.1:{port}") }),
            "access_token, or user_id and password",
        ),
    ] {
        let (tx, _events) = mpsc::channel(16);
        let handle = ChannelHandle::start(&rt, &plugin, config.to_string(), tx);
        until(&handle, "refused", |s| s.last_error.is_some()).await;
        let error = handle.status().last_error.unwrap_or_default();
        assert!(error.contains(says), "{error}");
        handle.stop().await;
    }
    handle.stop().await;
}
