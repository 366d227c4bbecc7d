//! Agents talking to agents end to end: `agent_send` delegates, refuses
//! loops, and interrupts and stops cascade to the subagent's turn.

use std::time::Duration;

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::{manifest, say_ok, sent_messages};
use crate::harness::{Daemon, json};

#[tokio::test]
async fn agent_send_delegates_refuses_loops_and_interrupts_cascade() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    let boss = daemon
        .spawn_manifest(manifest("boss", &llm, "test-model", &["agent_send"]))
        .await;
    let worker = daemon
        .spawn_manifest(manifest(
            "worker",
            &llm,
            "test-model",
            &["agent_send", "notify_owner"],
        ))
        .await;

    // The boss asks the worker; the worker answers in its own session for
    // the boss; the answer is the boss's tool result.
    llm.push_all([
        Reply::tool_call(
            "agent_send",
            r#"{"target": "worker", "message": "what is 2+2?"}"#,
        ),
        Reply::text("4"),
        Reply::text("The worker says 4."),
    ]);
    let reply = say_ok(&daemon, &boss, "ask the worker").await;
    assert_eq!(reply["response"], "The worker says 4.");
    let requests = llm.requests();
    let worker_sent = sent_messages(&requests[requests.len() - 2]);
    assert_eq!(worker_sent[0], ("system".into(), "You are worker.".into()));
    assert_eq!(worker_sent[1], ("user".into(), "what is 2+2?".into()));
    let boss_sent = sent_messages(&requests[requests.len() - 1]);
    assert_eq!(boss_sent.last().unwrap(), &("tool".into(), "4".into()));
    let delegated = json(
        daemon
            .get(&format!(
                "/api/agents/{worker}/sessions/by-label/agent:boss"
            ))
            .await,
    )
    .await;
    assert_eq!(delegated["message_count"], 2, "{delegated}");
    let current = json(daemon.get(&format!("/api/agents/{worker}/session")).await).await;
    assert_eq!(
        current["message_count"], 0,
        "the worker's own conversation is apart"
    );

    // Sending back up the chain would wait forever: refused as a tool error.
    llm.push_all([
        Reply::tool_call(
            "agent_send",
            r#"{"target": "worker", "message": "ask me back"}"#,
        ),
        Reply::tool_call(
            "agent_send",
            r#"{"target": "boss", "message": "hello boss"}"#,
        ),
        Reply::text("I cannot ask the boss."),
        Reply::text("done"),
    ]);
    let reply = say_ok(&daemon, &boss, "loop").await;
    assert_eq!(reply["response"], "done");
    let requests = llm.requests();
    let refused = sent_messages(&requests[requests.len() - 2]);
    assert!(
        refused.last().unwrap().1.contains("already waiting"),
        "{refused:?}"
    );
    // An unknown target is an error the model reads, too.
    llm.push_all([
        Reply::tool_call("agent_send", r#"{"target": "nobody", "message": "hi"}"#),
        Reply::text("no such agent"),
    ]);
    say_ok(&daemon, &boss, "ask nobody").await;
    let last = sent_messages(&llm.last_request().unwrap());
    assert!(
        last.last().unwrap().1.contains("no agent named `nobody`"),
        "{last:?}"
    );

    // Interrupting the boss reaches the worker's turn it waits for: the
    // worker's tool call is not run, and both turns end interrupted.
    let session =
        json(daemon.get(&format!("/api/agents/{boss}/session")).await).await["session_id"]
            .as_str()
            .unwrap()
            .to_string();
    llm.push_all([
        Reply::tool_call(
            "agent_send",
            r#"{"target": "worker", "message": "slow job"}"#,
        ),
        Reply::tool_call("notify_owner", r#"{"text": "should not arrive"}"#)
            .with_delay(Duration::from_millis(1500)),
    ]);
    let turn = daemon.message_in_background(&boss, "delegate something slow");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = daemon
        .post(
            &format!("/api/agents/{boss}/sessions/{session}/interrupt"),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 204);
    let reply = json(turn.await.unwrap()).await;
    assert_eq!(reply["status"], "interrupted", "{reply}");
    let traces = json(daemon.get(&format!("/api/agents/{worker}/traces")).await).await;
    assert_eq!(traces["traces"][0]["status"], "interrupted", "{traces}");
    assert!(
        traces["traces"][0]["tool_calls"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the worker's tool never ran: {traces}"
    );
    assert_eq!(llm.pending(), 0);
}
