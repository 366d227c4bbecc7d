//! The XMPP channel at the runtime's level, against a real Prosody: a
//! room message and a direct message in (ids, senders, chat kinds,
//! threads), replies out into the same chat and thread, a large message,
//! the server restarted and the channel reconnecting; a wrong password;
//! and a hostile server (malformed XML, an endless stanza) answered by a
//! reconnection that loses nothing after it.

mod common;

use std::sync::atomic::Ordering;

use common::channel::{load_granted, next_message, reply_in, until};
use common::prosody::{MUC, Person, Prosody, attr, between, hostile_server};
use common::runtime;
use talon_runtime::Ceilings;
use talon_runtime::channel::{ChannelHandle, ChatKind, ConnectionState, SupervisorState};
use tokio::sync::mpsc;

fn config(port: u16, password: &str, rooms: &[String]) -> String {
    serde_json::json!({
        "jid": "bot@localhost",
        "password": password,
        "server": "127.0.0.1",
        "port": port,
        "nick": "talonbot",
        "rooms": rooms,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_room_and_direct_messages_in_replies_out_and_a_restarted_server_reconnects() {
    let accounts = [("bot", "s3cret"), ("alice", "pw-a"), ("bob", "pw-b")];
    let mut server = Prosody::start(&accounts).await;
    let room = format!("talon@{MUC}");
    let rt = runtime(Ceilings::default());
    let plugin = load_granted(&rt, "xmpp", &[server.port]).await;
    assert_eq!(plugin.info().name, "xmpp");
    assert_eq!(plugin.info().secret_keys, vec!["password".to_string()]);

    let (tx, mut events) = mpsc::channel(16);
    let handle = ChannelHandle::start(
        &rt,
        &plugin,
        config(server.port, "s3cret", std::slice::from_ref(&room)),
        tx,
    );
    until(&handle, "connected", |s| {
        s.state == SupervisorState::Connected
    })
    .await;
    let health = handle.health().await.expect("health");
    assert_eq!(
        health.state,
        ConnectionState::Connected,
        "{}",
        health.detail
    );
    assert!(
        health.detail.contains("bot@localhost/talon"),
        "{}",
        health.detail
    );

    // A room message: a group chat, the occupant as sender, the id kept.
    let mut alice = Person::login(server.port, "alice", "pw-a").await;
    alice.join(&room, "alice").await;
    alice
        .say(
            &room,
            "groupchat",
            "room-1",
            "hello talonbot <&> what time is it?",
        )
        .await;
    // The room reflects every message to its author first.
    assert_eq!(alice.next_message().await.id, "room-1");
    let message = next_message(&mut events).await;
    assert_eq!(
        (message.chat_id.as_str(), message.chat_kind),
        (room.as_str(), ChatKind::Group)
    );
    assert_eq!(message.sender.id, format!("{room}/alice"));
    assert_eq!(message.sender.display_name.as_deref(), Some("alice"));
    assert_eq!(message.text, "hello talonbot <&> what time is it?");
    assert_eq!(message.id.as_deref(), Some("room-1"));
    assert!(message.mentioned);

    // The reply lands in the room, as a groupchat message from our nick.
    let ids = handle
        .send(reply_in(&room, None, "It is time & <space>."))
        .await
        .expect("sent");
    assert_eq!(ids.len(), 1);
    let said = alice.next_message().await;
    assert_eq!(said.from, format!("{room}/talonbot"));
    assert_eq!(said.kind, "groupchat");
    assert_eq!(said.body, "It is time & <space>.");
    assert_eq!(said.id, ids[0]);

    // A direct message in a thread: the sender's bare JID is the chat.
    alice
        .send(
            "<message to='bot@localhost' type='chat' id='direct-1'>\
             <body>psst</body><thread>t-42</thread></message>",
        )
        .await;
    let direct = next_message(&mut events).await;
    assert_eq!(
        (direct.chat_id.as_str(), direct.chat_kind),
        ("alice@localhost", ChatKind::Direct)
    );
    assert_eq!(direct.sender.id, "alice@localhost");
    assert_eq!(direct.thread_id.as_deref(), Some("t-42"));
    assert_eq!(direct.id.as_deref(), Some("direct-1"));
    assert!(direct.mentioned);

    handle
        .send(reply_in("alice@localhost", Some("t-42"), "in the thread"))
        .await
        .expect("sent");
    let said = alice.next_message().await;
    assert_eq!(said.kind, "chat");
    assert_eq!(attr(&said.raw, "to").as_deref(), Some("alice@localhost"));
    assert!(said.from.starts_with("bot@localhost/"), "{}", said.from);
    assert_eq!(said.body, "in the thread");
    assert_eq!(between(&said.raw, "<thread>", "</thread>"), Some("t-42"));

    // A large message (100 KiB, under the server's stanza limit) arrives
    // whole, and the next one after it too.
    let large = "x".repeat(100 * 1024);
    alice.say("bot@localhost", "chat", "big-1", &large).await;
    alice
        .say("bot@localhost", "chat", "small-1", "after the big one")
        .await;
    let big = next_message(&mut events).await;
    assert_eq!(
        (big.id.as_deref(), big.text.len()),
        (Some("big-1"), large.len())
    );
    let small = next_message(&mut events).await;
    assert_eq!(small.text, "after the big one");

    // What the component refuses, it refuses before sending anything.
    let err = handle
        .send(reply_in("not a jid", None, "x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a JID"), "{err}");
    let err = handle
        .send(reply_in("alice@localhost", None, &"y".repeat(40 * 1024)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
    // Control characters XML forbids are dropped, not sent to end the stream.
    handle
        .send(reply_in("alice@localhost", None, "bell\u{7}and\u{0}null"))
        .await
        .expect("sent");
    assert_eq!(alice.next_message().await.body, "bellandnull");

    // The server goes away: the channel notices, reconnects once it is
    // back, rejoins the room, and the instance was not restarted.
    server.restart().await;
    // Written while the channel may still be away: stored by the server
    // and delivered when it is back, or delivered live; never lost.
    let mut alice = Person::login(server.port, "alice", "pw-a").await;
    alice
        .say("bot@localhost", "chat", "away-1", "did you miss me?")
        .await;
    until(&handle, "reconnected", |s| {
        s.state == SupervisorState::Connected && s.last_error.is_some()
    })
    .await;
    assert_eq!(handle.status().restarts, 0);
    let away = next_message(&mut events).await;
    assert_eq!(
        (away.id.as_deref(), away.text.as_str()),
        (Some("away-1"), "did you miss me?")
    );
    let mut bob = Person::login(server.port, "bob", "pw-b").await;
    bob.join(&room, "bob").await;
    bob.say(&room, "groupchat", "room-2", "are you back?").await;
    assert_eq!(bob.next_message().await.id, "room-2");
    let after = next_message(&mut events).await;
    assert_eq!(
        (after.sender.id.as_str(), after.text.as_str()),
        (format!("{room}/bob").as_str(), "are you back?")
    );
    handle
        .send(reply_in(&room, None, "I am."))
        .await
        .expect("sent");
    assert_eq!(bob.next_message().await.body, "I am.");

    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_refused_login() {
    let server = Prosody::start(&[("bot", "s3cret")]).await;
    let rt = runtime(Ceilings::default());
    let plugin = load_granted(&rt, "xmpp", &[server.port]).await;
    let (tx, _events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, config(server.port, "wrong", &[]), tx);
    until(&handle, "refused", |s| s.last_error.is_some()).await;
    let status = handle.status();
    assert_eq!(status.state, SupervisorState::Disconnected);
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.contains("refused the login") && error.contains("not-authorized"),
        "{error}"
    );
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_xml_and_an_endless_stanza_end_the_connection_and_nothing_after_is_lost() {
    let (port, connections) = hostile_server(|n| match n {
        0 => b"<message from='eve@localhost' type='chat' id='bad-1'><body>oops</message>".to_vec(),
        1 => {
            let mut endless =
                b"<message from='eve@localhost' type='chat' id='bad-2'><body>".to_vec();
            endless.extend(std::iter::repeat_n(b'a', 300 * 1024));
            endless
        }
        _ => b"<message from='eve@localhost' type='chat' id='good-1'><body>still here</body></message>"
            .to_vec(),
    })
    .await;
    let rt = runtime(Ceilings::default());
    let plugin = load_granted(&rt, "xmpp", &[port]).await;
    let (tx, mut events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, config(port, "any", &[]), tx);
    let message = next_message(&mut events).await;
    assert_eq!(
        (message.id.as_deref(), message.text.as_str()),
        (Some("good-1"), "still here")
    );
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    let status = handle.status();
    assert_eq!(status.restarts, 0, "a hostile server is not a crash");
    let error = status.last_error.unwrap_or_default();
    assert!(error.contains("stanza of more than"), "{error}");
    handle.stop().await;
}
