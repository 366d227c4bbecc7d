//! Event triggers through the real binary: CRUD, PATCH null semantics, a
//! trigger firing on agent spawn, max_fires, persistence across a restart.

use std::time::{Duration, Instant};

use crate::harness::{Daemon, assert_error, json};

/// Polls `GET /api/triggers/{id}` until its fire_count reaches `n` (at most 60 s).
async fn wait_fires(daemon: &Daemon, id: &str, n: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = json(daemon.get(&format!("/api/triggers/{id}")).await).await;
        if t["fire_count"].as_u64().unwrap_or(0) >= n {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "trigger {id} never reached {n} fires: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `GET /api/triggers/{id}/fires` until it lists a fire (at most 60 s).
async fn poll_fires(daemon: &Daemon, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fires = json(daemon.get(&format!("/api/triggers/{id}/fires")).await).await;
        if !fires["items"].as_array().is_none_or(|i| i.is_empty()) {
            return fires;
        }
        assert!(Instant::now() < deadline, "no fire recorded for {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_trigger_fires_on_agent_spawn_within_its_budget_and_survives_a_restart() {
    let mut daemon = Daemon::start().await;
    let owner = daemon.spawn_agent("watcher").await;

    // Malformed input.
    assert_error(
        daemon
            .post(
                "/api/triggers",
                serde_json::json!({"agent_id": owner, "pattern": {"sunrise": {}}, "prompt_template": "x"}),
            )
            .await,
        400,
        "",
    )
    .await;
    assert_error(
        daemon
            .post(
                "/api/triggers",
                serde_json::json!({"agent_id": owner, "pattern": {"all": {}}, "prompt_template": ""}),
            )
            .await,
        400,
        "prompt_template",
    )
    .await;
    assert_error(
        daemon
            .post(
                "/api/triggers",
                serde_json::json!({"agent_id": "00000000-0000-0000-0000-000000000000", "pattern": {"all": {}}, "prompt_template": "x"}),
            )
            .await,
        404,
        "agent",
    )
    .await;

    let created = daemon
        .post(
            "/api/triggers",
            serde_json::json!({
                "agent_id": owner,
                "pattern": {"agent_spawned": {"name_pattern": "web-*"}},
                "prompt_template": "A new agent was spawned: {{event}}. Review it.",
                "max_fires": 1,
                "cooldown_secs": 0,
            }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    let id = created["trigger_id"].as_str().unwrap().to_string();
    assert_eq!(created["agent_id"], owner.as_str());
    // A control trigger on every spawn, to know when an event was processed.
    let control = json(
        daemon
            .post(
                "/api/triggers",
                serde_json::json!({"agent_id": owner, "pattern": {"agent_spawned": {}}, "prompt_template": "{{event}}"}),
            )
            .await,
    )
    .await["trigger_id"]
        .as_str()
        .unwrap()
        .to_string();

    daemon.spawn_agent("db-1").await;
    let web = daemon.spawn_agent("web-1").await;
    let fired = wait_fires(&daemon, &id, 1).await;
    assert!(fired["last_fired_at"].is_string());
    // The fire's record is written right after the trigger claims the event.
    let fires = poll_fires(&daemon, &id).await;
    let items = fires["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "db-1 does not match web-*: {fires}");
    let prompt = items[0]["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("'web-1'") && prompt.contains(&web),
        "{prompt}"
    );
    assert!(prompt.starts_with("A new agent was spawned: "));
    assert_eq!(items[0]["agent_id"], owner.as_str());

    // max_fires = 1: a second match does not fire (the control proves the event was seen).
    daemon.spawn_agent("web-2").await;
    wait_fires(&daemon, &control, 3).await;
    let after = json(daemon.get(&format!("/api/triggers/{id}")).await).await;
    assert_eq!(after["fire_count"], 1);

    // PATCH: given fields change, omitted stay, null clears.
    let patched = json(
        daemon
            .request(reqwest::Method::PATCH, &format!("/api/triggers/{id}"))
            .json(&serde_json::json!({"cooldown_secs": 120, "session_mode": "new", "target_agent_id": web}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(patched["cooldown_secs"], 120);
    assert_eq!(patched["session_mode"], "new");
    assert_eq!(patched["target_agent_id"], web.as_str());
    assert_eq!(patched["max_fires"], 1);
    let cleared = json(
        daemon
            .request(reqwest::Method::PATCH, &format!("/api/triggers/{id}"))
            .json(&serde_json::json!({"cooldown_secs": null, "target_agent_id": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(cleared["cooldown_secs"].is_null());
    assert!(cleared["target_agent_id"].is_null());
    assert_eq!(cleared["session_mode"], "new", "omitted: unchanged");
    assert_eq!(
        cleared["prompt_template"],
        "A new agent was spawned: {{event}}. Review it."
    );

    let listed = json(daemon.get(&format!("/api/triggers?agent_id={owner}")).await).await;
    assert_eq!(listed["triggers"].as_array().unwrap().len(), 2);
    assert_eq!(listed["total"], 2);

    // Restart: triggers and their counters are on disk.
    assert!(daemon.terminate().success());
    daemon.restart();
    let reloaded = json(daemon.get(&format!("/api/triggers/{id}")).await).await;
    assert_eq!(reloaded["fire_count"], 1);
    assert_eq!(reloaded["session_mode"], "new");
    daemon.spawn_agent("after-restart").await;
    wait_fires(&daemon, &control, 4).await;

    let del = json(
        daemon
            .request(reqwest::Method::DELETE, &format!("/api/triggers/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(del["status"], "removed");
    assert_error(
        daemon.get(&format!("/api/triggers/{id}")).await,
        404,
        "not found",
    )
    .await;
}
