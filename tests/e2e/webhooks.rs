//! Webhooks end to end: signed deliveries to a local receiver that checks
//! every signature itself; a receiver that is down gets retries and, back
//! up, every event, across `kill -9`; a delivery that uses up its attempts
//! is a dead letter that can be retried; the inbound hooks want their token.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use hmac::{KeyInit, Mac};
use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::manifest;
use crate::harness::{Daemon, assert_error, json};

const SECRET: &str = "receiver-secret";

/// What the receiver accepted: each delivery's verified body.
#[derive(Default)]
struct Received {
    up: AtomicBool,
    bodies: Mutex<Vec<serde_json::Value>>,
    refused: Mutex<u32>,
}

/// A local receiver: 503 while down; when up, checks the signature over
/// `timestamp.body` with its own HMAC and the timestamp's freshness.
async fn receiver() -> (SocketAddr, Arc<Received>) {
    let state = Arc::new(Received::default());
    state.up.store(true, Ordering::SeqCst);
    let shared = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = shared.clone();
            async move {
                if !state.up.load(Ordering::SeqCst) {
                    *state.refused.lock().unwrap() += 1;
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let timestamp = header("x-talon-timestamp");
                let mut mac =
                    <hmac::Hmac<sha2_v11::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes())
                        .unwrap();
                mac.update(format!("{timestamp}.{body}").as_bytes());
                let expected = header("x-talon-signature");
                let Some(hex_sig) = expected.strip_prefix("sha256=") else {
                    return StatusCode::UNAUTHORIZED;
                };
                let Ok(bytes) = hex_decode(hex_sig) else {
                    return StatusCode::UNAUTHORIZED;
                };
                if mac.verify_slice(&bytes).is_err() {
                    return StatusCode::UNAUTHORIZED;
                }
                let now = chrono::Utc::now().timestamp();
                let ts: i64 = timestamp.parse().unwrap_or(0);
                if (now - ts).abs() > 300 {
                    return StatusCode::UNAUTHORIZED;
                }
                let value: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(value["id"].as_str().unwrap(), header("x-talon-delivery"));
                assert_eq!(
                    value["event_type"].as_str().unwrap(),
                    header("x-talon-event")
                );
                state.bodies.lock().unwrap().push(value);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.unwrap();
    });
    (addr, state)
}

fn hex_decode(text: &str) -> Result<Vec<u8>, ()> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or(())?, 16).map_err(|_| ()))
        .collect()
}

