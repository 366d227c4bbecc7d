//! Providers that misbehave in time, through the real binary (issue 19): a
//! provider that never answers fails the turn at the call deadline, one
//! that streams forever is cut at the output cap, one that stalls ends at
//! the idle timeout, a stream whose client left is dropped, a message to a
//! busy session says it is queued, and a broken URL opens the breaker of
//! that endpoint only. Limits are short and waits generous; what is
//! asserted is the outcome (status, error text, what the provider saw).

use std::time::Duration;

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::manifest;
use crate::harness::{Daemon, assert_error, json, parse_sse, sse_frames};

/// Short limits: a call may take 2 s in all, a stream may be silent 1 s.
const SHORT: &str = "[llm]\ncall_deadline_secs = 2\nstream_idle_secs = 1\n";

/// Polls `check` (every 20 ms, up to 30 s) until it holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..1500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

fn stream_request(daemon: &Daemon, agent: &str, text: &str) -> reqwest::RequestBuilder {
    daemon
        .request(
            reqwest::Method::POST,
            &format!("/api/agents/{agent}/message/stream"),
        )
        .json(&json!({ "message": text }))
}

async fn message_count(daemon: &Daemon, agent: &str) -> u64 {
    json(daemon.get(&format!("/api/agents/{agent}/session")).await).await["message_count"]
        .as_u64()
        .expect("message_count")
}

#[tokio::test]
async fn a_provider_that_never_answers_fails_the_turn_at_the_deadline() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config(SHORT).await;
    let agent = daemon
        .spawn_manifest(manifest("waiter", &llm, "test-model", &[]))
        .await;

    llm.push_all([Reply::hang(), Reply::text("never asked for")]);
    assert_error(
        daemon.message(&agent, "hello?").await,
        504,
        "ollama did not finish answering within the call deadline of 2s",
    )
    .await;
    // One attempt: a timeout is not retried.
    assert_eq!(llm.request_count(), 1);
    assert_eq!(llm.pending(), 1);
    eventually("the hanging request's connection closed", async || {
        llm.abandoned() >= 1
    })
    .await;

    // The session is usable at once and kept nothing of the failed turn.
    assert_eq!(message_count(&daemon, &agent).await, 0);
    let reply = json(daemon.message(&agent, "hello again").await).await;
    assert_eq!(reply["response"], "never asked for", "{reply}");

    // An agent's own deadline wins over [llm]'s; a senseless one is refused.
    let with_deadline = |secs: u64| {
        manifest("patient", &llm, "test-model", &[]).replace(
            "[capabilities]",
            &format!("call_deadline_secs = {secs}\n[capabilities]"),
        )
    };
    let refused = daemon
        .post("/api/agents", json!({ "manifest_toml": with_deadline(0) }))
        .await;
    assert_error(
        refused,
        400,
        "call_deadline_secs must be between 1 and 86400",
    )
    .await;
    let patient = daemon.spawn_manifest(with_deadline(1)).await;
    llm.push(Reply::hang());
    assert_error(
        daemon.message(&patient, "hello?").await,
        504,
        "within the call deadline of 1s",
    )
    .await;
    assert_eq!(reply["status"], "completed");
    assert_eq!(message_count(&daemon, &agent).await, 2);
}

#[tokio::test]
async fn an_endless_stream_is_cut_at_the_output_cap() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config(SHORT).await;
    // max_tokens 16: at most 16 × 32 = 512 bytes of streamed output.
    let agent = daemon
        .spawn_manifest(
            manifest("talker", &llm, "test-model", &[])
                .replace("[capabilities]", "max_tokens = 16\n[capabilities]"),
        )
        .await;

    llm.push(Reply::endless("blah "));
    let frames = sse_frames(
        stream_request(&daemon, &agent, "talk")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let streamed: usize = frames
        .iter()
        .filter(|f| f.event == "chunk")
        .map(|f| f.data["content"].as_str().unwrap_or_default().len())
        .sum();
    assert!(
        streamed > 0 && streamed <= 512,
        "{streamed} bytes passed on"
    );
    let last = frames.last().expect("frames");
    assert_eq!(last.event, "phase", "{frames:?}");
    assert_eq!(last.data["phase"], "error");
    let detail = last.data["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("ollama streamed more than 512 bytes of output")
            && detail.contains("max_tokens = 16"),
        "{detail}"
    );
    // The provider's connection was closed, not left streaming.
    eventually("the endless stream's connection closed", async || {
        llm.abandoned() >= 1
    })
    .await;
    // What was streamed before the cut is not kept: the turn failed.
    assert_eq!(message_count(&daemon, &agent).await, 0);
    llm.push(Reply::text("short"));
    assert_eq!(
        json(daemon.message(&agent, "briefly").await).await["response"],
        "short"
    );
}

