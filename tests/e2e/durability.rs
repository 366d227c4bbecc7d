//! Nothing acknowledged is lost: writes survive `kill -9` and restarts.

use crate::harness::{Daemon, assert_error, json};

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let mut daemon = Daemon::start().await;
    let id = daemon.spawn_agent("durable").await;
    for i in 0..50 {
        let response = daemon
            .put(
                &format!("/api/memory/agents/{id}/kv/key-{i}"),
                serde_json::json!({ "value": { "n": i } }),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    // Crash right after the last acknowledgement.
    daemon.kill9();
    daemon.restart();

    let agent = json(daemon.get(&format!("/api/agents/{id}")).await).await;
    assert_eq!(agent["name"], "durable");
    let pairs = json(daemon.get(&format!("/api/memory/agents/{id}/kv")).await).await;
    assert_eq!(pairs["kv_pairs"].as_array().unwrap().len(), 50);
    let one = json(
        daemon
            .get(&format!("/api/memory/agents/{id}/kv/key-49"))
            .await,
    )
    .await;
    assert_eq!(one["value"]["n"], 49);
}

#[tokio::test]
async fn kv_round_trip_and_its_errors() {
    let daemon = Daemon::start().await;
    let id = daemon.spawn_agent("kv").await;
    let path = format!("/api/memory/agents/{id}/kv/greeting");
    let stored = json(
        daemon
            .put(&path, serde_json::json!({ "value": "hello" }))
            .await,
    )
    .await;
    assert_eq!(stored["status"], "stored");
    assert_eq!(json(daemon.get(&path).await).await["value"], "hello");

    let gone = daemon
        .request(reqwest::Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 200);
    assert_error(daemon.get(&path).await, 404, "not found").await;

    let stranger = "6f1c1a52-3a51-4c1e-9d0b-1f2a3b4c5d6e";
    let response = daemon
        .put(
            &format!("/api/memory/agents/{stranger}/kv/k"),
            serde_json::json!({ "value": 1 }),
        )
        .await;
    assert_error(response, 404, "agent").await;

    let huge = "x".repeat(1_100_000);
    let response = daemon
        .put(&path, serde_json::json!({ "value": huge }))
        .await;
    assert_error(response, 400, "limit").await;
    let long_key = "k".repeat(2000);
    let response = daemon
        .put(
            &format!("/api/memory/agents/{id}/kv/{long_key}"),
            serde_json::json!({ "value": 1 }),
        )
        .await;
    assert_error(response, 400, "key must be").await;
    assert_eq!(
        json(daemon.get(&format!("/api/memory/agents/{id}/kv")).await).await["kv_pairs"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn killing_an_agent_removes_its_memory_and_is_idempotent() {
    let daemon = Daemon::start().await;
    let id = daemon.spawn_agent("ephemeral").await;
    daemon
        .put(
            &format!("/api/memory/agents/{id}/kv/a"),
            serde_json::json!({ "value": 1 }),
        )
        .await;
    let path = format!("/api/agents/{id}");
    let first = json(
        daemon
            .request(reqwest::Method::DELETE, &path)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(first["status"], "killed");
    let second = json(
        daemon
            .request(reqwest::Method::DELETE, &path)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(second["status"], "already-deleted");
    assert_error(daemon.get(&path).await, 404, "not found").await;
}

#[tokio::test]
async fn a_database_from_a_newer_talon_is_refused() {
    let mut daemon = Daemon::start().await;
    daemon.spawn_agent("keep-me").await;
    daemon.kill9();
    // A database file that is not redb at all must not be overwritten either.
    let db = daemon.home().join("data/talon.redb");
    let original = std::fs::read(&db).unwrap();
    std::fs::write(&db, b"this is not a database").unwrap();
    let output = std::process::Command::new(crate::harness::talon_bin())
        .args([
            "--home",
            &daemon.home().display().to_string(),
            "start",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(std::fs::read(&db).unwrap(), b"this is not a database");
    std::fs::write(&db, original).unwrap();
    daemon.restart();
    assert_eq!(json(daemon.get("/api/agents").await).await["total"], 1);
}