/// Waits until the receiver has accepted an `agent_spawned` for `name`.
async fn delivered_spawn(received: &Received, name: &str) -> serde_json::Value {
    loop {
        if let Some(found) = received
            .bodies
            .lock()
            .unwrap()
            .iter()
            .find(|b| b["event_type"] == "agent_spawned" && b["data"]["name"] == name)
        {
            return found.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

const CONFIG: &str = "[webhooks]\nmax_attempts = 3\nbackoff_base_ms = 50\nbackoff_cap_secs = 1\n\
                      wake_token = \"wake-token\"\nagent_token = \"agent-token\"\n";

#[tokio::test]
async fn deliveries_are_signed_retried_kept_across_kill_9_and_dead_lettered() {
    let (addr, received) = receiver().await;
    let mut daemon = Daemon::start_with_config(CONFIG).await;
    let url = format!("http://{addr}/hook");

    // Bad input is refused and stores nothing.
    for (body, needle) in [
        (json!({"url": "ftp://example.com/x"}), "http"),
        (json!({"name": "no url"}), "`url` is required"),
        (json!({"url": "not a url"}), "not a URL"),
        (
            json!({"url": url, "events": ["Not An Event"]}),
            "not an event type",
        ),
        (json!({"url": url, "surprise": true}), "unknown field"),
        (
            json!({"url": url, "secret": "s".repeat(300)}),
            "at most 256",
        ),
    ] {
        assert_error(daemon.post("/api/webhooks", body).await, 400, needle).await;
    }
    assert_eq!(json(daemon.get("/api/webhooks").await).await["total"], 0);

    let made = daemon
        .post(
            "/api/webhooks",
            json!({"name": "spawns", "url": url, "secret": SECRET, "events": ["agent_spawned"]}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let hook = json(made).await;
    assert_eq!(hook["secret"], SECRET, "shown once, on creation");
    let id = hook["id"].as_str().unwrap().to_string();
    let listed = json(daemon.get(&format!("/api/webhooks/{id}")).await).await;
    assert!(listed.get("secret").is_none(), "{listed}");

    // A test delivery, outside the queue.
    let tested = json(
        daemon
            .post(&format!("/api/webhooks/{id}/test"), json!({}))
            .await,
    )
    .await;
    assert_eq!(tested["success"], true, "{tested}");

    // An event it subscribes to arrives signed; others do not.
    daemon.spawn_agent("first").await;
    let body = delivered_spawn(&received, "first").await;
    assert_eq!(body["data"]["type"], "agent_spawned");

    // The receiver goes down: the delivery is retried, survives kill -9,
    // and arrives once the receiver is back.
    received.up.store(false, Ordering::SeqCst);
    daemon.spawn_agent("second").await;
    loop {
        let queue = json(daemon.get("/api/webhooks/deliveries").await).await;
        if queue["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["attempts"].as_u64() >= Some(1))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    daemon.kill9();
    received.up.store(true, Ordering::SeqCst);
    daemon.restart();
    delivered_spawn(&received, "second").await;

    // Down for good: after max_attempts it is a dead letter, visible and retryable.
    received.up.store(false, Ordering::SeqCst);
    daemon.spawn_agent("third").await;
    let dead = loop {
        let dead = json(daemon.get("/api/webhooks/dead-letters").await).await;
        if dead["total"] == 1 {
            break dead;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let letter = &dead["dead_letters"][0];
    assert_eq!(letter["attempts"], 3);
    assert!(
        letter["last_error"].as_str().unwrap().contains("503"),
        "{letter}"
    );
    assert_eq!(letter["payload"]["data"]["name"], "third");
    received.up.store(true, Ordering::SeqCst);
    let letter_id = letter["id"].as_str().unwrap();
    let retried = daemon
        .post(
            &format!("/api/webhooks/dead-letters/{letter_id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(retried.status(), 202);
    delivered_spawn(&received, "third").await;
    assert_eq!(
        json(daemon.get("/api/webhooks/dead-letters").await).await["total"],
        0
    );
    assert_error(
        daemon
            .post(
                &format!("/api/webhooks/dead-letters/{letter_id}/retry"),
                json!({}),
            )
            .await,
        404,
        "no dead letter",
    )
    .await;

    // Event subscriptions (LibreFang's shape) and removal.
    let sub = daemon
        .post(
            "/api/webhooks/events",
            json!({"event_type": "agent_terminated", "url": url, "secret": SECRET}),
        )
        .await;
    assert_eq!(sub.status(), 201);
    let sub = json(sub).await;
    assert_eq!(sub["event_type"], "agent_terminated");
    assert_error(
        daemon
            .post("/api/webhooks/events", json!({"url": url}))
            .await,
        400,
        "event_type",
    )
    .await;
    let events = json(daemon.get("/api/webhooks/events").await).await;
    assert_eq!(events["total"], 1);
    let deleted = daemon
        .request(reqwest::Method::DELETE, &format!("/api/webhooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        daemon.get(&format!("/api/webhooks/{id}")).await.status(),
        404
    );
}

#[tokio::test]
async fn inbound_hooks_want_their_token_and_wake_the_agent() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config(CONFIG).await;
    let agent = daemon
        .spawn_manifest(manifest("sleeper", &llm, "test-model", &[]))
        .await;
    let hook = |path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", daemon.base_url()))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let wake = json!({"text": "the build broke", "agent": "sleeper"});
    assert_error(
        hook("/api/hooks/wake", None, wake.clone()).await.unwrap(),
        401,
        "missing token",
    )
    .await;
    assert_error(
        hook("/api/hooks/wake", Some("agent-token"), wake.clone())
            .await
            .unwrap(),
        401,
        "invalid wake hook token",
    )
    .await;
    assert_error(
        hook("/api/hooks/wake", Some("wake-token"), json!({"text": " "}))
            .await
            .unwrap(),
        400,
        "non-empty",
    )
    .await;

    llm.push_all([Reply::text("looking into it")]);
    let woke = hook("/api/hooks/wake", Some("wake-token"), wake)
        .await
        .unwrap();
    assert_eq!(woke.status(), 200);
    let woke = json(woke).await;
    assert_eq!(woke["status"], "accepted");
    // The agent's turn runs on its own; its answer lands in its session.
    loop {
        let session = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
        if session["message_count"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    assert_error(
        hook(
            "/api/hooks/agent",
            Some("wake-token"),
            json!({"agent": "sleeper", "message": "hi"}),
        )
        .await
        .unwrap(),
        401,
        "invalid agent hook token",
    )
    .await;
    assert_error(
        hook(
            "/api/hooks/agent",
            Some("agent-token"),
            json!({"agent": "nobody", "message": "hi"}),
        )
        .await
        .unwrap(),
        404,
        "no agent named",
    )
    .await;
    llm.push_all([Reply::text("hello from sleeper")]);
    let answered = hook(
        "/api/hooks/agent",
        Some("agent-token"),
        json!({"agent": "sleeper", "message": "hi"}),
    )
    .await
    .unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(json(answered).await["response"], "hello from sleeper");
}
