//! The audit hash chain: recorded, listed, verified, and tampering detected.

use crate::harness::{Daemon, json};

#[tokio::test]
async fn spawns_kills_and_config_changes_are_recorded_in_a_valid_chain() {
    let daemon = Daemon::start().await;
    let id = daemon.spawn_agent("audited").await;
    daemon
        .request(reqwest::Method::DELETE, &format!("/api/agents/{id}"))
        .send()
        .await
        .unwrap();
    daemon
        .post(
            "/api/config/set",
            serde_json::json!({ "path": "api_key", "value": "hunter2-secret" }),
        )
        .await;
    let mut daemon = daemon;
    daemon.use_key("hunter2-secret");

    let recent = json(daemon.get("/api/audit/recent?limit=2").await).await;
    assert_eq!(recent["total"], 3);
    let entries = recent["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["event_type"], "config_changed");
    assert_eq!(entries[0]["details"], "set api_key");
    assert!(
        !recent.to_string().contains("hunter2"),
        "secrets never reach the trail"
    );
    assert_eq!(entries[1]["event_type"], "agent_killed");
    assert_eq!(entries[1]["agent_id"], id.as_str());
    assert_eq!(entries[0]["prev_hash"], entries[1]["hash"]);

    let verify = json(daemon.get("/api/audit/verify").await).await;
    assert_eq!(verify["status"], "valid");
    assert_eq!(verify["chain_length"], 3);

    let security = json(daemon.get("/api/security").await).await;
    assert_eq!(security["security_systems"]["merkle_audit_trail"], "active");
    assert_eq!(security["security_systems"]["api_key_auth"], "active");
}

#[tokio::test]
async fn an_entry_altered_in_the_database_file_is_caught() {
    let mut daemon = Daemon::start().await;
    for name in ["a", "b", "c"] {
        daemon.spawn_agent(name).await;
    }
    assert!(daemon.terminate().success());

    let offline = daemon.cli(&["audit", "verify"]);
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert!(String::from_utf8_lossy(&offline.stdout).contains("status: valid"));

    // Tamper with entry 2 directly in the redb file, as an attacker with disk access would.
    {
        use redb::ReadableTable;
        // Entries are stored as their hash followed by the bytes it covers.
        let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit.v2");
        let db = redb::Database::create(daemon.home().join("data/talon.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(table).unwrap();
            let mut edited = t.get(2).unwrap().unwrap().value().to_vec();
            let at = edited
                .windows(9)
                .position(|w| w == b"agent 'b'")
                .expect("entry 2 names agent 'b'");
            edited[at + 7] = b'z';
            t.insert(2, edited.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }

    let offline = daemon.cli(&["audit", "verify"]);
    assert!(!offline.status.success());
    assert!(String::from_utf8_lossy(&offline.stderr).contains("chain broken at entry 2"));

    daemon.restart();
    let verify = json(daemon.get("/api/audit/verify").await).await;
    assert_eq!(verify["status"], "broken");
    assert_eq!(verify["first_broken"]["id"], 2);
}

#[tokio::test]
async fn recent_limit_is_bounded() {
    let daemon = Daemon::start().await;
    let body = json(daemon.get("/api/audit/recent?limit=100000").await).await;
    assert_eq!(body["limit"], 500);
    let bad = daemon.get("/api/audit/recent?limit=-1").await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn new_entries_are_streamed_over_sse() {
    let mut daemon = Daemon::start().await;
    let mut response = daemon.get("/api/logs/stream").await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    daemon.spawn_agent("streamed").await;
    let mut seen = String::new();
    while !seen.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = seen
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data frame");
    let entry: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(entry["event_type"], "agent_spawned");
    assert_eq!(entry["id"], 1);

    // An open stream does not hold up a graceful shutdown.
    daemon.post("/api/shutdown", serde_json::json!({})).await;
    assert!(daemon.wait_exit().success());
}

#[tokio::test]
async fn a_new_log_subscriber_gets_the_recent_entries_first() {
    let daemon = Daemon::start().await;
    daemon.spawn_agent("before-one").await;
    daemon.spawn_agent("before-two").await;
    let mut response = daemon.get("/api/logs/stream").await;
    let mut seen = String::new();
    while seen.matches("\n\n").count() < 2 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
            .await
            .expect("the backlog at once")
            .unwrap()
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let ids: Vec<u64> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(&ids[..2], &[1, 2], "oldest first: {seen}");
}