#[tokio::test]
async fn a_stalled_stream_ends_at_the_idle_timeout() {
    let llm = TestLlm::start().await;
    let daemon =
        Daemon::start_with_config("[llm]\ncall_deadline_secs = 60\nstream_idle_secs = 1\n").await;
    let agent = daemon
        .spawn_manifest(manifest("staller", &llm, "test-model", &[]))
        .await;

    llm.push(Reply::stall("Let me see"));
    let frames = sse_frames(
        stream_request(&daemon, &agent, "well?")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        frames
            .iter()
            .any(|f| f.event == "chunk" && f.data["content"] == "Let me see"),
        "{frames:?}"
    );
    let last = frames.last().expect("frames");
    assert_eq!(last.data["phase"], "error", "{frames:?}");
    let detail = last.data["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("ollama timed out after 1s waiting for the next piece of the stream"),
        "{detail}"
    );
    eventually("the stalled stream's connection closed", async || {
        llm.abandoned() >= 1
    })
    .await;
}

#[tokio::test]
async fn a_stream_whose_client_left_is_dropped_and_the_turn_stopped() {
    let llm = TestLlm::start().await;
    // Limits far beyond the test: only the client leaving can end the stream.
    let daemon =
        Daemon::start_with_config("[llm]\ncall_deadline_secs = 600\nstream_idle_secs = 600\n")
            .await;
    let agent = daemon
        .spawn_manifest(manifest("lonely", &llm, "test-model", &[]))
        .await;

    llm.push(Reply::stall("Once upon a time"));
    let mut response = stream_request(&daemon, &agent, "tell me a story")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut seen = String::new();
    while !parse_sse(&seen).iter().any(|f| f.event == "chunk") {
        let chunk = response.chunk().await.unwrap().expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);

    eventually("the provider's connection closed", async || {
        llm.abandoned() >= 1
    })
    .await;
    eventually("the turn recorded as stopped", async || {
        let traces = json(daemon.get(&format!("/api/agents/{agent}/traces")).await).await;
        traces["traces"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["status"] == "stopped"))
    })
    .await;
    // The session takes the next message at once.
    llm.push(Reply::text("The end."));
    assert_eq!(
        json(daemon.message(&agent, "shorter, please").await).await["response"],
        "The end."
    );
}

#[tokio::test]
async fn a_message_behind_a_running_turn_says_it_is_queued() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config(SHORT).await;
    let agent = daemon
        .spawn_manifest(manifest("busy", &llm, "test-model", &[]))
        .await;

    llm.push_all([Reply::hang(), Reply::text("second answer")]);
    let first = daemon.message_in_background(&agent, "first");
    // The first turn holds the session once its model call reached the provider.
    eventually("the first turn's model call", async || {
        llm.request_count() >= 1
    })
    .await;
    let frames = sse_frames(
        stream_request(&daemon, &agent, "second")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let first_frame = frames.first().expect("frames");
    assert_eq!(first_frame.event, "phase", "{frames:?}");
    assert_eq!(first_frame.data["phase"], "queued");
    assert!(
        first_frame.data["detail"]
            .as_str()
            .is_some_and(|d| d.contains("running turn")),
        "{first_frame:?}"
    );
    let last = frames.last().expect("frames");
    assert_eq!(last.event, "done", "{frames:?}");
    assert_eq!(last.data["response"], "second answer");
    // The first, blocking, waited for its provider until the deadline.
    assert_error(first.await.unwrap(), 504, "call deadline of 2s").await;
}

#[tokio::test]
async fn a_broken_url_opens_the_breaker_of_that_endpoint_only() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config(
        "[llm]\nmax_attempts = 1\nbreaker_failure_threshold = 1\nbreaker_cooldown_secs = 600\n",
    )
    .await;
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let broken_url = format!("http://127.0.0.1:{port}/v1");
    let broken = daemon
        .spawn_manifest(
            manifest("broken", &llm, "test-model", &[]).replace(&llm.openai_url(), &broken_url),
        )
        .await;
    let working = daemon
        .spawn_manifest(manifest("working", &llm, "test-model", &[]))
        .await;

    assert_error(
        daemon.message(&broken, "hi").await,
        502,
        "connection to ollama failed",
    )
    .await;
    assert_error(
        daemon.message(&broken, "hi again").await,
        503,
        &format!("ollama at {broken_url} is failing; circuit breaker open"),
    )
    .await;

    // The same provider name at a working URL still answers.
    llm.push(Reply::text("all good here"));
    let reply = json(daemon.message(&working, "hi").await).await;
    assert_eq!(reply["response"], "all good here", "{reply}");

    let status = json(daemon.get("/api/breaker/status").await).await;
    let ollama: Vec<_> = status["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["provider"] == "ollama")
        .cloned()
        .collect();
    assert_eq!(ollama.len(), 2, "{ollama:?}");
    for breaker in &ollama {
        let expected = if breaker["endpoint"] == broken_url.as_str() {
            "open"
        } else {
            "closed"
        };
        assert_eq!(breaker["state"], expected, "{breaker}");
    }
}
