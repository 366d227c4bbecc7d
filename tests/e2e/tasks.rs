//! The task queue through the real binary: tasks run by their assignee
//! through the test LLM server, failures retried, cancels, a `task_posted`
//! trigger, and bad input.

use std::time::{Duration, Instant};

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::harness::{Daemon, assert_error, json};

/// Polls a task until it reaches `status` (at most 60 s).
async fn wait_status(daemon: &Daemon, id: &str, status: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = json(daemon.get("/api/tasks/list").await).await;
        let task = list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .expect("task listed");
        if task["status"] == status {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} never became {status}: {task}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn tasks_run_fail_retry_cancel_and_fire_triggers() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config("[llm]\nmax_attempts = 1\n").await;
    let manifest = format!(
        "name = \"worker\"\n[model]\nprovider = \"ollama\"\nmodel = \"test-model\"\nbase_url = \"{}\"\n",
        llm.openai_url()
    );
    let response = daemon
        .post("/api/agents", json!({ "manifest_toml": manifest }))
        .await;
    let worker = json(response).await["agent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let watcher = daemon.spawn_agent("task-watcher").await;
    let trigger = daemon
        .post(
            "/api/triggers",
            json!({ "agent_id": watcher, "pattern": {"task_posted": {"assignee_match": "any"}},
                    "prompt_template": "New task: {{event}}" }),
        )
        .await;
    assert_eq!(trigger.status(), 201, "{}", json(trigger).await);

    // A task runs as a message to its assignee.
    llm.push(Reply::text("the report is done"));
    let posted = daemon
        .post(
            "/api/tasks",
            json!({ "title": "report", "description": "write the report", "assignee": worker }),
        )
        .await;
    assert_eq!(posted.status(), 201);
    let id = json(posted).await["id"].as_str().unwrap().to_string();
    let done = wait_status(&daemon, &id, "completed").await;
    assert_eq!(done["result"], "the report is done");
    assert_eq!(done["attempts"], 1);
    let sent = llm
        .requests()
        .iter()
        .find(|r| r.body.to_string().contains("write the report"))
        .cloned()
        .expect("the assignee got the task");
    assert!(sent.body.to_string().contains("Task: report"));

    // A failing provider fails the task; a retry runs it again.
    llm.push(Reply::error(500, "down"));
    let posted = daemon
        .post(
            "/api/tasks",
            json!({ "title": "flaky", "description": "try this", "assignee": worker }),
        )
        .await;
    let flaky = json(posted).await["id"].as_str().unwrap().to_string();
    let failed = wait_status(&daemon, &flaky, "failed").await;
    assert!(
        failed["error"].as_str().unwrap().contains("down"),
        "{failed}"
    );
    llm.push(Reply::text("worked this time"));
    let retried = daemon
        .post(&format!("/api/tasks/{flaky}/retry"), json!({}))
        .await;
    assert_eq!(retried.status(), 200);
    let done = wait_status(&daemon, &flaky, "completed").await;
    assert_eq!(done["attempts"], 2);
    assert_error(
        daemon
            .post(&format!("/api/tasks/{flaky}/retry"), json!({}))
            .await,
        409,
        "only failed or cancelled",
    )
    .await;

    // A task without an assignee waits, and can be cancelled.
    let posted = daemon
        .post(
            "/api/tasks",
            json!({ "title": "someday", "description": "maybe" }),
        )
        .await;
    let waiting = json(posted).await["id"].as_str().unwrap().to_string();
    let cancelled = json(
        daemon
            .request(reqwest::Method::DELETE, &format!("/api/tasks/{waiting}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    let counts = json(daemon.get("/api/tasks/status").await).await;
    assert_eq!(counts["completed"], 2);
    assert_eq!(counts["cancelled"], 1);
    assert_eq!(counts["total"], 3);
    let pending = json(daemon.get("/api/tasks/list?status=pending").await).await;
    assert_eq!(pending["total"], 0);

    // Every post fired the watcher's task_posted trigger.
    let triggers = json(daemon.get("/api/triggers").await).await;
    let fired = triggers["triggers"].as_array().unwrap()[0]["fire_count"]
        .as_u64()
        .unwrap();
    assert!(fired >= 1, "{triggers}");

    // Bad input.
    assert_error(
        daemon
            .post("/api/tasks", json!({ "title": "", "description": "x" }))
            .await,
        400,
        "title",
    )
    .await;
    assert_error(
        daemon
            .post("/api/tasks", json!({ "title": "x", "description": "y", "assignee": "6f1c0d7e-1111-4222-8333-944455556666" }))
            .await,
        404,
        "not found",
    )
    .await;
    assert_eq!(
        daemon.get("/api/tasks/list?status=sideways").await.status(),
        400
    );
    assert_eq!(
        daemon
            .request(reqwest::Method::DELETE, "/api/tasks/not-a-uuid")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
}
