//! A turn paused on an approval resumes after `kill -9` and a restart: the
//! approval stays pending, the session is held for the paused turn (a new
//! message waits for it), and once decided the call runs (approved) or the
//! model reads the refusal (rejected, or expired while the daemon was
//! down), the model answers, and the turn is committed to the session once.

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::approvals::pending_for;
use crate::conversations::{manifest, sent_messages};
use crate::harness::{Daemon, json};

/// The session view of `agent` once it holds `count` messages.
async fn session_with(daemon: &Daemon, agent: &str, count: u64) -> serde_json::Value {
    loop {
        let view = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
        if view["message_count"].as_u64() >= Some(count) {
            return view;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Starts a turn of `agent` that pauses on a `notify_owner` call, kills the
/// daemon with SIGKILL while it waits and starts it again; the approval.
async fn paused_then_killed(daemon: &mut Daemon, llm: &TestLlm, agent: &str) -> serde_json::Value {
    llm.push_all([Reply::tool_call("notify_owner", r#"{"text": "deploying"}"#)]);
    let turn = daemon.message_in_background(agent, "tell the owner");
    let pending = pending_for(daemon, agent).await;
    daemon.kill9();
    // The client's connection ended with the process.
    turn.abort();
    daemon.restart();
    pending
}

/// The messages of a session view as (role, text) pairs.
fn texts(view: &serde_json::Value) -> Vec<(String, String)> {
    view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let content = match &m["content"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (m["role"].as_str().unwrap_or("").to_string(), content)
        })
        .collect()
}

#[tokio::test]
async fn an_approved_call_runs_after_kill_9_and_the_turn_answers_once() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start_with_config(
        "[approvals]\ntools = { notify_owner = \"ask\" }\ntimeout_secs = 300\n",
    )
    .await;
    let agent = daemon
        .spawn_manifest(manifest("resumer", &llm, "test-model", &["notify_owner"]))
        .await;
    let pending = paused_then_killed(&mut daemon, &llm, &agent).await;
    let id = pending["id"].as_str().unwrap().to_string();
    let session = pending["session_id"].as_str().unwrap().to_string();
    assert!(daemon.log().contains("resumed=1"), "{}", daemon.log());

    // Still pending after the crash, and still the session's.
    let after = json(daemon.get(&format!("/api/approvals/{id}")).await).await;
    assert_eq!(after["status"], "pending", "{after}");
    let for_session = json(
        daemon
            .get(&format!("/api/approvals/session/{session}"))
            .await,
    )
    .await;
    assert_eq!(for_session["has_pending"], true, "{for_session}");

    // A new message waits for the paused turn: it is answered after it.
    llm.push_all([
        Reply::text("notified after the restart"),
        Reply::text("second"),
    ]);
    let next = daemon.message_in_background(&agent, "and then?");
    let approved = daemon
        .post(&format!("/api/approvals/{id}/approve"), json!({}))
        .await;
    assert_eq!(approved.status(), 200);
    let reply = json(next.await.unwrap()).await;
    assert_eq!(reply["response"], "second", "{reply}");

    // The resumed turn read the tool's result and its answer is in the
    // session once, before the message that waited for it.
    let requests = llm.requests();
    let resumed = sent_messages(&requests[requests.len() - 2]);
    assert_eq!(
        resumed.last().unwrap(),
        &("tool".to_string(), "the owner will be notified".to_string())
    );
    let view = session_with(&daemon, &agent, 6).await;
    let messages = texts(&view);
    assert_eq!(view["message_count"], 6, "{view}");
    assert_eq!(messages[0].1, "tell the owner");
    assert!(
        messages[2].1.contains("the owner will be notified"),
        "{view}"
    );
    assert_eq!(messages[3].1, "notified after the restart");
    assert_eq!(messages[4].1, "and then?");
    assert_eq!(messages[5].1, "second");
    let approval = json(daemon.get(&format!("/api/approvals/{id}")).await).await;
    assert_eq!(approval["status"], "approved");

    // Recorded as a turn with its tool call, and audited.
    let traces = json(daemon.get(&format!("/api/agents/{agent}/traces")).await).await;
    assert!(traces.to_string().contains("notify_owner"), "{traces}");
    let audit = json(daemon.get("/api/audit/recent?limit=50").await).await;
    assert!(audit.to_string().contains("approval_approved"), "{audit}");

    // Deciding again is a conflict; a second restart resumes nothing.
    let again = daemon
        .post(&format!("/api/approvals/{id}/approve"), json!({}))
        .await;
    assert_eq!(again.status(), 409);
    daemon.kill9();
    daemon.restart();
    assert_eq!(session_with(&daemon, &agent, 6).await["message_count"], 6);
}

#[tokio::test]
async fn a_rejected_call_after_kill_9_is_read_by_the_model() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start_with_config(
        "[approvals]\ntools = { notify_owner = \"ask\" }\ntimeout_secs = 300\n",
    )
    .await;
    let agent = daemon
        .spawn_manifest(manifest("refused", &llm, "test-model", &["notify_owner"]))
        .await;
    let pending = paused_then_killed(&mut daemon, &llm, &agent).await;
    let id = pending["id"].as_str().unwrap().to_string();
    llm.push_all([Reply::text("understood")]);
    let rejected = daemon
        .post(
            &format!("/api/approvals/{id}/reject"),
            json!({"reason": "not today"}),
        )
        .await;
    assert_eq!(rejected.status(), 200);
    let view = session_with(&daemon, &agent, 4).await;
    let messages = texts(&view);
    assert!(
        messages[2].1.contains("rejected") && messages[2].1.contains("not today"),
        "{view}"
    );
    assert_eq!(messages[3].1, "understood");
    let (role, text) = sent_messages(&llm.last_request().unwrap())
        .last()
        .unwrap()
        .clone();
    assert_eq!(role, "tool");
    assert!(text.contains("not today"), "{text}");
    // Exactly once: the next turn follows it.
    llm.push_all([Reply::text("fine")]);
    assert_eq!(
        json(daemon.message(&agent, "ok").await).await["response"],
        "fine"
    );
    assert_eq!(
        json(daemon.get(&format!("/api/agents/{agent}/session")).await).await["message_count"],
        6
    );
}

#[tokio::test]
async fn an_approval_that_expired_while_the_daemon_was_down_fails_the_call() {
    let llm = TestLlm::start().await;
    // Short enough to pass while the daemon is down, long enough for the
    // test to kill it before the call expires in the running daemon.
    let mut daemon = Daemon::start_with_config(
        "[approvals]\ntools = { notify_owner = \"ask\" }\ntimeout_secs = 10\n",
    )
    .await;
    let agent = daemon
        .spawn_manifest(manifest("late", &llm, "test-model", &["notify_owner"]))
        .await;
    llm.push_all([Reply::tool_call("notify_owner", r#"{"text": "x"}"#)]);
    let turn = daemon.message_in_background(&agent, "tell the owner");
    let pending = pending_for(&daemon, &agent).await;
    daemon.kill9();
    turn.abort();
    let expires_at: chrono::DateTime<chrono::Utc> =
        pending["expires_at"].as_str().unwrap().parse().unwrap();
    while chrono::Utc::now() <= expires_at {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    llm.push_all([Reply::text("too late then")]);
    daemon.restart();
    let view = session_with(&daemon, &agent, 4).await;
    let messages = texts(&view);
    assert!(
        messages[2].1.contains("expired") && messages[2].1.contains("no decision"),
        "{view}"
    );
    assert_eq!(messages[3].1, "too late then");
    let id = pending["id"].as_str().unwrap();
    let after = json(daemon.get(&format!("/api/approvals/{id}")).await).await;
    assert_eq!(after["status"], "expired");
    assert_eq!(after["decided_by"], "system");
}
