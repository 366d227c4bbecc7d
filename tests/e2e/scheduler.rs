//! Cron jobs and schedules through the real binary: CRUD, validation,
//! firing, run records, and a restart in the middle of a schedule.
//!
//! Nothing here asserts timings: tests poll the run log with a generous limit
//! and assert on what was recorded.

use std::time::{Duration, Instant};

use crate::harness::{Daemon, assert_error, json};

/// Polls `GET /api/cron/runs?job_id=` until `enough` says yes (at most 60 s).
async fn wait_runs(
    daemon: &Daemon,
    job: &str,
    enough: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = json(
            daemon
                .get(&format!("/api/cron/runs?job_id={job}&limit=500"))
                .await,
        )
        .await;
        let mut runs = body["items"].as_array().cloned().unwrap_or_default();
        runs.reverse(); // oldest first
        if enough(&runs) {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "runs never satisfied the condition; last: {runs:?}\nlog:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The scheduled occurrences of a job's non-manual runs, oldest first.
fn occurrences(runs: &[serde_json::Value]) -> Vec<String> {
    runs.iter()
        .filter(|r| r["manual"] == false)
        .map(|r| r["scheduled_at"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn assert_no_double_fire(runs: &[serde_json::Value]) {
    let occ = occurrences(runs);
    let mut sorted = occ.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(occ, sorted, "each occurrence ran once, in order: {runs:?}");
}

#[tokio::test]
async fn cron_jobs_crud_validation_and_schedule_views() {
    let daemon = Daemon::start().await;
    let agent = daemon.spawn_agent("cron-crud").await;

    // Malformed input gets a 4xx that says what is wrong.
    let bad = |body: serde_json::Value| daemon.post("/api/cron/jobs", body);
    assert_error(
        bad(serde_json::json!({"agent_id": agent, "schedule": "61 * * * *", "prompt": "x"})).await,
        400,
        "cron expression",
    )
    .await;
    assert_error(
        bad(
            serde_json::json!({"agent_id": agent, "schedule": "every 5 fortnights", "prompt": "x"}),
        )
        .await,
        400,
        "interval",
    )
    .await;
    assert_error(
        bad(serde_json::json!({"agent_id": agent, "schedule": "0 9 * * *", "tz": "Mars/Olympus", "prompt": "x"})).await,
        400,
        "time zone",
    )
    .await;
    assert_error(
        bad(serde_json::json!({"agent_id": agent, "schedule": "at 2001-01-01T00:00:00Z", "prompt": "x"})).await,
        400,
        "never fires",
    )
    .await;
    assert_error(
        bad(serde_json::json!({"agent_id": agent, "schedule": "0 9 * * *", "prompt": ""})).await,
        400,
        "prompt",
    )
    .await;
    assert_error(
        bad(serde_json::json!({"agent_id": agent, "schedule": "0 9 * * *", "prompt": "x", "lane": "nope"})).await,
        400,
        "lane",
    )
    .await;
    assert_error(
        bad(serde_json::json!({"agent_id": agent, "schedule": "0 9 * * *", "prompt": "x", "colour": 1})).await,
        400,
        "colour",
    )
    .await;
    assert_error(
        bad(serde_json::json!({"agent_id": "00000000-0000-0000-0000-000000000000", "schedule": "0 9 * * *", "prompt": "x"})).await,
        404,
        "agent",
    )
    .await;

    // Create through the cron door, with a time zone.
    let created = json(
        daemon
            .post(
                "/api/cron/jobs",
                serde_json::json!({
                    "name": "daily-digest", "agent_id": agent, "schedule": "0 8 * * *",
                    "tz": "Europe/Paris", "prompt": "Prepare the digest.", "missed_policy": "skip",
                }),
            )
            .await,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["job_id"], id.as_str());
    assert_eq!(created["enabled"], true);
    assert_eq!(created["cron"], "0 8 * * *");
    assert_eq!(created["effective_missed_policy"], "skip");
    let next = created["next_run"].as_str().expect("next_run");
    // 08:00 in Paris is 06:00 or 07:00 UTC.
    assert!(
        next.contains("T06:00:00") || next.contains("T07:00:00"),
        "{next}"
    );

    // Create through the schedules door (LibreFang's `cron` spelling, structured form too).
    let sched = json(
        daemon
            .post(
                "/api/schedules",
                serde_json::json!({"agent_id": agent, "cron": "every 10m", "prompt": "tick"}),
            )
            .await,
    )
    .await;
    let sched_id = sched["id"].as_str().unwrap().to_string();
    let structured = json(
        daemon
            .post(
                "/api/cron/jobs",
                serde_json::json!({"agent_id": agent, "schedule": {"kind": "every", "every_secs": 3600}, "prompt": "hourly"}),
            )
            .await,
    )
    .await;
    assert_eq!(structured["schedule"], "every 3600s");

    // LibreFang's own body: a structured schedule and an `agent_turn` action; 201.
    let libre = daemon
        .post(
            "/api/cron/jobs",
            serde_json::json!({"agent_id": agent, "name": "libre",
                               "schedule": {"kind": "cron", "expr": "0 9 * * 1-5"},
                               "action": {"kind": "agent_turn", "message": "Weekday briefing."}}),
        )
        .await;
    assert_eq!(libre.status(), 201);
    let libre = json(libre).await;
    assert_eq!(libre["status"], "created");
    assert_eq!(libre["prompt"], "Weekday briefing.");
    assert_error(
        bad(
            serde_json::json!({"agent_id": agent, "schedule": "0 9 * * *",
                               "action": {"kind": "system_event", "text": "x"}}),
        )
        .await,
        400,
        "system_event",
    )
    .await;
    let libre_id = libre["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        daemon
            .request(
                reqwest::Method::DELETE,
                &format!("/api/cron/jobs/{libre_id}")
            )
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let list = json(daemon.get("/api/cron/jobs").await).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 3);
    assert_eq!(list["total"], 3);
    let filtered = json(
        daemon
            .get("/api/cron/jobs?agent_id=00000000-0000-0000-0000-000000000000")
            .await,
    )
    .await;
    assert_eq!(filtered["total"], 0);
    let schedules = json(daemon.get("/api/schedules").await).await;
    assert_eq!(schedules["total"], 3);
    assert_eq!(schedules["offset"], 0);
    assert!(schedules["limit"].is_null());
    assert_eq!(schedules["items"].as_array().unwrap().len(), 3);

    // Update: fields given change, others stay.
    let updated = json(
        daemon
            .put(
                &format!("/api/cron/jobs/{id}"),
                serde_json::json!({"prompt": "Prepare the short digest.", "schedule": "30 8 * * 1-5"}),
            )
            .await,
    )
    .await;
    assert_eq!(updated["prompt"], "Prepare the short digest.");
    assert_eq!(updated["name"], "daily-digest");
    assert_eq!(updated["tz"], "Europe/Paris");
    assert_error(
        daemon
            .put(
                &format!("/api/cron/jobs/{id}"),
                serde_json::json!({"schedule": "nonsense"}),
            )
            .await,
        400,
        "cron expression",
    )
    .await;

    // Toggle.
    let disabled = json(
        daemon
            .put(
                &format!("/api/cron/jobs/{id}/enable"),
                serde_json::json!({"enabled": false}),
            )
            .await,
    )
    .await;
    assert_eq!(disabled["enabled"], false);
    assert!(disabled["next_run"].is_null());
    let status = json(daemon.get(&format!("/api/cron/jobs/{id}/status")).await).await;
    assert_eq!(status["enabled"], false);
    assert!(status["last_run"].is_null());
    let enabled = json(
        daemon
            .put(
                &format!("/api/cron/jobs/{id}/enable"),
                serde_json::json!({"enabled": true}),
            )
            .await,
    )
    .await;
    assert!(enabled["next_run"].is_string());

    // Schedules view of the same job; PUT through it.
    let via_sched = json(
        daemon
            .put(
                &format!("/api/schedules/{sched_id}"),
                serde_json::json!({"enabled": false}),
            )
            .await,
    )
    .await;
    assert_eq!(via_sched["enabled"], false);
    assert_eq!(
        json(daemon.get(&format!("/api/cron/jobs/{sched_id}")).await).await["enabled"],
        false
    );

    // Delete, idempotently; unknown and malformed ids.
    let del = json(
        daemon
            .request(reqwest::Method::DELETE, &format!("/api/cron/jobs/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(del["status"], "deleted");
    let again = json(
        daemon
            .request(reqwest::Method::DELETE, &format!("/api/schedules/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again["status"], "already-deleted");
    assert_error(
        daemon.get(&format!("/api/cron/jobs/{id}")).await,
        404,
        "not found",
    )
    .await;
    assert_error(daemon.get("/api/cron/jobs/not-a-uuid").await, 400, "").await;
    assert_error(
        daemon
            .post(
                "/api/schedules/00000000-0000-0000-0000-000000000000/run",
                serde_json::json!({}),
            )
            .await,
        404,
        "not found",
    )
    .await;

    // Every change is on the audit chain.
    let audit = json(daemon.get("/api/audit/recent?limit=500").await).await;
    let kinds: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    for kind in ["cron_job_created", "cron_job_updated", "cron_job_deleted"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn a_job_fires_each_occurrence_once_and_run_now_adds_a_manual_run() {
    let daemon = Daemon::start().await;
    let agent = daemon.spawn_agent("cron-fire").await;
    let job = json(
        daemon
            .post(
                "/api/schedules",
                serde_json::json!({"agent_id": agent, "cron": "every 1s", "prompt": "ping"}),
            )
            .await,
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    let runs = wait_runs(&daemon, &id, |r| {
        r.iter().filter(|r| r["status"] != "running").count() >= 3
    })
    .await;
    assert_no_double_fire(&runs);
    assert!(runs.iter().all(|r| r["job_id"] == id.as_str()));
    assert!(runs.iter().all(|r| r["agent_id"] == agent.as_str()));

    let triggered = json(
        daemon
            .post(&format!("/api/schedules/{id}/run"), serde_json::json!({}))
            .await,
    )
    .await;
    assert_eq!(triggered["status"], "triggered");
    let run_id = triggered["run_id"].as_str().unwrap().to_string();
    let runs = wait_runs(&daemon, &id, |r| {
        r.iter()
            .any(|r| r["id"] == run_id.as_str() && r["status"] != "running")
    })
    .await;
    assert!(
        runs.iter()
            .any(|r| r["id"] == run_id.as_str() && r["manual"] == true)
    );

    let status = json(daemon.get(&format!("/api/cron/jobs/{id}/status")).await).await;
    assert!(status["fire_count"].as_u64().unwrap() >= 4);
    assert!(status["last_run"]["status"].is_string());
    assert!(status["next_run"].is_string());

    // Disabled: it stops firing (a run already dispatched may still land).
    daemon
        .put(
            &format!("/api/cron/jobs/{id}/enable"),
            serde_json::json!({"enabled": false}),
        )
        .await;
    let settled = wait_runs(&daemon, &id, |r| r.iter().all(|r| r["status"] != "running")).await;
    let count = settled.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = json(
        daemon
            .get(&format!("/api/cron/runs?job_id={id}&limit=500"))
            .await,
    )
    .await;
    assert!(
        after["total"].as_u64().unwrap() <= count as u64 + 1,
        "a disabled job does not keep firing"
    );
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_schedule_neither_loses_nor_repeats_runs() {
    let mut daemon = Daemon::start().await;
    let agent = daemon.spawn_agent("cron-restart").await;
    let job = json(
        daemon
            .post(
                "/api/cron/jobs",
                serde_json::json!({"agent_id": agent, "schedule": "every 2s", "prompt": "tick", "missed_policy": "run_all"}),
            )
            .await,
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    let before = wait_runs(&daemon, &id, |r| !occurrences(r).is_empty()).await;
    let last_before = occurrences(&before).last().cloned().unwrap();

    // A crash, a pause long enough to miss at least one occurrence, and back.
    daemon.kill9();
    tokio::time::sleep(Duration::from_secs(5)).await;
    daemon.restart();

    let listed = json(daemon.get(&format!("/api/cron/jobs/{id}")).await).await;
    assert_eq!(listed["id"], id.as_str(), "the job survived the restart");
    let runs = wait_runs(&daemon, &id, |r| {
        occurrences(r).iter().filter(|o| **o > last_before).count() >= 3
    })
    .await;
    assert_no_double_fire(&runs);
    // run_all: the occurrences that passed while the daemon was down were run
    // after the restart, so the recorded occurrences are exactly two seconds
    // apart: none lost, none repeated.
    let times: Vec<chrono::DateTime<chrono::Utc>> = occurrences(&runs)
        .iter()
        .map(|o| o.parse().expect("RFC 3339 scheduled_at"))
        .collect();
    for pair in times.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_milliseconds(),
            2000,
            "consecutive occurrences: {times:?}"
        );
    }
}
