//! Keys, retries, timeouts and circuit breakers, over real HTTP.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ALL, Wire, client, client_with, drain, fast};
use talon_llm::{
    BreakerState, CompletionRequest, LlmClient, LlmError, Message, ResilienceConfig, StreamEvent,
    Target, TimeoutPhase,
};
use talon_test_llm::{Reply, TestLlm};

#[tokio::test]
async fn missing_key_names_the_environment_variable() {
    let error = client()
        .complete(
            &Target::new("openai"),
            CompletionRequest::new("gpt-4o").with_message(Message::user("hi")),
        )
        .await
        .expect_err("no key anywhere");
    match &error {
        LlmError::MissingApiKey { provider, env } => {
            assert_eq!(provider, "openai");
            assert_eq!(env, "OPENAI_API_KEY");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("set the OPENAI_API_KEY environment variable")
    );

    for (provider, env) in [
        ("anthropic", "ANTHROPIC_API_KEY"),
        ("gemini", "GEMINI_API_KEY"),
        ("groq", "GROQ_API_KEY"),
    ] {
        let error = client()
            .driver(&Target::new(provider))
            .err()
            .expect("missing key");
        assert!(error.to_string().contains(env), "{error}");
    }
}

#[tokio::test]
async fn key_comes_from_the_environment_when_not_given() {
    let server = TestLlm::start().await;
    server.require_api_key(Some("from-env"));
    let llm = LlmClient::new()
        .with_resilience(fast())
        .with_env_lookup(|name| (name == "ANTHROPIC_API_KEY").then(|| "from-env".to_string()));
    let target = Target::new("anthropic").with_base_url(server.anthropic_url());
    let response = llm
        .complete(&target, Wire::Anthropic.request("hi"))
        .await
        .expect("key from env");
    assert_eq!(response.text, talon_test_llm::DEFAULT_REPLY);
    // An explicit key wins over the environment.
    let error = llm
        .complete(
            &target.with_api_key("explicit"),
            Wire::Anthropic.request("hi"),
        )
        .await
        .expect_err("explicit key is used, and wrong");
    assert!(
        matches!(error, LlmError::Http { status: 401, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn an_empty_environment_variable_counts_as_unset() {
    let llm = LlmClient::new().with_env_lookup(|_| Some(String::new()));
    let error = llm.driver(&Target::new("openai")).err().expect("empty key");
    assert!(matches!(error, LlmError::MissingApiKey { .. }));
}

#[tokio::test]
async fn local_providers_need_no_key() {
    let server = TestLlm::start().await;
    let target = Target::new("ollama").with_base_url(server.openai_url());
    let response = client()
        .complete(
            &target,
            CompletionRequest::new("llama3.2").with_message(Message::user("hi")),
        )
        .await
        .expect("no key needed");
    assert_eq!(response.text, talon_test_llm::DEFAULT_REPLY);
    assert_eq!(
        server
            .last_request()
            .expect("recorded")
            .header("authorization"),
        None
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    for wire in ALL {
        for streamed in [false, true] {
            let server = TestLlm::start().await;
            server.push_all([
                Reply::error(500, "internal"),
                Reply::error(503, "unavailable"),
                Reply::text("ok"),
            ]);
            let target = wire.target(&server);
            let llm = client();
            let text = if streamed {
                let stream = llm
                    .stream(&target, wire.request("hi"))
                    .await
                    .expect("stream after retries");
                talon_llm::collect(stream, wire.model())
                    .await
                    .expect("collect")
                    .text
            } else {
                llm.complete(&target, wire.request("hi"))
                    .await
                    .expect("after retries")
                    .text
            };
            assert_eq!(text, "ok", "{wire:?} streamed={streamed}");
            assert_eq!(server.request_count(), 3, "{wire:?} streamed={streamed}");
        }
    }
}

#[tokio::test]
async fn retries_are_bounded() {
    let server = TestLlm::start().await;
    server.push_all((0..5).map(|_| Reply::error(502, "bad gateway")));
    let error = client()
        .complete(&Wire::OpenAi.target(&server), Wire::OpenAi.request("hi"))
        .await
        .expect_err("keeps failing");
    assert!(
        matches!(error, LlmError::Http { status: 502, .. }),
        "{error}"
    );
    assert_eq!(server.request_count(), 3, "default of three attempts");
    assert_eq!(server.pending(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = TestLlm::start().await;
    server.push_all([Reply::error(400, "bad request"), Reply::text("never")]);
    let error = client()
        .complete(
            &Wire::Anthropic.target(&server),
            Wire::Anthropic.request("hi"),
        )
        .await
        .expect_err("400");
    assert!(
        matches!(error, LlmError::Http { status: 400, .. }),
        "{error}"
    );
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = TestLlm::start().await;
    server.push_all([
        Reply::rate_limited(Duration::from_millis(150)),
        Reply::text("ok"),
    ]);
    let started = Instant::now();
    let response = client()
        .complete(&Wire::OpenAi.target(&server), Wire::OpenAi.request("hi"))
        .await
        .expect("after waiting");
    let waited = started.elapsed();
    assert_eq!(response.text, "ok");
    assert_eq!(server.request_count(), 2);
    // The backoff alone is at most 5 ms here: only Retry-After explains the wait.
    assert!(
        waited >= Duration::from_millis(150),
        "waited only {waited:?}"
    );
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured() {
    let server = TestLlm::start().await;
    server.push_all([
        Reply::error(429, "slow down").with_header("retry-after", "0.1"),
        Reply::text("ok"),
    ]);
    let started = Instant::now();
    client()
        .complete(&Wire::Gemini.target(&server), Wire::Gemini.request("hi"))
        .await
        .expect("after waiting");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_is_returned_not_slept() {
    let server = TestLlm::start().await;
    server.push_all([
        Reply::error(429, "come back in two minutes").with_header("retry-after", "120"),
        Reply::text("never"),
    ]);
    let started = Instant::now();
    let error = client()
        .complete(
            &Wire::Anthropic.target(&server),
            Wire::Anthropic.request("hi"),
        )
        .await
        .expect_err("rate limited");
    assert!(started.elapsed() < Duration::from_secs(2));
    match error {
        LlmError::RateLimited {
            retry_after,
            message,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(120)));
            assert_eq!(message, "come back in two minutes");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn an_error_event_before_any_content_is_retried() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push_all([Reply::stream_error("Overloaded"), Reply::text("ok")]);
        let stream = client()
            .stream(&wire.target(&server), wire.request("hi"))
            .await
            .unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        let response = talon_llm::collect(stream, wire.model())
            .await
            .expect("collect");
        assert_eq!(response.text, "ok", "{wire:?}");
        assert_eq!(server.request_count(), 2, "{wire:?}");
    }
}

#[tokio::test]
async fn a_stream_that_has_yielded_is_never_retried() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push_all([
            Reply::text("partial answer here").in_chunks(3).truncated(),
            Reply::text("retry"),
        ]);
        let stream = client()
            .stream(&wire.target(&server), wire.request("hi"))
            .await
            .expect("stream");
        let items = drain(stream).await;
        assert!(
            matches!(items.first(), Some(Ok(StreamEvent::TextDelta(_)))),
            "{wire:?}"
        );
        assert!(
            matches!(items.last(), Some(Err(LlmError::Stream { .. }))),
            "{wire:?}"
        );
        assert_eq!(server.request_count(), 1, "{wire:?}");
        assert_eq!(server.pending(), 1, "{wire:?}");
    }
}

fn with_stream_idle(idle: Duration, attempts: u32) -> ResilienceConfig {
    let mut config = fast();
    config.timeouts.stream_idle = idle;
    config.retry.max_attempts = attempts;
    config
}

#[tokio::test]
async fn stream_idle_timeout_after_content() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push(
            Reply::text("one two three")
                .in_chunks(3)
                .with_chunk_delay(Duration::from_millis(600)),
        );
        let llm = client_with(with_stream_idle(Duration::from_millis(100), 3));
        let started = Instant::now();
        let stream = llm
            .stream(&wire.target(&server), wire.request("hi"))
            .await
            .unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        let items = drain(stream).await;
        assert!(
            matches!(items.first(), Some(Ok(StreamEvent::TextDelta(_)))),
            "{wire:?}: {items:?}"
        );
        match items.last() {
            Some(Err(LlmError::Timeout { phase, after, .. })) => {
                assert_eq!(*phase, TimeoutPhase::StreamIdle);
                assert_eq!(*after, Duration::from_millis(100));
            }
            other => panic!("{wire:?}: expected an idle timeout, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_millis(550),
            "{wire:?}: gave up late"
        );
        assert_eq!(server.request_count(), 1, "{wire:?}");
    }
}

#[tokio::test]
async fn stream_idle_timeout_before_the_response() {
    let server = TestLlm::start().await;
    server.push(Reply::text("late").with_delay(Duration::from_millis(500)));
    let llm = client_with(with_stream_idle(Duration::from_millis(100), 1));
    let error = llm
        .stream(&Wire::OpenAi.target(&server), Wire::OpenAi.request("hi"))
        .await
        .err()
        .expect("timeout");
    assert!(
        matches!(
            error,
            LlmError::Timeout {
                phase: TimeoutPhase::StreamIdle,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn slow_stream_within_the_idle_limit_is_fine() {
    let server = TestLlm::start().await;
    server.push(
        Reply::text("a b c d")
            .in_chunks(4)
            .with_chunk_delay(Duration::from_millis(30)),
    );
    let llm = client_with(with_stream_idle(Duration::from_millis(300), 1));
    let stream = llm
        .stream(
            &Wire::Anthropic.target(&server),
            Wire::Anthropic.request("hi"),
        )
        .await
        .expect("stream");
    let response = talon_llm::collect(stream, "m").await.expect("complete");
    assert_eq!(response.text, "a b c d");
}

#[tokio::test]
async fn blocking_request_timeout() {
    let server = TestLlm::start().await;
    server.push(Reply::text("late").with_delay(Duration::from_millis(600)));
    let mut config = fast();
    config.timeouts.request = Duration::from_millis(100);
    config.retry.max_attempts = 1;
    let started = Instant::now();
    let error = client_with(config)
        .complete(&Wire::Gemini.target(&server), Wire::Gemini.request("hi"))
        .await
        .expect_err("timeout");
    assert!(
        matches!(
            error,
            LlmError::Timeout {
                phase: TimeoutPhase::Request,
                ..
            }
        ),
        "{error:?}"
    );
    // A timeout is not retried: the next attempt would most likely wait as long.
    assert!(!error.is_retryable());
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn connection_refused_is_a_retryable_connect_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let target = Target::new("ollama").with_base_url(format!("http://127.0.0.1:{port}/v1"));
    let error = client()
        .complete(
            &target,
            CompletionRequest::new("llama3.2").with_message(Message::user("hi")),
        )
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, LlmError::Connect { .. }), "{error:?}");
    assert!(error.is_retryable());
}

fn breaker_config(threshold: u32, cooldown: Duration) -> ResilienceConfig {
    let mut config = fast();
    config.retry.max_attempts = 1;
    config.breaker.failure_threshold = threshold;
    config.breaker.cooldown = cooldown;
    config
}

fn status_of(llm: &LlmClient, provider: &str) -> talon_llm::BreakerStatus {
    llm.status()
        .into_iter()
        .find(|status| status.provider == provider)
        .expect("every provider has a status")
}

#[tokio::test]
async fn breaker_opens_fails_fast_half_opens_and_closes() {
    let server = TestLlm::start().await;
    let llm =
        client().with_provider_resilience("openai", breaker_config(2, Duration::from_millis(300)));
    let target = Wire::OpenAi.target(&server);
    let request = || Wire::OpenAi.request("hi");

    server.push_all([Reply::error(500, "down"), Reply::error(500, "down")]);
    for _ in 0..2 {
        let error = llm.complete(&target, request()).await.expect_err("500");
        assert!(matches!(error, LlmError::Http { status: 500, .. }));
    }
    let status = status_of(&llm, "openai");
    assert_eq!(status.state, BreakerState::Open);
    assert_eq!(status.consecutive_failures, 2);
    assert!(status.opened_at.is_some());
    assert_eq!(status.retry_in_secs, Some(1));
    // Other providers are unaffected.
    assert_eq!(status_of(&llm, "anthropic").state, BreakerState::Closed);

    // Open: fails fast, nothing reaches the server, blocking and streaming alike.
    let error = llm.complete(&target, request()).await.expect_err("open");
    match &error {
        LlmError::CircuitOpen {
            provider, retry_in, ..
        } => {
            assert_eq!(provider, "openai");
            assert!(*retry_in <= Duration::from_millis(300));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        llm.stream(&target, request()).await.err(),
        Some(LlmError::CircuitOpen { .. })
    ));
    assert_eq!(server.request_count(), 2);

    // After the cooldown: half-open, one probe; success closes.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(status_of(&llm, "openai").state, BreakerState::HalfOpen);
    server.push(Reply::text("back"));
    let response = llm
        .complete(&target, request())
        .await
        .expect("probe succeeds");
    assert_eq!(response.text, "back");
    let status = status_of(&llm, "openai");
    assert_eq!(status.state, BreakerState::Closed);
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(status.opened_at, None);
}

#[tokio::test]
async fn a_failed_probe_reopens_and_reset_closes() {
    let server = TestLlm::start().await;
    let llm = client()
        .with_provider_resilience("anthropic", breaker_config(1, Duration::from_millis(100)));
    let target = Wire::Anthropic.target(&server);
    let request = || Wire::Anthropic.request("hi");

    server.push(Reply::error(529, "overloaded"));
    llm.complete(&target, request()).await.expect_err("529");
    assert_eq!(status_of(&llm, "anthropic").state, BreakerState::Open);

    tokio::time::sleep(Duration::from_millis(150)).await;
    server.push(Reply::error(503, "still down"));
    let error = llm
        .complete(&target, request())
        .await
        .expect_err("probe fails");
    assert!(matches!(error, LlmError::Http { status: 503, .. }));
    assert_eq!(status_of(&llm, "anthropic").state, BreakerState::Open);
    assert!(matches!(
        llm.complete(&target, request()).await,
        Err(LlmError::CircuitOpen { .. })
    ));

    llm.reset("anthropic").expect("known provider");
    let status = status_of(&llm, "anthropic");
    assert_eq!(status.state, BreakerState::Closed);
    assert_eq!(status.consecutive_failures, 0);
    llm.complete(&target, request())
        .await
        .expect("closed after reset");
    assert!(matches!(
        llm.reset("nope"),
        Err(LlmError::UnknownProvider { .. })
    ));
}

#[tokio::test]
async fn half_open_lets_only_one_probe_through_at_a_time() {
    let server = TestLlm::start().await;
    let llm = Arc::new(
        client().with_provider_resilience("gemini", breaker_config(1, Duration::from_millis(50))),
    );
    let target = Wire::Gemini.target(&server);

    server.push(Reply::error(500, "down"));
    llm.complete(&target, Wire::Gemini.request("hi"))
        .await
        .expect_err("500");
    tokio::time::sleep(Duration::from_millis(80)).await;

    server.push(Reply::text("slow probe").with_delay(Duration::from_millis(300)));
    let probe = tokio::spawn({
        let llm = Arc::clone(&llm);
        let target = target.clone();
        async move { llm.complete(&target, Wire::Gemini.request("probe")).await }
    });
    // Let the probe take the slot.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let error = llm
        .complete(&target, Wire::Gemini.request("second"))
        .await
        .expect_err("only one probe");
    assert!(matches!(error, LlmError::CircuitOpen { .. }), "{error}");
    let probed = probe.await.expect("join").expect("probe succeeds");
    assert_eq!(probed.text, "slow probe");
    assert_eq!(status_of(&llm, "gemini").state, BreakerState::Closed);
}

#[tokio::test]
async fn client_errors_do_not_open_the_breaker() {
    let server = TestLlm::start().await;
    let llm =
        client().with_provider_resilience("openai", breaker_config(2, Duration::from_secs(30)));
    let target = Wire::OpenAi.target(&server);
    server.push_all([
        Reply::error(400, "bad"),
        Reply::error(400, "bad"),
        Reply::error(404, "no"),
    ]);
    for _ in 0..3 {
        llm.complete(&target, Wire::OpenAi.request("hi"))
            .await
            .expect_err("4xx");
    }
    let status = status_of(&llm, "openai");
    assert_eq!(status.state, BreakerState::Closed);
    assert_eq!(status.consecutive_failures, 0);
}

#[tokio::test]
async fn a_stream_failing_mid_way_counts_as_a_failure() {
    let server = TestLlm::start().await;
    let llm =
        client().with_provider_resilience("openai", breaker_config(1, Duration::from_secs(30)));
    server.push(Reply::text("cut off here").in_chunks(3).truncated());
    let stream = llm
        .stream(&Wire::OpenAi.target(&server), Wire::OpenAi.request("hi"))
        .await
        .expect("stream starts");
    drain(stream).await;
    assert_eq!(status_of(&llm, "openai").state, BreakerState::Open);
}

#[tokio::test]
async fn status_lists_every_provider() {
    let llm = client();
    let statuses = llm.status();
    assert_eq!(statuses.len(), llm.providers().len());
    assert!(
        statuses
            .iter()
            .all(|s| s.state == BreakerState::Closed && s.retry_in_secs.is_none())
    );
    let json = serde_json::to_value(&statuses[0]).expect("serializable");
    assert_eq!(json["state"], "closed");
}
