//! System endpoints and the daemon's lifecycle.

use crate::harness::{Daemon, assert_error, json, talon_bin};

#[tokio::test]
async fn health_is_redacted_and_detail_is_full() {
    let daemon = Daemon::start().await;
    let health = json(daemon.get("/api/health").await).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["checks"][0]["name"], "database");
    assert!(
        health.get("uptime_seconds").is_none(),
        "public health stays minimal"
    );

    let detail = json(daemon.get("/api/health/detail").await).await;
    assert_eq!(detail["database"]["status"], "ok");
    assert_eq!(
        detail["database"]["schema_version"],
        talon_kernel::store::SCHEMA_VERSION
    );
    assert!(detail["uptime_seconds"].is_u64());
}

#[tokio::test]
async fn status_version_and_versions() {
    let daemon = Daemon::start().await;
    daemon.spawn_agent("probe").await;
    let status = json(daemon.get("/api/status").await).await;
    assert_eq!(status["status"], "running");
    assert_eq!(status["agent_count"], 1);
    assert_eq!(status["agents"][0]["name"], "probe");
    assert_eq!(status["home_dir"], daemon.home().display().to_string());

    let version = json(daemon.get("/api/version").await).await;
    assert_eq!(version["name"], "talon");
    assert_eq!(version["api"]["current"], "v1");
    let versions = json(daemon.get("/api/versions").await).await;
    assert_eq!(versions["supported"][0], "v1");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let daemon = Daemon::start().await;
    daemon.get("/api/health").await;
    let response = daemon.get("/api/metrics").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("# TYPE talon_http_requests counter"),
        "{text}"
    );
    assert!(text.contains(
        "talon_http_requests_total{method=\"GET\",route=\"/api/health\",status=\"200\"}"
    ));
    assert!(text.contains("talon_uptime_seconds"));
    assert!(text.contains("talon_process_resident_memory_bytes"));
}

#[tokio::test]
async fn openapi_is_generated_from_the_routes() {
    let daemon = Daemon::start().await;
    let doc = json(daemon.get("/api/openapi.json").await).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/health",
        "/api/agents",
        "/api/agents/{id}",
        "/api/config/set",
        "/api/memory/agents/{id}/kv/{key}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    assert!(
        doc["paths"]["/api/agents"]["post"]["responses"]
            .get("201")
            .is_some()
    );
}

#[tokio::test]
async fn root_page_is_html() {
    let daemon = Daemon::start().await;
    let response = daemon.get("/").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text().await.unwrap().contains("Talon"));
}

#[tokio::test]
async fn shutdown_over_the_api_exits_cleanly() {
    let mut daemon = Daemon::start().await;
    assert!(daemon.home().join("daemon.json").exists());
    let body = json(daemon.post("/api/shutdown", serde_json::json!({})).await).await;
    assert_eq!(body["status"], "shutting_down");
    assert!(daemon.wait_exit().success());
    assert!(
        !daemon.home().join("daemon.json").exists(),
        "daemon file removed"
    );
    assert!(daemon.log().contains("talon stopped"));
}

#[tokio::test]
async fn sigterm_is_a_graceful_shutdown() {
    let mut daemon = Daemon::start().await;
    daemon.spawn_agent("survivor").await;
    assert!(daemon.terminate().success());
    daemon.restart();
    let agents = json(daemon.get("/api/agents").await).await;
    assert_eq!(agents["items"][0]["name"], "survivor");
}

#[tokio::test]
async fn refuses_a_public_address_without_a_key() {
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(talon_bin())
        .args([
            "--home",
            &home.path().display().to_string(),
            "start",
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without an api_key"), "{stderr}");
}

#[tokio::test]
async fn duplicate_agent_names_conflict() {
    let daemon = Daemon::start().await;
    daemon.spawn_agent("twin").await;
    let manifest = "name = \"twin\"\n[model]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n";
    let response = daemon
        .post(
            "/api/agents",
            serde_json::json!({ "manifest_toml": manifest }),
        )
        .await;
    assert_error(response, 409, "already exists").await;
}
