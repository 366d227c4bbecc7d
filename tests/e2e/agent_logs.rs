//! The agent's log end to end: what happened, read back after real turns,
//! filtered and paged, with bad queries refused.

use talon_test_llm::{Reply, TestLlm};

use crate::conversations::{manifest, say_ok, uuid_like};
use crate::harness::{Daemon, assert_error, json};

#[tokio::test]
async fn agent_logs_tell_what_happened_and_refuse_bad_queries() {
    let llm = TestLlm::start().await;
    let config = "[llm]\nmax_attempts = 1\n";
    let mut daemon = Daemon::start_with_config(config).await;
    let agent = daemon
        .spawn_manifest(manifest("logged", &llm, "gpt-4o-mini", &[]))
        .await;

    llm.push(Reply::text("fine").with_usage(120, 30));
    say_ok(&daemon, &agent, "hello").await;
    llm.push(Reply::error(500, "upstream exploded"));
    assert_error(
        daemon.message(&agent, "again").await,
        502,
        "upstream exploded",
    )
    .await;

    let logs = json(daemon.get(&format!("/api/agents/{agent}/logs")).await).await;
    assert_eq!(logs["agent_id"], agent.as_str());
    let lines = logs["logs"].as_array().unwrap();
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "turn_failed",
            "turn_started",
            "turn_completed",
            "turn_started",
            "agent_spawned"
        ],
        "{logs}"
    );
    assert_eq!(logs["count"], 5);
    assert_eq!(logs["total"], 5);
    let failed = &lines[0];
    assert_eq!(failed["level"], "error");
    assert!(
        failed["outcome"]
            .as_str()
            .unwrap()
            .contains("upstream exploded"),
        "{failed}"
    );
    let completed = &lines[2];
    assert_eq!(completed["level"], "info");
    assert_eq!(completed["outcome"], "ok");
    let detail = completed["detail"].as_str().unwrap();
    assert!(detail.contains("gpt-4o-mini"), "{detail}");
    assert!(detail.contains("120 input + 30 output tokens"), "{detail}");
    assert!(completed["turn_id"].is_string() && completed["session_id"].is_string());
    assert_eq!(lines[4]["source"], "audit");
    assert!(lines[4]["seq"].is_u64());

    // Filters and pages.
    let errors = json(
        daemon
            .get(&format!("/api/agents/{agent}/logs?level=error"))
            .await,
    )
    .await;
    assert_eq!(errors["total"], 1);
    assert_eq!(errors["logs"][0]["action"], "turn_failed");
    let page = json(
        daemon
            .get(&format!("/api/agents/{agent}/logs?n=2&offset=1"))
            .await,
    )
    .await;
    assert_eq!(page["count"], 2);
    assert_eq!(page["total"], 5);
    assert_eq!(page["logs"][0]["action"], "turn_started");
    assert_eq!(page["logs"][1]["action"], "turn_completed");
    let limited = json(
        daemon
            .get(&format!("/api/agents/{agent}/logs?limit=1&level=ok"))
            .await,
    )
    .await;
    assert_eq!(limited["count"], 1);
    assert_eq!(limited["total"], 4);

    // Bad input.
    for query in ["level=verbose", "n=lots", "offset=-1", "colour=red"] {
        let response = daemon
            .get(&format!("/api/agents/{agent}/logs?{query}"))
            .await;
        assert_eq!(response.status(), 400, "{query}");
    }
    assert_error(
        daemon
            .get(&format!("/api/agents/{agent}/logs?level=verbose"))
            .await,
        400,
        "unknown level",
    )
    .await;
    assert_error(
        daemon
            .get(&format!("/api/agents/{}/logs", uuid_like()))
            .await,
        404,
        "not found",
    )
    .await;
    assert_eq!(
        daemon.get("/api/agents/not-a-uuid/logs").await.status(),
        400
    );

    // The log is read from persisted records: a crash and a restart keep it.
    daemon.kill9();
    daemon.restart();
    let after = json(daemon.get(&format!("/api/agents/{agent}/logs")).await).await;
    assert_eq!(after["logs"], logs["logs"]);
}
