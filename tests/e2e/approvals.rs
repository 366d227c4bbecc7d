//! Approvals end to end: a tool call the policy puts up for approval waits
//! for the operator; approved it runs, rejected or expired the model reads
//! why; deciding twice is a conflict; a restart or `kill -9` while a turn
//! waits expires the approval (the turn did not survive); TOTP enrollment
//! refuses wrong and replayed codes.

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::{manifest, sent_messages};
use crate::harness::{Daemon, assert_error, json, sse_frames};

const CONFIG: &str = "[approvals]\ntools = { notify_owner = \"ask\" }\ntimeout_secs = 120\n";

/// Waits until `agent` has a pending approval and returns it.
async fn pending_for(daemon: &Daemon, agent: &str) -> serde_json::Value {
    loop {
        let list = json(daemon.get("/api/approvals").await).await;
        if let Some(found) = list["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent_id"] == agent && a["status"] == "pending")
        {
            return found.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The last message the model was sent (the tool's result, after a call).
fn last_sent(llm: &TestLlm) -> (String, String) {
    let requests = llm.requests();
    sent_messages(requests.last().unwrap())
        .last()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn approved_runs_rejected_and_expired_fail_the_call_and_twice_is_409() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config(CONFIG).await;
    let agent = daemon
        .spawn_manifest(manifest("careful", &llm, "test-model", &["notify_owner"]))
        .await;
    let call = || Reply::tool_call("notify_owner", r#"{"text": "deploying"}"#);

    // Approved: the call runs and the turn answers; the stream shows the
    // wait as an `awaiting_approval` phase.
    llm.push_all([call(), Reply::text("notified")]);
    let stream = daemon
        .request(
            reqwest::Method::POST,
            &format!("/api/agents/{agent}/message/stream"),
        )
        .json(&json!({"message": "tell the owner"}));
    let turn = tokio::spawn(async move { stream.send().await.unwrap() });
    let pending = pending_for(&daemon, &agent).await;
    assert_eq!(pending["tool_name"], "notify_owner");
    assert_eq!(pending["action"], "notify_owner");
    assert_eq!(pending["payload"], json!({"text": "deploying"}));
    let id = pending["id"].as_str().unwrap().to_string();
    let one = json(daemon.get(&format!("/api/approvals/{id}")).await).await;
    assert_eq!(one["status"], "pending");
    let approved = daemon
        .post(&format!("/api/approvals/{id}/approve"), json!({}))
        .await;
    assert_eq!(approved.status(), 200);
    assert_eq!(json(approved).await["decided_by"], "local");
    let frames = sse_frames(turn.await.unwrap()).await;
    let phase = frames
        .iter()
        .find(|f| f.event == "phase" && f.data["phase"] == "awaiting_approval")
        .expect("an awaiting_approval phase");
    assert!(phase.data["detail"].as_str().unwrap().contains(&id));
    let done = frames.iter().find(|f| f.event == "done").expect("done");
    assert_eq!(done.data["response"], "notified");
    assert_eq!(last_sent(&llm).1, "the owner will be notified");
    assert_error(
        daemon
            .post(&format!("/api/approvals/{id}/approve"), json!({}))
            .await,
        409,
        "already approved",
    )
    .await;
    assert_error(
        daemon
            .post(&format!("/api/approvals/{id}/reject"), json!({}))
            .await,
        409,
        "already approved",
    )
    .await;

    // Rejected: the model reads the rejection and the reason.
    llm.push_all([call(), Reply::text("understood")]);
    let turn = daemon.message_in_background(&agent, "tell the owner again");
    let id = pending_for(&daemon, &agent).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rejected = daemon
        .post(
            &format!("/api/approvals/{id}/reject"),
            json!({"reason": "not now"}),
        )
        .await;
    assert_eq!(rejected.status(), 200);
    assert_eq!(json(turn.await.unwrap()).await["response"], "understood");
    let (role, text) = last_sent(&llm);
    assert_eq!(role, "tool");
    assert!(
        text.contains("rejected") && text.contains("not now"),
        "{text}"
    );

    // Expired: with a one-second timeout the call fails as expired.
    let set = daemon
        .post(
            "/api/config/set",
            json!({"path": "approvals.timeout_secs", "value": 1}),
        )
        .await;
    assert_eq!(set.status(), 200);
    llm.push_all([call(), Reply::text("gave up")]);
    let reply = json(daemon.message(&agent, "once more").await).await;
    assert_eq!(reply["response"], "gave up");
    let (_, text) = last_sent(&llm);
    assert!(
        text.contains("expired") && text.contains("no decision"),
        "{text}"
    );
    let list = json(daemon.get("/api/approvals?limit=1").await).await;
    assert_eq!(list["approvals"][0]["status"], "expired");
    assert_eq!(list["total"], 3);
    let expired = list["approvals"][0]["id"].as_str().unwrap().to_string();
    assert_error(
        daemon
            .post(&format!("/api/approvals/{expired}/approve"), json!({}))
            .await,
        409,
        "already expired",
    )
    .await;

    // Every decision is on the audit chain with who made it.
    let audit = json(daemon.get("/api/audit/recent?limit=50").await).await;
    let text = audit.to_string();
    assert!(text.contains("approval_approved"), "{text}");
    assert!(text.contains("rejected by local: not now"), "{text}");
    assert!(text.contains("approval_expired"), "{text}");

    // `never` refuses without asking; the config file is read again.
    std::fs::write(
        daemon.config_file(),
        "[approvals]\ntools = { notify_owner = \"never\" }\n",
    )
    .unwrap();
    let reloaded = daemon.post("/api/config/reload", json!({})).await;
    assert_eq!(reloaded.status(), 200);
    llm.push_all([call(), Reply::text("refused")]);
    assert_eq!(
        json(daemon.message(&agent, "try").await).await["response"],
        "refused"
    );
    assert!(last_sent(&llm).1.contains("`never`"));
}

#[tokio::test]
async fn bad_input_is_refused_whole() {
    let daemon = Daemon::start_with_config(CONFIG).await;
    let agent = daemon.spawn_agent("asker").await;
    let unknown = uuid::Uuid::new_v4();
    assert_error(
        daemon
            .post(
                "/api/approvals",
                json!({"agent_id": unknown, "action": "x"}),
            )
            .await,
        404,
        "no agent",
    )
    .await;
    assert_error(
        daemon
            .post("/api/approvals", json!({"agent_id": agent, "action": "  "}))
            .await,
        400,
        "action",
    )
    .await;
    assert_error(
        daemon
            .post(
                "/api/approvals",
                json!({"agent_id": agent, "action": "x", "surprise": 1}),
            )
            .await,
        400,
        "unknown field",
    )
    .await;
    let huge = "x".repeat(70 * 1024);
    assert_error(
        daemon
            .post(
                "/api/approvals",
                json!({"agent_id": agent, "action": "x", "payload": {"blob": huge}}),
            )
            .await,
        413,
        "payload",
    )
    .await;
    assert_eq!(json(daemon.get("/api/approvals").await).await["total"], 0);
    assert_error(daemon.get("/api/approvals?limit=501").await, 400, "limit").await;
    assert_error(
        daemon
            .post(&format!("/api/approvals/{unknown}/approve"), json!({}))
            .await,
        404,
        "not found",
    )
    .await;
    assert_error(
        daemon.post("/api/approvals/nope/approve", json!({})).await,
        404,
        "approval nope not found",
    )
    .await;

    // One made over the API waits for a decision like any other.
    let made = daemon
        .post(
            "/api/approvals",
            json!({"agent_id": agent, "action": "delete_file", "description": "rm", "payload": {"path": "/x"}}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let id = json(made).await["id"].as_str().unwrap().to_string();
    assert_error(
        daemon
            .post(
                &format!("/api/approvals/{id}/approve"),
                json!({"totp_code": 5}),
            )
            .await,
        400,
        "invalid body",
    )
    .await;
    assert_eq!(
        daemon
            .post(&format!("/api/approvals/{id}/approve"), json!(null))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_pending_approval_expires_by_restart_after_kill_9_and_after_a_clean_stop() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start_with_config(CONFIG).await;
    let agent = daemon
        .spawn_manifest(manifest("waiter", &llm, "test-model", &["notify_owner"]))
        .await;
    for stop in ["kill -9", "SIGTERM"] {
        llm.push_all([Reply::tool_call("notify_owner", r#"{"text": "x"}"#)]);
        let turn = daemon.message_in_background(&agent, "ask");
        let id = pending_for(&daemon, &agent).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        if stop == "kill -9" {
            daemon.kill9();
        } else {
            daemon.terminate();
        }
        // The client's connection ended with the process.
        turn.abort();
        daemon.restart();
        let after = json(daemon.get(&format!("/api/approvals/{id}")).await).await;
        assert_eq!(after["status"], "expired", "{stop}: {after}");
        assert_eq!(after["decided_by"], "system");
        assert!(
            after["reason"].as_str().unwrap().contains("daemon stopped"),
            "{after}"
        );
        assert_error(
            daemon
                .post(&format!("/api/approvals/{id}/approve"), json!({}))
                .await,
            409,
            "already expired",
        )
        .await;
        // Nothing of the interrupted turn was stored; the agent answers again.
        llm.push_all([Reply::text("back")]);
        assert_eq!(
            json(daemon.message(&agent, "hello").await).await["response"],
            "back"
        );
    }
}

/// The code for `secret` now, and for the next time step.
fn codes(secret: &str) -> (String, String) {
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (
        totp.generate(now).to_string(),
        totp.generate(now + 30).to_string(),
    )
}

#[tokio::test]
async fn totp_enrollment_refuses_wrong_and_replayed_codes() {
    let daemon = Daemon::start().await;
    let status = json(daemon.get("/api/approvals/totp/status").await).await;
    assert_eq!(status["enrolled"], false);
    assert_error(
        daemon
            .post("/api/approvals/totp/confirm", json!({"code": "123456"}))
            .await,
        409,
        "not enrolled",
    )
    .await;
    let setup = json(daemon.post("/api/approvals/totp/setup", json!({})).await).await;
    let secret = setup["secret"].as_str().unwrap().to_string();
    assert!(
        setup["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let secrets = std::fs::read_to_string(daemon.home().join("secrets.toml")).unwrap();
    assert!(
        secrets.contains(&secret),
        "the secret is in the secrets file"
    );

    let (now, next) = codes(&secret);
    let wrong = if now == "000000" { "111111" } else { "000000" };
    assert_error(
        daemon
            .post("/api/approvals/totp/confirm", json!({"code": wrong}))
            .await,
        403,
        "wrong TOTP code",
    )
    .await;
    assert_error(
        daemon
            .post("/api/approvals/totp/confirm", json!({"code": "12ab"}))
            .await,
        403,
        "wrong TOTP code",
    )
    .await;
    let confirmed = daemon
        .post("/api/approvals/totp/confirm", json!({"code": now}))
        .await;
    assert_eq!(confirmed.status(), 200);
    assert_eq!(json(confirmed).await["confirmed"], true);
    // The same code again is a replay.
    let replay = daemon
        .request(reqwest::Method::DELETE, "/api/approvals/totp")
        .json(&json!({"code": now}))
        .send()
        .await
        .unwrap();
    assert_error(replay, 403, "already used").await;
    assert_error(
        daemon.post("/api/approvals/totp/setup", json!({})).await,
        409,
        "already enrolled",
    )
    .await;
    // The next step's code (within the skew window) revokes.
    let revoked = daemon
        .request(reqwest::Method::DELETE, "/api/approvals/totp")
        .json(&json!({"code": next}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let status = json(daemon.get("/api/approvals/totp/status").await).await;
    assert_eq!(status["enrolled"], false);
}
