//! Channels end to end at the runtime's level: the IRC component against a
//! real ngircd (a person's message in, a reply out, a direct message, a
//! long reply split, the server restarted and the channel reconnecting, a
//! socket that was not granted), and the supervisor restarting a channel
//! that traps, hangs or leaks while another keeps working.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::irc::{Ngircd, Person};
use common::{author_manifest, component, runtime};
use talon_runtime::channel::{
    ChannelEvent, ChannelHandle, ChannelPlugin, ChatKind, ConnectionState, Destination,
    InboundMessage, OutboundMessage, SupervisorState,
};
use talon_runtime::{Ceilings, Permissions, Runtime};
use tokio::sync::mpsc;

/// Waits (polling the status, with a generous bound so a broken build
/// fails instead of hanging) until `done` holds.
async fn until(
    handle: &ChannelHandle,
    what: &str,
    done: impl Fn(&talon_runtime::channel::ChannelStatus) -> bool,
) {
    for _ in 0..1200 {
        if done(&handle.status()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: never reached; status {:?}", handle.status());
}

async fn irc(rt: &Runtime, port: u16) -> ChannelPlugin {
    let granted = Permissions {
        sockets: vec![format!("127.0.0.1:{port}")],
        ..Default::default()
    };
    rt.load_channel(
        author_manifest("plugins/irc"),
        component("irc"),
        granted,
        BTreeMap::new(),
    )
    .await
    .expect("the IRC channel loads")
}

fn config(port: u16, nick: &str) -> String {
    serde_json::json!({
        "server": "127.0.0.1",
        "port": port,
        "nick": nick,
        "channels": ["#talon"],
    })
    .to_string()
}

async fn next_message(events: &mut mpsc::Receiver<ChannelEvent>) -> InboundMessage {
    loop {
        match events.recv().await.expect("the channel is running") {
            ChannelEvent::Message(m) => return m,
            _ => continue,
        }
    }
}

fn reply(chat: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        to: Destination {
            chat_id: chat.into(),
            thread_id: None,
            reply_to: None,
        },
        text: text.into(),
        attachments: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_messages_in_replies_out_and_a_restarted_server_reconnects() {
    let mut server = Ngircd::start().await;
    let rt = runtime(Ceilings::default());
    let plugin = irc(&rt, server.port).await;
    assert_eq!(plugin.info().name, "irc");
    assert_eq!(plugin.info().secret_keys, vec!["password".to_string()]);

    let (tx, mut events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, config(server.port, "talonbot"), tx);
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

    let mut alice = Person::join(server.port, "alice", "#talon").await;
    alice
        .say("#talon", "hello talonbot, what time is it?")
        .await;
    let message = next_message(&mut events).await;
    assert_eq!(message.chat_id, "#talon");
    assert_eq!(message.chat_kind, ChatKind::Group);
    assert_eq!(message.sender.id, "alice");
    assert_eq!(message.text, "hello talonbot, what time is it?");
    assert!(message.mentioned);

    handle
        .send(reply("#talon", "It is time.\nA second line."))
        .await
        .expect("sent");
    let said = alice.next_privmsg().await;
    assert_eq!(
        (said.from.as_str(), said.to.as_str()),
        ("talonbot", "#talon")
    );
    assert_eq!(said.text, "It is time.");
    assert_eq!(alice.next_privmsg().await.text, "A second line.");

    // A direct message is a direct chat with the sender.
    alice.say("talonbot", "psst").await;
    let direct = next_message(&mut events).await;
    assert_eq!(
        (direct.chat_id.as_str(), direct.chat_kind),
        ("alice", ChatKind::Direct)
    );
    assert!(direct.mentioned);

    // A long reply arrives whole, in lines that fit IRC's 512 bytes.
    let long = "word ".repeat(400);
    handle.send(reply("alice", &long)).await.expect("sent");
    let mut got = Vec::new();
    while got.join(" ").len() < long.trim_end().len() {
        let said = alice.next_privmsg().await;
        assert!(said.raw.len() + 2 <= 512, "{} bytes", said.raw.len());
        got.push(said.text);
    }
    assert_eq!(got.join(" "), long.trim_end());

    // An injected command stays text.
    handle
        .send(reply("#talon", "harmless\r\nQUIT :injected"))
        .await
        .expect("sent");
    assert_eq!(alice.next_privmsg().await.text, "harmless");
    assert_eq!(alice.next_privmsg().await.text, "QUIT :injected");

    // A bad target is refused by the component, not sent.
    let err = handle.send(reply("#a b", "x")).await.unwrap_err();
    assert!(
        err.to_string().contains("neither a channel nor a nick"),
        "{err}"
    );

    // The server goes away: the channel notices, reconnects once it is
    // back, and the instance was not restarted (a dropped connection is
    // not a crash).
    server.restart().await;
    until(&handle, "reconnected", |s| {
        s.state == SupervisorState::Connected && s.last_error.is_some()
    })
    .await;
    assert_eq!(handle.status().restarts, 0);
    let mut bob = Person::join(server.port, "bob", "#talon").await;
    bob.say("#talon", "are you back?").await;
    let after = next_message(&mut events).await;
    assert_eq!(
        (after.sender.id.as_str(), after.text.as_str()),
        ("bob", "are you back?")
    );
    handle.send(reply("#talon", "I am.")).await.expect("sent");
    assert_eq!(bob.next_privmsg().await.text, "I am.");

    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_was_not_granted_is_refused() {
    let server = Ngircd::start().await;
    let rt = runtime(Ceilings::default());
    // Granted another port of the same address.
    let granted = Permissions {
        sockets: vec![format!("127.0.0.1:{}", server.port.wrapping_add(1).max(1))],
        ..Default::default()
    };
    let plugin = rt
        .load_channel(
            author_manifest("plugins/irc"),
            component("irc"),
            granted,
            BTreeMap::new(),
        )
        .await
        .unwrap();
    let (tx, _events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, config(server.port, "talonbot"), tx);
    until(&handle, "refused", |s| s.last_error.is_some()).await;
    let status = handle.status();
    assert_eq!(status.state, SupervisorState::Disconnected);
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.contains("permission denied") && error.contains("granted sockets"),
        "{error}"
    );
    let err = handle.send(reply("#talon", "x")).await.unwrap_err();
    assert!(err.to_string().contains("not connected"), "{err}");

    // `*` is what a channel requests, never a grant; an ungranted request
    // beyond the manifest is refused at load.
    let star = Permissions {
        sockets: vec!["*".into()],
        ..Default::default()
    };
    let err = rt
        .load_channel(
            author_manifest("plugins/irc"),
            component("irc"),
            star,
            BTreeMap::new(),
        )
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not a grant"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_restarts_a_channel_that_traps_hangs_or_leaks() {
    let rt = runtime(Ceilings::default());
    let manifest = author_manifest("tests/plugins/restless");
    let plugin = rt
        .load_channel(
            manifest,
            component("restless"),
            Permissions::default(),
            BTreeMap::new(),
        )
        .await
        .unwrap();
    let start = |mode: &str| {
        let (tx, events) = mpsc::channel(16);
        let config = serde_json::json!({ "mode": mode }).to_string();
        (ChannelHandle::start(&rt, &plugin, config, tx), events)
    };
    let (calm, _calm_events) = start("ok");
    let (trap, _e1) = start("trap");
    let (hang, _e2) = start("hang");
    let (leak, _e3) = start("leak");
    // A loop ends at its deadline or when its fuel runs out, whichever
    // comes first on this machine: both are the guard ending it.
    for (handle, what, expected) in [
        (&trap, "trap", &["restless trapped on purpose"][..]),
        (&hang, "hang", &["timed out", "out of fuel"][..]),
        (&leak, "leak", &["memory limit exceeded"][..]),
    ] {
        until(handle, what, |s| s.restarts >= 2).await;
        let error = handle.status().last_error.unwrap_or_default();
        assert!(
            expected.iter().any(|e| error.contains(e)),
            "{what}: {error}"
        );
    }
    // The well-behaved one never noticed.
    let status = calm.status();
    assert_eq!(
        (status.state, status.restarts),
        (SupervisorState::Connected, 0)
    );
    let ids = calm.send(reply("x", "still here")).await.expect("sent");
    assert_eq!(ids, vec!["echo:still here".to_string()]);
    calm.stop().await;
}
