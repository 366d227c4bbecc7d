//! The store under growth: what a turn reads and sends stays within the
//! agent's context budget, failing turns keep a bounded record, usage comes
//! from running totals, the daemon reports its memory and database size, and
//! `talon db stats` / `talon db compact` work on a stopped daemon's home.

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::{manifest, say_ok, sent_messages};
use crate::harness::{Daemon, json};

#[tokio::test]
async fn a_long_session_sends_only_the_newest_messages_that_fit_its_budget() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    // A message of 201 bytes is estimated at 58 tokens: with the new one,
    // a budget of 300 leaves room for the four newest stored messages.
    let toml = manifest("windowed", &llm, "test-model", &[])
        .replace("[model]\n", "[model]\nmax_context_tokens = 300\n");
    let agent = daemon.spawn_manifest(toml).await;
    for i in 0..12 {
        llm.push(Reply::text(format!("answer {i:02} {}", "y".repeat(190))));
        say_ok(
            &daemon,
            &agent,
            &format!("message {i:02} {}", "x".repeat(190)),
        )
        .await;
    }
    let sent = sent_messages(&llm.last_request().unwrap());
    let texts: Vec<&str> = sent.iter().map(|(_, t)| t.as_str()).collect();
    assert!(texts.last().unwrap().starts_with("message 11"), "{texts:?}");
    assert!(
        !texts.iter().any(|t| t.starts_with("message 00")),
        "the oldest messages are not sent: {texts:?}"
    );
    assert_eq!(
        sent.len(),
        6,
        "system prompt, four that fit, the new one: {texts:?}"
    );
    assert!(texts[1].starts_with("message 09"), "{texts:?}");
    // Everything is still stored; only what is sent is bounded.
    let view = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
    assert_eq!(view["message_count"], 24);

    // A budget the manifest cannot express is refused at the door.
    let bad = manifest("bad", &llm, "test-model", &[])
        .replace("[model]\n", "[model]\nmax_context_tokens = \"lots\"\n");
    let response = daemon
        .post("/api/agents", json!({ "manifest_toml": bad }))
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn usage_and_budgets_come_from_totals_that_survive_a_restart_and_compaction() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    let agent = daemon
        .spawn_manifest(manifest("spender", &llm, "gpt-4o-mini", &[]))
        .await;
    for _ in 0..3 {
        llm.push(Reply::text("ok").with_usage(1000, 100));
        say_ok(&daemon, &agent, "spend").await;
    }
    // A failing turn with a huge error is recorded, and its record is small.
    let huge = "e".repeat(500_000);
    for _ in 0..20 {
        llm.push(Reply::error(400, huge.clone()));
        let response = daemon.message(&agent, "fail").await;
        assert!(response.status().is_client_error() || response.status().is_server_error());
    }
    let before = json(daemon.get("/api/usage?period=day").await).await;
    assert_eq!(before["total_input_tokens"], 3000, "{before}");
    assert_eq!(before["turn_count"], 23, "{before}");
    assert_eq!(before["active_agents"], 1);
    let summary = json(daemon.get("/api/usage/summary").await).await;
    assert_eq!(summary["today"]["output_tokens"], 300);
    assert!(summary["today"]["cost_usd"].as_f64().unwrap() > 0.0);
    let by_model = json(daemon.get("/api/usage/by-model").await).await;
    assert_eq!(by_model["models"][0]["model"], "gpt-4o-mini", "{by_model}");
    assert_eq!(by_model["models"][0]["input_tokens"], 3000);
    let daily = json(daemon.get("/api/usage/daily").await).await;
    assert_eq!(daily["days"][0]["input_tokens"], 3000);
    let spend = json(daemon.get(&format!("/api/budget/agents/{agent}")).await).await;
    assert_eq!(spend["today_spent_usd"], summary["today"]["cost_usd"]);
    let bad = daemon.get("/api/usage?period=year").await;
    assert_eq!(bad.status(), 400);

    // The daemon holds the file: the offline commands say so and change nothing.
    let busy = daemon.cli(&["db", "stats"]);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("is the daemon running"));

    assert!(daemon.terminate().success());
    let stats = daemon.cli(&["db", "stats", "--json"]);
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let table = |name: &str| {
        stats["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {stats}"))
    };
    assert_eq!(table("turns.v1")["rows"], 23);
    assert!(
        table("turns.v1")["stored_bytes"].as_u64().unwrap() < 23 * 2048,
        "failed turns keep a bounded record: {}",
        table("turns.v1")
    );
    assert!(table("turn_totals.v1")["rows"].as_u64().unwrap() > 0);
    assert!(stats["file_bytes"].as_u64().unwrap() > 0);
    let text = daemon.cli(&["db", "stats"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("turns.v1"));

    let compact = daemon.cli(&["db", "compact"]);
    assert!(
        compact.status.success(),
        "{}",
        String::from_utf8_lossy(&compact.stderr)
    );
    assert!(String::from_utf8_lossy(&compact.stdout).contains("compacted"));

    daemon.restart();
    let after = json(daemon.get("/api/usage?period=day").await).await;
    assert_eq!(
        after, before,
        "the totals are unchanged by a restart and compaction"
    );

    // The daemon's memory and database in the diagnostics and the metrics.
    let detail = json(daemon.get("/api/health/detail").await).await;
    assert!(detail["memory_rss_bytes"].as_u64().unwrap() > 0);
    assert!(detail["database"]["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(detail["database"]["cache_limit_bytes"], 32 << 20);
    let metrics = daemon.get("/api/metrics").await.text().await.unwrap();
    assert!(metrics.contains("talon_database_size_bytes "), "{metrics}");
    assert!(metrics.contains("talon_process_resident_memory_bytes "));
}

#[tokio::test]
async fn db_commands_need_a_database_and_the_cache_size_is_configured() {
    let mut daemon = Daemon::start_with_config("[storage]\ncache_mib = 8\n").await;
    let detail = json(daemon.get("/api/health/detail").await).await;
    assert_eq!(detail["database"]["cache_limit_bytes"], 8 << 20);
    assert!(daemon.terminate().success());
    std::fs::remove_file(daemon.home().join("data/talon.redb")).unwrap();
    for args in [&["db", "stats"][..], &["db", "compact"][..]] {
        let out = daemon.cli(args);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
    }
    let bogus = daemon.cli(&["db", "stats", "--bogus"]);
    assert!(!bogus.status.success());
}
