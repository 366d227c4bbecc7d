//! Comms end to end: an agent sends another a message over
//! `POST /api/comms/send` (and through `agent_send`) and hands it a task
//! over `POST /api/comms/task`; the topology shows who talked to whom, the
//! events list and stream show the messages and hand-offs, they are still
//! listed after `kill -9` and a restart, and bad input is refused.

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::{manifest, say_ok};
use crate::harness::{Daemon, assert_error, json};

/// The comms events, newest first.
async fn events(daemon: &Daemon) -> Vec<serde_json::Value> {
    let page = json(daemon.get("/api/comms/events").await).await;
    page["items"].as_array().unwrap().clone()
}

/// Waits until the queue's task `id` is completed.
async fn completed(daemon: &Daemon, id: &str) {
    loop {
        let list = json(daemon.get("/api/tasks/list?status=completed").await).await;
        if list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn messages_and_hand_offs_are_sent_listed_streamed_and_kept() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    let alpha = daemon
        .spawn_manifest(manifest("alpha", &llm, "test-model", &["agent_send"]))
        .await;
    let beta = daemon
        .spawn_manifest(manifest("beta", &llm, "test-model", &[]))
        .await;

    // Nothing said yet: both agents are nodes, no edges, no events.
    let topology = json(daemon.get("/api/comms/topology").await).await;
    assert_eq!(topology["nodes"].as_array().unwrap().len(), 2, "{topology}");
    for node in topology["nodes"].as_array().unwrap() {
        for key in ["id", "name", "state", "model"] {
            assert!(node.get(key).is_some(), "{node}");
        }
    }
    assert_eq!(topology["edges"], json!([]));
    let page = json(daemon.get("/api/comms/events").await).await;
    assert_eq!(page["total"], 0);
    assert_eq!(page["limit"], 100);

    // The stream, opened now, sees what comes next.
    let mut stream = daemon
        .request(reqwest::Method::GET, "/api/comms/events/stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    // alpha -> beta over the API: beta answers in its session for alpha.
    llm.push(Reply::text("hello alpha").with_usage(12, 3));
    let sent = daemon
        .post(
            "/api/comms/send",
            json!({"from_agent_id": alpha, "to_agent_id": beta,
                   "message": "hello beta", "thread_id": "t-1"}),
        )
        .await;
    assert_eq!(sent.status(), 200);
    let sent = json(sent).await;
    assert_eq!(sent["ok"], true);
    assert_eq!(sent["response"], "hello alpha");
    assert_eq!(sent["input_tokens"], 12);
    assert_eq!(sent["output_tokens"], 3);
    assert_eq!(sent["thread_id"], "t-1");
    let delegated = json(
        daemon
            .get(&format!("/api/agents/{beta}/sessions/by-label/agent:alpha"))
            .await,
    )
    .await;
    assert_eq!(delegated["message_count"], 2, "{delegated}");

    let mut seen = String::new();
    while !seen.contains("agent_message") {
        let chunk = stream.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains(&format!("\"source_id\":\"{alpha}\"")),
        "{seen}"
    );
    assert!(
        seen.contains(&format!("\"target_id\":\"{beta}\"")),
        "{seen}"
    );

    let listed = events(&daemon).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["kind"], "agent_message");
    assert_eq!(listed[0]["source_name"], "alpha");
    assert_eq!(listed[0]["target_name"], "beta");
    assert!(
        listed[0]["detail"]
            .as_str()
            .unwrap()
            .contains("12 in / 3 out")
    );

    // agent_send from a turn takes the same path and is listed alike.
    llm.push_all([
        Reply::tool_call("agent_send", r#"{"target": "beta", "message": "again"}"#),
        Reply::text("again to you"),
        Reply::text("beta answered"),
    ]);
    assert_eq!(
        say_ok(&daemon, &alpha, "ask beta").await["response"],
        "beta answered"
    );
    let listed = events(&daemon).await;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|e| e["kind"] == "agent_message"
        && e["source_id"] == alpha.as_str()
        && e["target_id"] == beta.as_str()));
    // One edge per pair, however often they talk.
    let topology = json(daemon.get("/api/comms/topology").await).await;
    assert_eq!(
        topology["edges"],
        json!([{"from": alpha, "to": beta, "kind": "peer"}])
    );

    // A hand-off through the task queue: posted, then completed by beta.
    llm.push(Reply::text("report written"));
    let posted = daemon
        .post(
            "/api/comms/task",
            json!({"title": "write the report", "description": "two lines", "assigned_to": beta}),
        )
        .await;
    assert_eq!(posted.status(), 201);
    let posted = json(posted).await;
    assert_eq!(posted["ok"], true);
    let task = posted["task_id"].as_str().unwrap().to_string();
    completed(&daemon, &task).await;
    let mut seen = String::new();
    while !seen.contains("task_completed") {
        let chunk = stream.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("task_posted"), "{seen}");
    let listed = events(&daemon).await;
    let kinds: Vec<&str> = listed.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"task_posted"), "{kinds:?}");
    assert!(kinds.contains(&"task_completed"), "{kinds:?}");
    let posted_event = listed.iter().find(|e| e["kind"] == "task_posted").unwrap();
    assert_eq!(posted_event["target_name"], "beta");
    assert_eq!(posted_event["source_name"], "api");
    drop(stream);

    // Pages, newest first.
    let page = json(daemon.get("/api/comms/events?limit=1&offset=1").await).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["total"], listed.len());
    assert_eq!(page["items"][0]["id"], listed[1]["id"]);

    // Derived from what is stored: all still there after kill -9.
    daemon.kill9();
    daemon.restart();
    let after = events(&daemon).await;
    let ids =
        |events: &[serde_json::Value]| events.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&after), ids(&listed));
    assert_eq!(
        json(daemon.get("/api/comms/topology").await).await["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // An agent may send to itself, as in LibreFang.
    llm.push(Reply::text("talking to myself"));
    let own = daemon
        .post(
            "/api/comms/send",
            json!({"from_agent_id": beta, "to_agent_id": beta, "message": "note"}),
        )
        .await;
    assert_eq!(own.status(), 200);
    assert_eq!(json(own).await["response"], "talking to myself");
}

#[tokio::test]
async fn bad_comms_input_is_refused_and_nothing_is_sent() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    let alpha = daemon
        .spawn_manifest(manifest("alpha", &llm, "test-model", &[]))
        .await;
    let nobody = uuid::Uuid::new_v4().to_string();
    let send = |body: serde_json::Value| daemon.post("/api/comms/send", body);

    assert_error(
        send(json!({"from_agent_id": nobody, "to_agent_id": alpha, "message": "hi"})).await,
        404,
        "source agent",
    )
    .await;
    assert_error(
        send(json!({"from_agent_id": alpha, "to_agent_id": nobody, "message": "hi"})).await,
        404,
        "target agent",
    )
    .await;
    assert_eq!(
        send(json!({"from_agent_id": "not-a-uuid", "to_agent_id": alpha, "message": "hi"}))
            .await
            .status(),
        400
    );
    assert_error(
        send(json!({"from_agent_id": alpha, "to_agent_id": alpha, "message": "  "})).await,
        400,
        "blank",
    )
    .await;
    assert_eq!(
        send(json!({"from_agent_id": alpha, "to_agent_id": alpha}))
            .await
            .status(),
        400
    );
    assert_eq!(
        send(json!({"from_agent_id": alpha, "to_agent_id": alpha, "message": "hi", "extra": 1}))
            .await
            .status(),
        400
    );
    let big = "x".repeat(256 * 1024 + 1);
    assert_eq!(
        send(json!({"from_agent_id": alpha, "to_agent_id": alpha, "message": big}))
            .await
            .status(),
        413
    );
    assert_eq!(llm.request_count(), 0, "no refused send reached the model");

    let task = |body: serde_json::Value| daemon.post("/api/comms/task", body);
    assert_eq!(task(json!({"title": " "})).await.status(), 400);
    assert_eq!(task(json!({"description": "no title"})).await.status(), 400);
    assert_eq!(
        task(json!({"title": "t", "assigned_to": nobody}))
            .await
            .status(),
        404
    );
    assert_eq!(
        task(json!({"title": "t", "assigned_to": "not-a-uuid"}))
            .await
            .status(),
        400
    );
    assert_eq!(
        task(json!({"title": "t", "owner": "x"})).await.status(),
        400
    );
    let tasks = json(daemon.get("/api/tasks/list").await).await;
    assert_eq!(tasks["total"], 0, "nothing was queued: {tasks}");

    assert_eq!(
        daemon.get("/api/comms/events?limit=501").await.status(),
        400
    );
    assert_eq!(daemon.get("/api/comms/events?limit=x").await.status(), 400);
    assert_eq!(daemon.get("/api/comms/events?since=1").await.status(), 400);
    let page = json(daemon.get("/api/comms/events?limit=0").await).await;
    assert_eq!(page["items"], json!([]));
}
