//! Approvals end to end: a tool call the policy puts up for approval waits
//! for the operator; approved it runs, rejected or expired the model reads
//! why; deciding twice is a conflict; a clean stop while a turn waits
//! expires the approval (`kill -9`: approvals_restart.rs); TOTP enrollment
//! refuses wrong and replayed codes, and a high-risk call needs a fresh
//! code; batch, session-wide and edited decisions, the pending count and
//! the decisions' history.

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::{manifest, sent_messages};
use crate::harness::{Daemon, assert_error, json, sse_frames};
use crate::plugin_lifecycle::pack_variant;
use crate::plugins::{Publisher, install, trust};

const CONFIG: &str = "[approvals]\ntools = { notify_owner = \"ask\" }\ntimeout_secs = 120\n";

/// Waits until a turn of `agent` waits on an approval and returns it.
pub(crate) async fn pending_for(daemon: &Daemon, agent: &str) -> serde_json::Value {
    loop {
        let list = json(daemon.get("/api/approvals").await).await;
        if let Some(found) =
            list["approvals"].as_array().unwrap().iter().find(|a| {
                a["agent_id"] == agent && a["status"] == "pending" && a["from_turn"] == true
            })
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
async fn a_pending_approval_expires_at_a_clean_stop() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start_with_config(CONFIG).await;
    let agent = daemon
        .spawn_manifest(manifest("waiter", &llm, "test-model", &["notify_owner"]))
        .await;
    llm.push_all([Reply::tool_call("notify_owner", r#"{"text": "x"}"#)]);
    let turn = daemon.message_in_background(&agent, "ask");
    let id = pending_for(&daemon, &agent).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    daemon.terminate();
    // The client's connection ended with the process.
    turn.abort();
    daemon.restart();
    let after = json(daemon.get(&format!("/api/approvals/{id}")).await).await;
    assert_eq!(after["status"], "expired", "{after}");
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
    // The agent answers again.
    llm.push_all([Reply::text("back")]);
    assert_eq!(
        json(daemon.message(&agent, "hello").await).await["response"],
        "back"
    );
}

/// The codes for `secret` at the previous, the current and the next time step.
fn codes_around(secret: &str) -> [String; 3] {
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    [now - 30, now, now + 30].map(|t| totp.generate(t).to_string())
}

/// The code for `secret` now, and for the next time step.
fn codes(secret: &str) -> (String, String) {
    let [_, now, next] = codes_around(secret);
    (now, next)
}

/// A six-digit code none of `valid` is.
fn wrong_code(valid: &[String]) -> String {
    ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !valid.iter().any(|v| v == c))
        .unwrap()
        .to_string()
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

/// The last tool result the model was sent.
fn last_tool_result(llm: &TestLlm) -> String {
    let requests = llm.requests();
    sent_messages(requests.last().unwrap())
        .into_iter()
        .rev()
        .find(|(role, _)| role == "tool")
        .expect("a tool result")
        .1
}

#[tokio::test]
async fn a_high_risk_call_needs_a_fresh_totp_code_and_runs_with_the_edited_arguments() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config(
        "[approvals]\nrisk = { high = \"ask\" }\nsecond_factor = \"totp\"\ntimeout_secs = 120\n",
    )
    .await;
    // The toolbox, its manifest declaring `calculate` high-risk.
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = pack_variant(
        &daemon,
        &publisher,
        "plugins/toolbox",
        "toolbox",
        &[(
            "[limits]",
            "[[tools]]\nname = \"calculate\"\nrisk = \"high\"\n\n[limits]",
        )],
        "risky_toolbox",
    );
    assert_eq!(install(&daemon, &package, json!("all")).await.status(), 201);
    let tools = json(daemon.get("/api/tools").await).await.to_string();
    assert!(tools.contains(r#""risk":"high""#), "{tools}");

    // Enrolled: the code computed here from the secret confirms it.
    let setup = json(daemon.post("/api/approvals/totp/setup", json!({})).await).await;
    let secret = setup["secret"].as_str().unwrap().to_string();
    let valid = codes_around(&secret);
    let [_, now, next] = valid.clone();
    let confirmed = daemon
        .post("/api/approvals/totp/confirm", json!({"code": now}))
        .await;
    assert_eq!(confirmed.status(), 200);
    let status = json(daemon.get("/api/approvals/totp/status").await).await;
    assert_eq!(status["enforced"], true, "{status}");

    let agent = daemon
        .spawn_manifest(manifest("guarded", &llm, "test-model", &["calculate"]))
        .await;
    llm.push_all([
        Reply::tool_call("calculate", r#"{"expression": "6*7"}"#),
        Reply::text("computed"),
    ]);
    let turn = daemon.message_in_background(&agent, "compute");
    let pending = pending_for(&daemon, &agent).await;
    assert_eq!(pending["risk"], "high");
    assert_eq!(pending["second_factor"], true);
    let id = pending["id"].as_str().unwrap().to_string();
    let session = pending["session_id"].as_str().unwrap().to_string();

    // Bulk approval cannot carry a code: refused whole, nothing decided.
    assert_error(
        daemon
            .post(
                "/api/approvals/batch",
                json!({"ids": [id], "decision": "approve"}),
            )
            .await,
        400,
        "needs a TOTP code",
    )
    .await;
    assert_error(
        daemon
            .post(
                &format!("/api/approvals/session/{session}/approve_all"),
                json!({}),
            )
            .await,
        400,
        "needs a TOTP code",
    )
    .await;

    // The operator edits the call before deciding; bad edits change nothing.
    let modify = format!("/api/approvals/{id}/modify");
    for (body, status, needle) in [
        (json!({"arguments": "6*9"}), 400, "JSON object"),
        (json!({"arguments": [1]}), 400, "JSON object"),
        (json!({"expression": "6*9"}), 400, "unknown field"),
        (
            json!({"feedback": "smaller"}),
            400,
            "missing field `arguments`",
        ),
        (
            json!({"arguments": {"expression": "x".repeat(70 * 1024)}}),
            413,
            "at most",
        ),
    ] {
        assert_error(daemon.post(&modify, body).await, status, needle).await;
    }
    assert_error(
        daemon
            .post(
                &format!("/api/approvals/{}/modify", uuid::Uuid::new_v4()),
                json!({"arguments": {}}),
            )
            .await,
        404,
        "not found",
    )
    .await;
    let modified = daemon
        .post(
            &modify,
            json!({"arguments": {"expression": "6*9"}, "feedback": "the other sum"}),
        )
        .await;
    assert_eq!(modified.status(), 200);
    let modified = json(modified).await;
    assert_eq!(modified["status"], "pending");
    assert_eq!(modified["payload"], json!({"expression": "6*9"}));

    // No code 400, a wrong one 403, the confirming one again (a replay) 403.
    let approve = format!("/api/approvals/{id}/approve");
    assert_error(
        daemon.post(&approve, json!({})).await,
        400,
        "needs a TOTP code",
    )
    .await;
    assert_error(
        daemon
            .post(&approve, json!({"totp_code": wrong_code(&valid)}))
            .await,
        403,
        "wrong TOTP code",
    )
    .await;
    assert_error(
        daemon.post(&approve, json!({"totp_code": now})).await,
        403,
        "already used",
    )
    .await;
    assert_eq!(
        json(daemon.get(&format!("/api/approvals/{id}")).await).await["status"],
        "pending"
    );
    // A fresh code approves; the call runs with the edited arguments.
    let approved = daemon.post(&approve, json!({"totp_code": next})).await;
    assert_eq!(approved.status(), 200);
    assert_eq!(json(approved).await["decided_by"], "local");
    assert_eq!(json(turn.await.unwrap()).await["response"], "computed");
    let result = last_tool_result(&llm);
    assert!(result.contains("54"), "{result}");
    assert_error(
        daemon.post(&modify, json!({"arguments": {}})).await,
        409,
        "already approved",
    )
    .await;

    // On the audit chain: the edit with before and after, the decision with who and how.
    let audit = json(daemon.get("/api/audit/recent?limit=50").await).await;
    let text = audit.to_string();
    assert!(text.contains("approval_modified"), "{text}");
    assert!(
        text.contains(r#"before {\"expression\":\"6*7\"}, after {\"expression\":\"6*9\"}"#),
        "{text}"
    );
    assert!(
        text.contains("approved by local with a TOTP code"),
        "{text}"
    );
    // And in the decisions' history.
    let history = json(daemon.get("/api/approvals/audit?tool_name=calculate").await).await;
    assert_eq!(history["total"], 1, "{history}");
    assert_eq!(history["items"][0]["status"], "approved");
    assert_eq!(history["items"][0]["payload"], json!({"expression": "6*9"}));
}

#[tokio::test]
async fn batch_session_wide_count_and_history() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config(CONFIG).await;
    let agent = daemon
        .spawn_manifest(manifest("batched", &llm, "test-model", &["notify_owner"]))
        .await;
    let count =
        || async { json(daemon.get("/api/approvals/count").await).await["pending"].clone() };
    assert_eq!(count().await, 0);
    let mut made = Vec::new();
    for action in ["deploy", "rollback"] {
        let response = daemon
            .post(
                "/api/approvals",
                json!({"agent_id": agent, "action": action}),
            )
            .await;
        assert_eq!(response.status(), 201);
        made.push(json(response).await["id"].as_str().unwrap().to_string());
    }
    llm.push_all([
        Reply::tool_call("notify_owner", r#"{"text": "x"}"#),
        Reply::text("notified"),
    ]);
    let turn = daemon.message_in_background(&agent, "tell the owner");
    let waiting = pending_for(&daemon, &agent).await;
    let waiting_id = waiting["id"].as_str().unwrap().to_string();
    let session = waiting["session_id"].as_str().unwrap().to_string();
    assert_eq!(count().await, 3);

    // A session's pending approvals: the turn's, not the API's.
    let of_session = json(
        daemon
            .get(&format!("/api/approvals/session/{session}"))
            .await,
    )
    .await;
    assert_eq!(of_session["count"], 1, "{of_session}");
    assert_eq!(of_session["has_pending"], true);
    assert_eq!(of_session["pending"][0]["id"], waiting_id.as_str());
    let other = uuid::Uuid::new_v4();
    let empty = json(daemon.get(&format!("/api/approvals/session/{other}")).await).await;
    assert_eq!(empty["count"], 0);
    assert_error(
        daemon.get("/api/approvals/session/not-a-session").await,
        400,
        "not a UUID",
    )
    .await;

    // A batch: each id on its own; unknown ones reported, the rest decided.
    let batch = daemon
        .post(
            "/api/approvals/batch",
            json!({"ids": [made[0], made[1], made[1], "nope", other], "decision": "reject", "reason": "freeze"}),
        )
        .await;
    assert_eq!(batch.status(), 207);
    let results = json(batch).await["results"].clone();
    assert_eq!(results[0]["status"], "ok", "{results}");
    assert_eq!(results[0]["decision"], "rejected");
    assert_eq!(results[1]["status"], "ok");
    // The same id twice: decided once, the second is a conflict.
    assert_eq!(results[2]["code"], 409);
    assert_eq!(results[3]["code"], 404);
    assert_eq!(results[4]["code"], 404);
    // Already decided: reported, the others still decided.
    let again = daemon
        .post(
            "/api/approvals/batch",
            json!({"ids": [made[0]], "decision": "approve"}),
        )
        .await;
    assert_eq!(again.status(), 207);
    let results = json(again).await["results"].clone();
    assert_eq!(results[0]["code"], 409, "{results}");
    assert!(
        results[0]["message"]
            .as_str()
            .unwrap()
            .contains("already rejected")
    );
    let too_many: Vec<String> = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for (body, needle) in [
        (json!({"ids": [], "decision": "approve"}), "1 to 100"),
        (json!({"ids": too_many, "decision": "approve"}), "1 to 100"),
        (
            json!({"ids": [made[0]], "decision": "maybe"}),
            "unknown variant",
        ),
        (
            json!({"ids": [made[0]], "decision": "reject", "all": true}),
            "unknown field",
        ),
        (
            json!({"ids": [made[0]], "decision": "reject", "reason": "r".repeat(5000)}),
            "reason",
        ),
    ] {
        assert_error(daemon.post("/api/approvals/batch", body).await, 400, needle).await;
    }
    assert_eq!(count().await, 1);

    // Session-wide: refused when the pending set is not the one the operator saw.
    let approve_all = format!("/api/approvals/session/{session}/approve_all");
    assert_error(
        daemon
            .post(&approve_all, json!({"expected_count": 2}))
            .await,
        409,
        "not 2",
    )
    .await;
    assert_error(
        daemon
            .post(&approve_all, json!({"expected_ids": [other]}))
            .await,
        409,
        "not the ones expected",
    )
    .await;
    assert_error(
        daemon.post(&approve_all, json!({"everything": true})).await,
        400,
        "unknown field",
    )
    .await;
    let all = daemon
        .post(&approve_all, json!({"expected_ids": [waiting_id]}))
        .await;
    assert_eq!(all.status(), 200);
    let all = json(all).await;
    assert_eq!(all["resolved"], 1, "{all}");
    assert_eq!(all["decision"], "approved");
    assert_eq!(json(turn.await.unwrap()).await["response"], "notified");
    let none = json(
        daemon
            .post(
                &format!("/api/approvals/session/{session}/reject_all"),
                json!({}),
            )
            .await,
    )
    .await;
    assert_eq!(none["resolved"], 0, "{none}");
    assert_eq!(count().await, 0);

    // The decisions' history, newest first, filtered by agent name or tool.
    let history = json(daemon.get("/api/approvals/audit").await).await;
    assert_eq!(history["total"], 3, "{history}");
    assert_eq!(history["items"][0]["id"], waiting_id.as_str());
    assert_eq!(history["items"][0]["decided_by"], "local");
    let by_name = json(
        daemon
            .get("/api/approvals/audit?agent_id=batched&tool_name=deploy")
            .await,
    )
    .await;
    assert_eq!(by_name["total"], 1, "{by_name}");
    assert_eq!(by_name["items"][0]["reason"], "freeze");
    let paged = json(daemon.get("/api/approvals/audit?limit=1&offset=1").await).await;
    assert_eq!(paged["items"].as_array().unwrap().len(), 1);
    assert_error(
        daemon.get("/api/approvals/audit?limit=501").await,
        400,
        "limit",
    )
    .await;
    assert_error(
        daemon.get("/api/approvals/audit?who=me").await,
        400,
        "unknown field",
    )
    .await;
}
