//! `config.toml`: written on first start, edited at runtime, kept across restarts.

use crate::harness::{Daemon, assert_error, json};

#[tokio::test]
async fn first_start_writes_a_commented_default_config() {
    let daemon = Daemon::start().await;
    let text = std::fs::read_to_string(daemon.config_file()).unwrap();
    assert!(text.contains("# Talon configuration."));
    assert!(text.contains("api_listen = \"127.0.0.1:4545\""));
    let config = json(daemon.get("/api/config").await).await;
    assert_eq!(config["rate_limit"]["api_requests_per_minute"], 500);
}

#[tokio::test]
async fn secrets_are_redacted() {
    let mut daemon = Daemon::start_with_config("api_key = \"topsecret\"\n").await;
    daemon.use_key("topsecret");
    let config = json(daemon.get("/api/config").await).await;
    assert_eq!(config["api_key"], "***");
    let shown = daemon.cli(&["config", "show"]);
    assert!(shown.status.success());
    assert!(!String::from_utf8_lossy(&shown.stdout).contains("topsecret"));
}

#[tokio::test]
async fn set_persists_applies_and_survives_restart() {
    let mut daemon = Daemon::start().await;
    let response = daemon
        .post(
            "/api/config/set",
            serde_json::json!({ "path": "rate_limit.api_requests_per_minute", "value": 1234 }),
        )
        .await;
    let body = json(response).await;
    assert_eq!(body["status"], "applied");
    assert_eq!(body["restart_required"], false);
    let text = std::fs::read_to_string(daemon.config_file()).unwrap();
    assert!(text.contains("api_requests_per_minute = 1234"));
    assert!(
        text.contains("# GCRA budget per client IP"),
        "comments are kept"
    );

    daemon.kill9();
    daemon.restart();
    let config = json(daemon.get("/api/config").await).await;
    assert_eq!(config["rate_limit"]["api_requests_per_minute"], 1234);
}

#[tokio::test]
async fn set_refuses_unknown_keys_and_bad_values_without_writing() {
    let daemon = Daemon::start().await;
    let before = std::fs::read_to_string(daemon.config_file()).unwrap();
    let unknown = daemon
        .post(
            "/api/config/set",
            serde_json::json!({ "path": "rate_limit.nope", "value": 1 }),
        )
        .await;
    assert_error(unknown, 400, "unknown config key `rate_limit.nope`").await;
    let wrong_type = daemon
        .post(
            "/api/config/set",
            serde_json::json!({ "path": "rate_limit.api_requests_per_minute", "value": "many" }),
        )
        .await;
    assert_error(wrong_type, 400, "invalid").await;
    let zero = daemon
        .post(
            "/api/config/set",
            serde_json::json!({ "path": "rate_limit.api_requests_per_minute", "value": 0 }),
        )
        .await;
    assert_error(zero, 400, "at least 1").await;
    assert_eq!(
        std::fs::read_to_string(daemon.config_file()).unwrap(),
        before
    );
}

#[tokio::test]
async fn set_of_a_restart_key_says_so() {
    let daemon = Daemon::start().await;
    let body = json(
        daemon
            .post(
                "/api/config/set",
                serde_json::json!({ "path": "api_listen", "value": "127.0.0.1:4999" }),
            )
            .await,
    )
    .await;
    assert_eq!(body["restart_required"], true);
}

#[tokio::test]
async fn reload_applies_edits_and_refuses_a_broken_file() {
    let daemon = Daemon::start().await;
    std::fs::write(
        daemon.config_file(),
        "log_level = \"debug\"\n[rate_limit]\napi_requests_per_minute = 77\n",
    )
    .unwrap();
    let plan = json(
        daemon
            .post("/api/config/reload", serde_json::json!({}))
            .await,
    )
    .await;
    assert_eq!(plan["status"], "reloaded");
    let changed: Vec<_> = plan["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        changed.contains(&"rate_limit.api_requests_per_minute"),
        "{plan}"
    );
    assert!(changed.contains(&"log_level"));

    std::fs::write(daemon.config_file(), "[rate_limit\n").unwrap();
    let broken = daemon
        .post("/api/config/reload", serde_json::json!({}))
        .await;
    assert_error(broken, 400, "invalid config").await;
    let config = json(daemon.get("/api/config").await).await;
    assert_eq!(
        config["rate_limit"]["api_requests_per_minute"], 77,
        "old config kept"
    );
}

#[tokio::test]
async fn export_and_schema() {
    let daemon = Daemon::start().await;
    let export = daemon.get("/api/config/export").await;
    assert_eq!(export.headers()["content-type"], "application/toml");
    assert!(
        export.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("config.toml")
    );
    assert!(export.text().await.unwrap().contains("api_listen"));

    let schema = json(daemon.get("/api/config/schema").await).await;
    assert!(schema["properties"]["rate_limit"].is_object(), "{schema}");
}

#[tokio::test]
async fn a_broken_config_file_stops_start_with_a_clear_message() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), "api_listen = 12\n").unwrap();
    let output = std::process::Command::new(crate::harness::talon_bin())
        .args(["--home", &home.path().display().to_string(), "start"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("api_listen") && stderr.contains("line 1"),
        "{stderr}"
    );
}
