//! The XMPP channel end to end against a real Prosody: the XMPP plugin
//! installed in the daemon with its server granted, bound to an agent
//! answering from talon-test-llm; people on the server talk to it in a
//! room and directly (in a thread), and the answers appear in the same
//! chat; an oversized message is clipped and answered once; `kill -9`
//! mid-turn still answers once; a room message written while the daemon
//! is stopped is answered after it starts, and nothing else is replayed;
//! a restarted Prosody is reconnected to; a hostile server
//! (malformed XML, an endless stanza) makes the channel reconnect and
//! answer what comes after once, the daemon staying healthy.

use std::time::Duration;

use talon_test_llm::{Reply, TestLlm};

use crate::channel_kit::{
    channel_until, configure, inbound, install_channel, sent_recorded, server_installed,
    spawn_llm_agent, wait_connected,
};
use crate::harness::{Daemon, json};
use crate::prosody::{MUC, Person, Prosody, attr, between, hostile_server};

fn xmpp_config(port: u16, room: &str) -> serde_json::Value {
    serde_json::json!({
        "agent": "xmppbot",
        "jid": "bot@localhost",
        "password": "s3cret",
        "server": "127.0.0.1",
        "port": port,
        "nick": "talonbot",
        "rooms": [room],
    })
}

/// Waits until talon-test-llm has been asked more than `before` times.
async fn model_asked(llm: &TestLlm, before: usize) {
    for _ in 0..2400 {
        if llm.request_count() > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the turn never reached the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_people_talk_to_an_agent_durably() {
    if !server_installed("/usr/bin/prosody", "prosody") {
        return;
    }
    let accounts = [("bot", "s3cret"), ("alice", "pw-a"), ("bob", "pw-b")];
    let mut server = Prosody::start(&accounts).await;
    // The hostile server sends, on its first connections, malformed XML,
    // then an endless stanza; then a good message on every connection.
    let (hostile_port, _connections) = hostile_server(|n| match n {
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
    let room = format!("talon@{MUC}");
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    install_channel(
        &daemon,
        "plugins/xmpp",
        "xmpp",
        serde_json::json!({ "sockets": [
            format!("127.0.0.1:{}", server.port),
            format!("127.0.0.1:{hostile_port}"),
        ], "memory": ["xmpp.*"] }),
    )
    .await;
    let agent = spawn_llm_agent(&daemon, &llm, "xmppbot").await;

    let shown = configure(&daemon, "xmpp", xmpp_config(server.port, &room)).await;
    assert_eq!(shown["secret_keys"], serde_json::json!(["password"]));
    assert!(!shown.to_string().contains("s3cret"), "{shown}");
    let view = wait_connected(&daemon, "xmpp").await;
    assert_eq!(view["agent_id"], agent.as_str());

    // A room message is answered in the room, from the bot's nick.
    let mut alice = Person::login(server.port, "alice", "pw-a").await;
    alice.join(&room, "alice").await;
    llm.push(Reply::text("Hello room, from the agent."));
    alice
        .say(&room, "groupchat", "room-1", "hello talonbot <&>")
        .await;
    assert_eq!(alice.next_message().await.id, "room-1", "the room's echo");
    let said = alice.next_message().await;
    assert_eq!(said.from, format!("{room}/talonbot"));
    assert_eq!(said.kind, "groupchat");
    assert_eq!(said.body, "Hello room, from the agent.");
    let request = llm.last_request().expect("the model was asked");
    assert!(
        request.body.to_string().contains("hello talonbot <&>"),
        "{}",
        request.body
    );

    // A direct message in a thread is answered directly, in the thread.
    llm.push(Reply::text("Only for you."));
    alice
        .send(
            "<message to='bot@localhost' type='chat' id='direct-1'>\
             <body>psst</body><thread>t-42</thread></message>",
        )
        .await;
    let said = alice.next_message().await;
    assert_eq!(said.kind, "chat");
    assert!(said.from.starts_with("bot@localhost/"), "{}", said.from);
    assert_eq!(attr(&said.raw, "to").as_deref(), Some("alice@localhost"));
    assert_eq!(said.body, "Only for you.");
    assert_eq!(between(&said.raw, "<thread>", "</thread>"), Some("t-42"));

    let receipts = sent_recorded(&daemon, &agent, 2).await;
    assert_eq!(receipts["count"], 2, "{receipts}");
    assert_eq!(receipts["receipts"][0]["recipient"], "alice@localhost");
    assert_eq!(receipts["receipts"][1]["recipient"], room.as_str());
    assert_eq!(receipts["receipts"][0]["status"], "sent");

    // An oversized message (100 KiB, under Prosody's stanza limit) is
    // stored clipped to the host's 64 KiB and answered once.
    llm.push(Reply::text("That was long."));
    alice
        .say("bot@localhost", "chat", "big-1", &"x".repeat(100 * 1024))
        .await;
    assert_eq!(alice.next_message().await.body, "That was long.");
    let asked = llm.last_request().expect("the model was asked").body;
    let text = asked.to_string();
    assert!(text.contains(&"x".repeat(64 * 1024)), "clipped too short");
    assert!(!text.contains(&"x".repeat(64 * 1024 + 1)), "not clipped");

    // kill -9 mid-turn: the stored message is answered once after restart.
    let asked = llm.request_count();
    llm.push(Reply::text("too late").with_delay(Duration::from_secs(30)));
    llm.set_default_reply("answered once");
    alice
        .say("bot@localhost", "chat", "slow-1", "a slow question")
        .await;
    model_asked(&llm, asked).await;
    daemon.kill9();
    daemon.restart();
    let said = alice.next_message().await;
    assert_eq!(said.body, "answered once");
    llm.push(Reply::text("sentinel reply"));
    alice
        .say("bot@localhost", "chat", "sentinel-1", "sentinel")
        .await;
    assert_eq!(
        alice.next_message().await.body,
        "sentinel reply",
        "a second answer came first"
    );

    // A room message written while the daemon is stopped is answered once
    // it is back (the channel asks the room for what it missed), and
    // nothing else is replayed: the next message anyone sees from the bot
    // answers the next question.
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    alice
        .say(&room, "groupchat", "room-away", "talonbot, you there?")
        .await;
    assert_eq!(
        alice.next_message().await.id,
        "room-away",
        "the room's echo"
    );
    llm.push(Reply::text("caught up"));
    daemon.restart();
    let said = alice.next_message().await;
    assert_eq!(
        (said.from.as_str(), said.body.as_str()),
        (format!("{room}/talonbot").as_str(), "caught up")
    );
    llm.push(Reply::text("after the restart"));
    alice
        .say(&room, "groupchat", "room-2", "still there talonbot?")
        .await;
    assert_eq!(alice.next_message().await.id, "room-2", "the room's echo");
    let said = alice.next_message().await;
    assert_eq!(
        (said.from.as_str(), said.body.as_str()),
        (format!("{room}/talonbot").as_str(), "after the restart"),
        "a replay came first"
    );
    let view = channel_until(&daemon, "xmpp", "everything answered", |c| {
        inbound(c, "answered") == 7 && inbound(c, "pending") == 0
    })
    .await;
    assert_eq!(inbound(&view, "failed"), 0, "{view}");

    // Prosody restarts: the channel reconnects, rejoins and answers again.
    drop(alice);
    server.restart().await;
    channel_until(&daemon, "xmpp", "a reconnection", |c| {
        c["connected"] == true && c["last_error"].is_string()
    })
    .await;
    let mut bob = Person::login(server.port, "bob", "pw-b").await;
    bob.join(&room, "bob").await;
    llm.push(Reply::text("Back again."));
    bob.say(&room, "groupchat", "room-3", "are you back talonbot?")
        .await;
    assert_eq!(bob.next_message().await.id, "room-3", "the room's echo");
    let said = bob.next_message().await;
    assert_eq!(
        (said.from.as_str(), said.body.as_str()),
        (format!("{room}/talonbot").as_str(), "Back again.")
    );

    // A hostile server: malformed XML, then an endless stanza, each ends
    // the connection; the channel reconnects and answers what comes after
    // once, although every later connection sends it again.
    let mut hostile = xmpp_config(hostile_port, &room);
    hostile["plugin"] = serde_json::json!("xmpp");
    hostile["password"] = serde_json::json!("any");
    hostile["rooms"] = serde_json::json!([]);
    llm.push(Reply::text("hello eve"));
    configure(&daemon, "xmpp-hostile", hostile).await;
    let view = channel_until(&daemon, "xmpp-hostile", "the good message answered", |c| {
        inbound(c, "answered") == 1
    })
    .await;
    let error = view["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("stanza of more than"), "{view}");
    assert_eq!(
        view["restarts"], 0,
        "a hostile server is not a crash: {view}"
    );
    let receipts = json(daemon.get(&format!("/api/agents/{agent}/deliveries")).await).await;
    let to_eve = receipts["receipts"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|r| r["recipient"] == "eve@localhost")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(to_eve, 1, "{receipts}");
    let removed = daemon
        .request(
            reqwest::Method::DELETE,
            "/api/channels/xmpp-hostile/configure",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    // The daemon and the other channel are unharmed.
    assert_eq!(daemon.get("/api/health").await.status(), 200);
    llm.push(Reply::text("still fine"));
    bob.say("bot@localhost", "chat", "direct-2", "and you?")
        .await;
    assert_eq!(bob.next_message().await.body, "still fine");
    // The reply reaches Prosody before the daemon records the message as
    // answered.
    let view = channel_until(&daemon, "xmpp", "nine answered", |view| {
        inbound(view, "answered") >= 9
    })
    .await;
    assert_eq!(inbound(&view, "answered"), 9, "{view}");
}
