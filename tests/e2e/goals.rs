//! Goals through the real binary: CRUD, children, cascade delete, templates,
//! and the run queue's status.

use crate::harness::{Daemon, assert_error, json};

#[tokio::test]
async fn goals_form_a_tree_that_deletes_as_a_whole() {
    let daemon = Daemon::start().await;
    let agent = daemon.spawn_agent("planner").await;
    assert_error(
        daemon
            .post("/api/goals", serde_json::json!({"description": "no title"}))
            .await,
        400,
        "title",
    )
    .await;
    assert_error(
        daemon
            .post("/api/goals", serde_json::json!({"title": "x", "parent_id": "00000000-0000-0000-0000-000000000000"}))
            .await,
        404,
        "parent",
    )
    .await;

    let root = daemon
        .post(
            "/api/goals",
            serde_json::json!({"title": "Migrate database to PostgreSQL", "description": "Zero downtime",
                               "agent_id": agent, "due_at": "2030-02-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(root.status(), 201);
    let root = json(root).await;
    let root_id = root["id"].as_str().unwrap().to_string();
    assert_eq!(root["status"], "pending");
    let child = json(
        daemon
            .post(
                "/api/goals",
                serde_json::json!({"title": "Dump schema", "parent_id": root_id}),
            )
            .await,
    )
    .await;
    let child_id = child["id"].as_str().unwrap().to_string();
    let grandchild = json(
        daemon
            .post(
                "/api/goals",
                serde_json::json!({"title": "List tables", "parent_id": child_id}),
            )
            .await,
    )
    .await;
    let other = json(
        daemon
            .post("/api/goals", serde_json::json!({"title": "Unrelated"}))
            .await,
    )
    .await;

    let children = json(daemon.get(&format!("/api/goals/{root_id}/children")).await).await;
    assert_eq!(children.as_array().unwrap().len(), 1);
    assert_eq!(children[0]["id"], child_id.as_str());

    // Update: status and progress; a cycle is refused; null clears.
    let done = json(
        daemon
            .put(
                &format!("/api/goals/{child_id}"),
                serde_json::json!({"status": "completed"}),
            )
            .await,
    )
    .await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["progress"], 100);
    assert_error(
        daemon
            .put(
                &format!("/api/goals/{root_id}"),
                serde_json::json!({"parent_id": grandchild["id"]}),
            )
            .await,
        400,
        "ancestor",
    )
    .await;
    let cleared = json(
        daemon
            .put(
                &format!("/api/goals/{root_id}"),
                serde_json::json!({"due_at": null}),
            )
            .await,
    )
    .await;
    assert!(cleared["due_at"].is_null());
    assert_eq!(cleared["agent_id"], agent.as_str(), "omitted: unchanged");

    // Cascade.
    let deleted = json(
        daemon
            .request(reqwest::Method::DELETE, &format!("/api/goals/{root_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(deleted["deleted"].as_array().unwrap().len(), 3);
    let left = json(daemon.get("/api/goals").await).await;
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], other["id"]);
    assert_error(
        daemon.get(&format!("/api/goals/{child_id}")).await,
        404,
        "not found",
    )
    .await;

    let templates = json(daemon.get("/api/goals/templates").await).await;
    assert!(templates["templates"].as_array().unwrap().len() >= 3);

    let queue = json(daemon.get("/api/queue/status").await).await;
    let lanes = queue["lanes"].as_array().unwrap();
    assert!(
        lanes
            .iter()
            .any(|l| l["name"] == "default" && l["limit"] == 4)
    );
}
