//! Channels end to end against a real IRC server (ngircd): the IRC plugin
//! installed in the daemon with its socket granted, configured and bound to
//! an agent answering from talon-test-llm; people on the server talk to it
//! in a channel and privately; a flood from one sender does not lose
//! another's message; `kill -9` mid-turn still answers once; a restarted
//! server is reconnected to; bad configurations and webhook bodies are
//! refused.

use std::time::Duration;

use talon_test_llm::{Reply, TestLlm};

use crate::channel_kit::{
    channel_until, configure, inbound, install_channel, sent_recorded, spawn_llm_agent,
    wait_connected,
};
use crate::harness::{Daemon, assert_error, json};
use crate::ngircd::{Ngircd, Person};
use crate::plugins::run_ok;

fn irc_config(port: u16) -> serde_json::Value {
    serde_json::json!({
        "agent": "ircbot",
        "server": "127.0.0.1",
        "port": port,
        "nick": "talonbot",
        "channels": ["#talon"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_people_talk_to_an_agent_durably() {
    let mut server = Ngircd::start().await;
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    install_channel(
        &daemon,
        "plugins/irc",
        "irc",
        serde_json::json!({ "sockets": [format!("127.0.0.1:{}", server.port)] }),
    )
    .await;
    let agent = spawn_llm_agent(&daemon, &llm, "ircbot").await;

    // Refusals first: nothing is stored by them.
    assert_error(
        daemon
            .post(
                "/api/channels/nosuch/configure",
                serde_json::json!({ "agent": "ircbot" }),
            )
            .await,
        404,
        "no plugin named nosuch",
    )
    .await;
    let mut bad = irc_config(server.port);
    bad["bogus"] = serde_json::json!(1);
    assert_error(
        daemon.post("/api/channels/irc/configure", bad).await,
        400,
        "schema",
    )
    .await;
    let mut no_agent = irc_config(server.port);
    no_agent["agent"] = serde_json::json!("nobody");
    assert_error(
        daemon.post("/api/channels/irc/configure", no_agent).await,
        404,
        "nobody",
    )
    .await;
    assert_error(
        daemon
            .post("/api/channels/Bad Name/configure", irc_config(server.port))
            .await,
        400,
        "channel name",
    )
    .await;
    let malformed = daemon
        .request(reqwest::Method::POST, "/api/channels/irc/configure")
        .header("content-type", "application/json")
        .body("{\"server\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let mut oversized = irc_config(server.port);
    oversized["realname"] = serde_json::json!("x".repeat(100 * 1024));
    assert_error(
        daemon.post("/api/channels/irc/configure", oversized).await,
        413,
        "the limit is",
    )
    .await;
    assert_error(daemon.get("/api/channels/irc").await, 404, "irc").await;
    assert_eq!(json(daemon.get("/api/channels").await).await["total"], 0);

    // A secret is kept in the secrets file and never returned.
    let mut with_secret = irc_config(server.port);
    with_secret["password"] = serde_json::json!("hunter2-secret");
    with_secret["plugin"] = serde_json::json!("irc");
    with_secret["enabled"] = serde_json::json!(false);
    let shown = configure(&daemon, "irc-spare", with_secret).await;
    assert_eq!(shown["has_token"], true);
    assert_eq!(shown["secret_keys"], serde_json::json!(["password"]));
    assert_eq!(shown["state"], "not_started");
    assert!(!shown.to_string().contains("hunter2"), "{shown}");
    let listed = json(daemon.get("/api/channels").await).await;
    assert!(!listed.to_string().contains("hunter2"), "{listed}");
    let secrets = std::fs::read_to_string(daemon.home().join("secrets.toml")).unwrap();
    assert!(secrets.contains("hunter2-secret"));
    let removed = daemon
        .request(reqwest::Method::DELETE, "/api/channels/irc-spare/configure")
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    let secrets = std::fs::read_to_string(daemon.home().join("secrets.toml")).unwrap();
    assert!(!secrets.contains("hunter2-secret"));

    // The channel, bound to the agent, connects.
    configure(&daemon, "irc", irc_config(server.port)).await;
    let view = wait_connected(&daemon, "irc").await;
    assert_eq!(view["plugin"], "irc");
    assert_eq!(view["agent_id"], agent.as_str());
    let tested = json(
        daemon
            .post("/api/channels/irc/test", serde_json::json!({}))
            .await,
    )
    .await;
    assert_eq!(tested["success"], true, "{tested}");

    // A message in the channel is answered in the channel.
    let mut alice = Person::join(server.port, "alice", "#talon").await;
    llm.push(Reply::text("Hello alice, from the agent."));
    alice.say("#talon", "hello talonbot").await;
    let said = alice.next_privmsg().await;
    assert_eq!(
        (said.from.as_str(), said.to.as_str(), said.text.as_str()),
        ("talonbot", "#talon", "Hello alice, from the agent.")
    );
    let request = llm.last_request().expect("the model was asked");
    assert!(
        request.body.to_string().contains("hello talonbot"),
        "{}",
        request.body
    );

    // A private message is answered privately.
    llm.push(Reply::text("Only for you."));
    alice.say("talonbot", "psst").await;
    let said = alice.next_privmsg().await;
    assert_eq!(
        (said.from.as_str(), said.to.as_str(), said.text.as_str()),
        ("talonbot", "alice", "Only for you.")
    );

    let receipts = sent_recorded(&daemon, &agent, 2).await;
    assert_eq!(receipts["count"], 2, "{receipts}");
    assert_eq!(receipts["receipts"][0]["status"], "sent");
    assert_eq!(receipts["receipts"][0]["recipient"], "alice");
    assert_eq!(receipts["receipts"][1]["recipient"], "#talon");

    // A flood from bob does not lose carol's message.
    llm.set_default_reply("noted");
    let mut bob = Person::join(server.port, "bob", "#talon").await;
    let mut carol = Person::join(server.port, "carol", "#talon").await;
    let flood = 12;
    for i in 0..flood {
        bob.say("talonbot", &format!("flood {i}")).await;
    }
    carol.say("talonbot", "carol here").await;
    let said = carol.next_privmsg().await;
    assert_eq!((said.to.as_str(), said.text.as_str()), ("carol", "noted"));
    // Every message of the flood is accounted for: answered, or refused
    // as over the per-sender limit (ngircd's own flood control paces bob,
    // so his messages arrive over seconds).
    channel_until(&daemon, "irc", "the flood settled", |c| {
        inbound(c, "answered") + inbound(c, "rate_limited") == 2 + flood + 1
            && inbound(c, "pending") == 0
    })
    .await;

    // kill -9 mid-turn: the stored message is answered once after restart.
    let asked = llm.request_count();
    llm.push(Reply::text("too late").with_delay(Duration::from_secs(30)));
    llm.set_default_reply("answered once");
    alice.say("#talon", "a slow question").await;
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
    let said = alice.wait_for(|l| l.contains("PRIVMSG #talon :")).await;
    assert!(said.ends_with(":answered once"), "{said}");
    llm.push(Reply::text("sentinel reply"));
    alice.say("#talon", "sentinel").await;
    let said = alice.next_privmsg().await;
    assert_eq!(said.text, "sentinel reply", "a second answer came first");

    // The server restarts: the channel reconnects and answers again.
    drop((alice, bob, carol));
    server.restart().await;
    channel_until(&daemon, "irc", "a reconnection", |c| {
        c["connected"] == true && c["last_error"].is_string()
    })
    .await;
    let mut dave = Person::join(server.port, "dave", "#talon").await;
    llm.push(Reply::text("Back again."));
    dave.say("#talon", "are you back?").await;
    assert_eq!(dave.next_privmsg().await.text, "Back again.");

    // The webhook route: IRC takes none; unknown channels are 404.
    assert_error(
        daemon
            .post("/api/channels/irc/webhook", serde_json::json!({}))
            .await,
        400,
        "does not take webhooks",
    )
    .await;
    assert_error(
        daemon
            .post("/api/channels/nosuch/webhook", serde_json::json!({}))
            .await,
        404,
        "nosuch",
    )
    .await;
    let huge = daemon
        .request(reqwest::Method::POST, "/api/channels/irc/webhook")
        .body(vec![b'x'; 1536 * 1024])
        .send()
        .await
        .unwrap();
    assert_error(huge, 413, "at most").await;
    let dead = json(daemon.get("/api/channels/irc/dead-letters").await).await;
    assert_eq!(dead["total"], 0, "{dead}");
    assert_error(
        daemon.get("/api/channels/nosuch/dead-letters").await,
        404,
        "nosuch",
    )
    .await;

    // The command line.
    let listed = run_ok(&daemon, &["channel", "list"]);
    assert!(
        listed.contains("irc") && listed.contains("connected"),
        "{listed}"
    );
    let tested = run_ok(&daemon, &["channel", "test", "irc"]);
    assert!(tested.contains("reachable"), "{tested}");
    let port = server.port.to_string();
    let added = run_ok(
        &daemon,
        &[
            "channel",
            "add",
            "spare",
            "--plugin",
            "irc",
            "--agent",
            "ircbot",
            "--set",
            "server=127.0.0.1",
            "--set",
            &format!("port={port}"),
            "--set",
            "nick=spare",
            "--disabled",
        ],
    );
    assert!(added.contains("configured spare"), "{added}");
    let refused = daemon.cli(&["channel", "test", "spare"]);
    assert!(!refused.status.success());
    run_ok(&daemon, &["channel", "remove", "spare"]);
    assert_error(daemon.get("/api/channels/spare").await, 404, "spare").await;
}
