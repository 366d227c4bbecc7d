//! Where an agent's messages come from and go to through channels:
//! `GET /api/agents/{id}/channels` (LibreFang's `{assigned, available,
//! mode}`) names the configured channels that route messages to the agent,
//! as its default agent or through a binding; a cron job's and a trigger's
//! answer, and an agent's notices to its owner, delivered to a chat
//! through the outbox, against a real ngircd.

use crate::channel_kit::{configure, install_channel, spawn_llm_agent, wait_connected};
use crate::conversations::manifest;
use crate::harness::{Daemon, assert_error, json};
use crate::ngircd::{Ngircd, Person};
use talon_test_llm::{Reply, TestLlm};

/// A channel that is configured but not started (nothing to connect to).
fn idle_irc(agent: &str, bindings: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "plugin": "irc",
        "agent": agent,
        "enabled": false,
        "server": "127.0.0.1",
        "port": 6667,
        "nick": "talonbot",
        "channels": ["#talon"],
        "bindings": bindings,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_channels_are_those_bound_to_it() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    install_channel(
        &daemon,
        "plugins/irc",
        "irc",
        serde_json::json!({ "sockets": ["127.0.0.1:6667"] }),
    )
    .await;
    let alpha = spawn_llm_agent(&daemon, &llm, "alpha").await;
    let beta = spawn_llm_agent(&daemon, &llm, "beta").await;
    let loner = spawn_llm_agent(&daemon, &llm, "loner").await;

    configure(&daemon, "irc-a", idle_irc("alpha", serde_json::json!([]))).await;
    // beta by default, alpha for one chat.
    configure(
        &daemon,
        "irc-b",
        idle_irc(
            "beta",
            serde_json::json!([{ "chat_id": "#ops", "agent_id": alpha }]),
        ),
    )
    .await;
    configure(&daemon, "irc-c", idle_irc("beta", serde_json::json!([]))).await;

    let channels_of = |id: String| {
        let daemon = &daemon;
        async move {
            let response = daemon.get(&format!("/api/agents/{id}/channels")).await;
            assert_eq!(response.status(), 200);
            json(response).await
        }
    };
    let all = serde_json::json!(["irc-a", "irc-b", "irc-c"]);
    let of_alpha = channels_of(alpha.clone()).await;
    assert_eq!(of_alpha["assigned"], serde_json::json!(["irc-a", "irc-b"]));
    assert_eq!(of_alpha["available"], all);
    assert_eq!(of_alpha["mode"], "allowlist");
    let of_beta = channels_of(beta.clone()).await;
    assert_eq!(of_beta["assigned"], serde_json::json!(["irc-b", "irc-c"]));
    let of_loner = channels_of(loner).await;
    assert_eq!(of_loner["assigned"], serde_json::json!([]));
    assert_eq!(of_loner["available"], all);

    // A removed channel is gone from both lists.
    let removed = daemon
        .request(reqwest::Method::DELETE, "/api/channels/irc-c/configure")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(removed.status(), 200);
    let of_beta = channels_of(beta).await;
    assert_eq!(of_beta["assigned"], serde_json::json!(["irc-b"]));
    assert_eq!(of_beta["available"], serde_json::json!(["irc-a", "irc-b"]));

    // Bad input: not an id, an unknown agent.
    assert_error(
        daemon.get("/api/agents/not-a-uuid/channels").await,
        400,
        "uuid",
    )
    .await;
    assert_error(
        daemon
            .get("/api/agents/00000000-0000-4000-8000-000000000000/channels")
            .await,
        404,
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_jobs_and_triggers_deliver_their_answer_to_a_chat() {
    let server = Ngircd::start().await;
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    install_channel(
        &daemon,
        "plugins/irc",
        "irc",
        serde_json::json!({ "sockets": [format!("127.0.0.1:{}", server.port)] }),
    )
    .await;
    let agent = daemon
        .spawn_manifest(manifest("reporter", &llm, "test-model", &["notify_owner"]))
        .await;
    let irc = |bindings: serde_json::Value| {
        serde_json::json!({
            "agent": "reporter", "server": "127.0.0.1", "port": server.port,
            "nick": "talonbot", "channels": ["#reports"], "bindings": bindings,
        })
    };
    // An owner binding names the owner's chat.
    assert_error(
        daemon
            .post(
                "/api/channels/irc/configure",
                irc(serde_json::json!([{ "agent_id": agent, "owner": true }])),
            )
            .await,
        400,
        "chat_id",
    )
    .await;
    configure(
        &daemon,
        "irc",
        irc(serde_json::json!([{ "chat_id": "alice", "agent_id": agent, "owner": true }])),
    )
    .await;
    wait_connected(&daemon, "irc").await;
    let mut alice = Person::join(server.port, "alice", "#reports").await;

    // Bad targets are refused by name, and nothing is created.
    let job = |delivery: serde_json::Value| {
        serde_json::json!({
            "agent_id": agent, "name": "daily", "schedule": "0 9 * * *",
            "prompt": "Write the daily report.", "delivery": delivery,
        })
    };
    for (delivery, status, needle) in [
        (
            serde_json::json!({"kind": "channel", "channel": "nosuch", "to": "#reports"}),
            400,
            "nosuch",
        ),
        (
            serde_json::json!({"kind": "channel", "channel": "irc", "to": ""}),
            400,
            "`to`",
        ),
        (
            serde_json::json!({"kind": "channel", "channel": "irc", "to": "x".repeat(600)}),
            400,
            "`to`",
        ),
        (
            serde_json::json!({"kind": "channel", "channel": "irc"}),
            400,
            "to",
        ),
        (
            serde_json::json!({"kind": "webhook", "url": "http://127.0.0.1:9"}),
            400,
            "webhook",
        ),
        (
            serde_json::json!({"kind": "channel", "channel": "irc", "to": "#r", "extra": 1}),
            400,
            "extra",
        ),
    ] {
        assert_error(
            daemon.post("/api/cron/jobs", job(delivery)).await,
            status,
            needle,
        )
        .await;
    }
    let jobs = json(daemon.get("/api/cron/jobs").await).await;
    assert_eq!(jobs["total"], 0, "{jobs}");

    // A job run now: its answer reaches the chat, once, and is a receipt.
    let created = daemon
        .post(
            "/api/cron/jobs",
            job(serde_json::json!({"kind": "channel", "channel": "irc", "to": "#reports"})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    let job_id = created["job_id"]
        .as_str()
        .or(created["id"].as_str())
        .expect("job id")
        .to_string();
    let shown = json(daemon.get(&format!("/api/cron/jobs/{job_id}")).await).await;
    assert_eq!(shown["delivery"]["channel"], "irc", "{shown}");
    llm.push(Reply::text("Report: all systems nominal."));
    let ran = daemon
        .post(
            &format!("/api/schedules/{job_id}/run"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(ran.status(), 200);
    let said = alice.next_privmsg().await;
    assert_eq!(
        (said.from.as_str(), said.to.as_str(), said.text.as_str()),
        ("talonbot", "#reports", "Report: all systems nominal.")
    );
    let receipts = json(daemon.get(&format!("/api/agents/{agent}/deliveries")).await).await;
    assert_eq!(receipts["count"], 1, "{receipts}");
    assert_eq!(receipts["receipts"][0]["recipient"], "#reports");
    assert_eq!(receipts["receipts"][0]["origin"], format!("cron:{job_id}"));

    // Updating to a bad target is refused; `none` removes the target.
    assert_error(
        daemon
            .request(reqwest::Method::PUT, &format!("/api/cron/jobs/{job_id}"))
            .json(&serde_json::json!({"delivery": {"kind": "channel", "channel": "gone", "to": "#x"}}))
            .send()
            .await
            .expect("PUT"),
        400,
        "gone",
    )
    .await;
    let cleared = daemon
        .request(reqwest::Method::PUT, &format!("/api/cron/jobs/{job_id}"))
        .json(&serde_json::json!({"delivery": {"kind": "none"}}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(cleared.status(), 200);
    assert!(json(cleared).await.get("delivery").is_none());

    // A trigger: an agent spawned makes the owner answer into the chat.
    assert_error(
        daemon
            .post(
                "/api/triggers",
                serde_json::json!({
                    "agent_id": agent, "pattern": {"agent_spawned": {"name_pattern": "new-*"}},
                    "prompt_template": "Greet: {{event}}",
                    "delivery": {"kind": "channel", "channel": "nosuch", "to": "#reports"},
                }),
            )
            .await,
        400,
        "nosuch",
    )
    .await;
    let trigger = daemon
        .post(
            "/api/triggers",
            serde_json::json!({
                "agent_id": agent, "pattern": {"agent_spawned": {"name_pattern": "new-*"}},
                "prompt_template": "Greet: {{event}}",
                "delivery": {"kind": "channel", "channel": "irc", "to": "alice"},
            }),
        )
        .await;
    assert_eq!(trigger.status(), 201);
    let trigger_id = json(trigger).await["trigger_id"]
        .as_str()
        .expect("trigger id")
        .to_string();
    llm.push(Reply::text("Welcome, newcomer."));
    spawn_llm_agent(&daemon, &llm, "new-helper").await;
    let said = alice.next_privmsg().await;
    assert_eq!(
        (said.to.as_str(), said.text.as_str()),
        ("alice", "Welcome, newcomer.")
    );
    let receipts = json(daemon.get(&format!("/api/agents/{agent}/deliveries")).await).await;
    assert_eq!(receipts["count"], 2, "{receipts}");
    assert_eq!(
        receipts["receipts"][0]["origin"],
        format!("trigger:{trigger_id}")
    );

    // The agent's notice to its owner reaches the owner's chat.
    llm.push(Reply::tool_call(
        "notify_owner",
        r#"{"text": "the disk is almost full"}"#,
    ));
    llm.push(Reply::text("Checked."));
    let answered = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            serde_json::json!({ "message": "check the disk" }),
        )
        .await;
    assert_eq!(answered.status(), 200);
    let said = alice.next_privmsg().await;
    assert_eq!(
        (said.to.as_str(), said.text.as_str()),
        ("alice", "[reporter] the disk is almost full")
    );
    let receipts = json(daemon.get(&format!("/api/agents/{agent}/deliveries")).await).await;
    assert_eq!(receipts["receipts"][0]["origin"], "notify", "{receipts}");
}
