//! The conventions every route follows: errors, ids, headers, auth, limits.

use crate::harness::{Daemon, assert_error, json};

const KEYED: &str = "api_key = \"s3cret-key\"\n";

#[tokio::test]
async fn without_a_key_loopback_clients_need_no_auth() {
    let daemon = Daemon::start().await;
    assert_eq!(daemon.get("/api/status").await.status(), 200);
    assert_eq!(daemon.get("/api/config").await.status(), 200);
}

#[tokio::test]
async fn with_a_key_everything_but_health_and_root_needs_it() {
    let mut daemon = Daemon::start_with_config(KEYED).await;
    assert_eq!(daemon.get("/api/health").await.status(), 200);
    assert_eq!(daemon.get("/").await.status(), 200);
    assert_error(daemon.get("/api/status").await, 401, "authorization").await;
    assert_error(daemon.get("/api/health/detail").await, 401, "authorization").await;

    let wrong = daemon
        .request(reqwest::Method::GET, "/api/status")
        .bearer_auth("s3cret-kez")
        .send()
        .await
        .unwrap();
    assert_error(wrong, 401, "invalid api key").await;

    let by_header = daemon
        .request(reqwest::Method::GET, "/api/status")
        .header("x-api-key", "s3cret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);

    daemon.use_key("s3cret-key");
    assert_eq!(daemon.get("/api/status").await.status(), 200);
    assert_eq!(daemon.get("/api/health/detail").await.status(), 200);
}

#[tokio::test]
async fn unknown_routes_and_things_are_json_404s() {
    let daemon = Daemon::start().await;
    assert_error(daemon.get("/api/no-such-route").await, 404, "no route").await;
    let id = uuid_like();
    assert_error(
        daemon.get(&format!("/api/agents/{id}")).await,
        404,
        "not found",
    )
    .await;
    let wrong_method = daemon
        .request(reqwest::Method::PATCH, "/api/health")
        .send()
        .await
        .unwrap();
    assert_error(wrong_method, 405, "not allowed").await;
}

fn uuid_like() -> &'static str {
    "6f1c1a52-3a51-4c1e-9d0b-1f2a3b4c5d6e"
}

#[tokio::test]
async fn malformed_input_is_a_400_that_says_what_is_wrong() {
    let daemon = Daemon::start().await;
    let broken_json = daemon
        .request(reqwest::Method::POST, "/api/agents")
        .header("content-type", "application/json")
        .body("{\"manifest_toml\": ")
        .send()
        .await
        .unwrap();
    assert_error(broken_json, 400, "failed to parse the request body as json").await;

    let missing_field = daemon.post("/api/agents", serde_json::json!({})).await;
    assert_error(missing_field, 400, "`manifest_toml` or `template`").await;

    let bad_toml = daemon
        .post(
            "/api/agents",
            serde_json::json!({ "manifest_toml": "name = \"x\"\n[model]\nprovider = 42\n" }),
        )
        .await;
    let body = json(bad_toml).await;
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("line 3"), "names the line: {message}");
    assert!(message.contains("provider"), "names the key: {message}");

    assert_error(daemon.get("/api/agents/not-a-uuid").await, 400, "uuid").await;
    assert_error(daemon.get("/api/agents?limit=lots").await, 400, "limit").await;

    // Nothing was half-written by any of the above.
    let agents = json(daemon.get("/api/agents").await).await;
    assert_eq!(agents["total"], 0);
}

#[tokio::test]
async fn request_ids_are_kept_or_generated() {
    let daemon = Daemon::start().await;
    let response = daemon.get("/api/health").await;
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");

    let kept = daemon
        .request(reqwest::Method::GET, "/api/health")
        .header("x-request-id", "trace-abc_123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-abc_123");

    let hostile = daemon
        .request(reqwest::Method::GET, "/api/no-such-route")
        .header("x-request-id", "a".repeat(500))
        .send()
        .await
        .unwrap();
    let replaced = hostile.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(replaced.len(), 36, "an oversized id is replaced");
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let daemon = Daemon::start_with_config(KEYED).await;
    for response in [
        daemon.get("/api/health").await,
        daemon.get("/api/status").await, // 401
        daemon.get("/").await,
    ] {
        let h = response.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(
            h["strict-transport-security"],
            "max-age=63072000; includeSubDomains"
        );
        assert!(h.contains_key("x-request-id"));
    }
}

/// A GET through a (pretend) proxy: a loopback request with a forwarding header.
async fn get_forwarded(daemon: &Daemon, path: &str, header: &str) -> reqwest::Response {
    daemon
        .request(reqwest::Method::GET, path)
        .header(header, "203.0.113.7")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_burst_is_answered_with_429_and_retry_after() {
    let daemon = Daemon::start_with_config("[rate_limit]\napi_requests_per_minute = 10\n").await;
    // A local client talking to its own daemon is not limited, as in LibreFang.
    for _ in 0..30 {
        assert_eq!(daemon.get("/api/status").await.status(), 200);
    }
    // A request relayed by a proxy is.
    let mut limited = None;
    for _ in 0..30 {
        let response = get_forwarded(&daemon, "/api/status", "x-forwarded-for").await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let response = limited.expect("a burst over the budget is refused");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert!(response.headers().contains_key("x-request-id"));
    // The message names the limit and how to raise it.
    assert_error(response, 429, "budget of 10 cost units per minute").await;
    let again = get_forwarded(&daemon, "/api/status", "forwarded").await;
    assert_error(again, 429, "rate_limit.api_requests_per_minute").await;

    // The budget belongs to the client IP, not to one route.
    let metrics = get_forwarded(&daemon, "/api/metrics", "x-real-ip").await;
    assert_eq!(metrics.status(), 429, "the budget is per IP, across routes");
}

#[tokio::test]
async fn loopback_clients_are_limited_when_the_exemption_is_off() {
    let daemon = Daemon::start_with_config(
        "[rate_limit]\napi_requests_per_minute = 10\nexempt_loopback = false\n",
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(daemon.get("/api/status").await.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let response = daemon.get("/api/status").await;
    assert_error(response, 429, "rate_limit.exempt_loopback = true").await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let daemon = Daemon::start_with_config("[limits]\nmax_body_bytes = 4096\n").await;
    let manifest = "#".repeat(10_000);
    let response = daemon
        .post(
            "/api/agents",
            serde_json::json!({ "manifest_toml": manifest }),
        )
        .await;
    assert_error(response, 413, "length limit").await;
}

#[tokio::test]
async fn cors_allows_only_localhost_origins_without_a_key() {
    let daemon = Daemon::start().await;
    let preflight = |origin: &'static str| {
        daemon
            .request(reqwest::Method::OPTIONS, "/api/agents")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let local = preflight("http://localhost:5173").await.unwrap();
    assert_eq!(
        local.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let foreign = preflight("https://evil.example").await.unwrap();
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn api_v1_prefix_is_an_alias() {
    let daemon = Daemon::start().await;
    let body = json(daemon.get("/api/v1/health").await).await;
    assert_eq!(body["status"], "ok");
}
