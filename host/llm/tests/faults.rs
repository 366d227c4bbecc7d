//! Providers that misbehave in time: the call deadline across attempts,
//! timeouts not retried, the cap on streamed output, the idle timeout of a
//! stalled stream, and breakers kept per endpoint. No assertion is on
//! elapsed time: limits are short, and the outcomes (which error, how many
//! requests reached the server, whether the connection was closed) are
//! what is checked.

mod common;

use std::time::Duration;

use common::{ALL, Wire, client_with, drain, fast};
use talon_llm::{
    BreakerState, CompletionRequest, LlmError, Message, ResilienceConfig, StreamEvent, Target,
    TimeoutPhase,
};
use talon_test_llm::{Reply, TestLlm};

fn with_deadline(deadline: Duration) -> ResilienceConfig {
    let mut config = fast();
    config.timeouts.call_deadline = deadline;
    config
}

/// Waits (generously) until the server has seen `n` misbehaving answers
/// abandoned, i.e. the client closed their connections.
async fn wait_abandoned(server: &TestLlm, n: u64) {
    for _ in 0..1000 {
        if server.abandoned() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the client never closed the connection ({} of {n} abandoned)",
        server.abandoned()
    );
}

#[tokio::test]
async fn a_hanging_provider_fails_at_the_deadline_once_not_per_attempt() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push_all([Reply::hang(), Reply::hang(), Reply::hang()]);
        // Each attempt would be allowed 10 s; the whole call 300 ms.
        let llm = client_with(with_deadline(Duration::from_millis(300)));
        let error = llm
            .complete(&wire.target(&server), wire.request("hi"))
            .await
            .expect_err("deadline");
        match &error {
            LlmError::Deadline { provider, limit } => {
                assert_eq!(provider, wire.provider(), "{wire:?}");
                assert_eq!(*limit, Duration::from_millis(300));
            }
            other => panic!("{wire:?}: expected the deadline, got {other:?}"),
        }
        assert!(
            error.to_string().contains("call deadline of 0.3s"),
            "{error}"
        );
        assert_eq!(
            server.request_count(),
            1,
            "{wire:?}: a deadline is not retried"
        );
        wait_abandoned(&server, 1).await;

        // Streamed: the same, before any event.
        let error = llm
            .stream(&wire.target(&server), wire.request("hi"))
            .await
            .err()
            .expect("deadline");
        assert!(
            matches!(error, LlmError::Deadline { .. }),
            "{wire:?}: {error:?}"
        );
        assert_eq!(server.request_count(), 2, "{wire:?}");
    }
}

#[tokio::test]
async fn a_timed_out_attempt_is_not_retried() {
    let server = TestLlm::start().await;
    server.push_all([Reply::hang(), Reply::text("never asked for")]);
    let mut config = with_deadline(Duration::from_secs(30));
    config.timeouts.request = Duration::from_millis(100);
    let error = client_with(config)
        .complete(&Wire::OpenAi.target(&server), Wire::OpenAi.request("hi"))
        .await
        .expect_err("timeout");
    assert!(
        matches!(
            &error,
            LlmError::Timeout { provider, phase: TimeoutPhase::Request, .. } if provider == "openai"
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with("openai timed out after 0.1s"),
        "{error}"
    );
    assert_eq!(server.request_count(), 1);
    assert_eq!(server.pending(), 1);
}

#[tokio::test]
async fn a_retry_that_cannot_start_before_the_deadline_is_not_made() {
    let server = TestLlm::start().await;
    server.push_all([Reply::error(500, "down"), Reply::text("too late")]);
    let mut config = with_deadline(Duration::from_secs(2));
    // The backoff alone (at least 5 s) is past the deadline.
    config.retry.base_delay = Duration::from_secs(10);
    config.retry.max_delay = Duration::from_secs(10);
    let error = client_with(config)
        .complete(&Wire::OpenAi.target(&server), Wire::OpenAi.request("hi"))
        .await
        .expect_err("500");
    // The real error, not a deadline that only the sleep ran into.
    assert!(
        matches!(error, LlmError::Http { status: 500, .. }),
        "{error:?}"
    );
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn an_endless_stream_is_cut_at_the_output_cap_and_its_connection_closed() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push(Reply::endless("all work and no play "));
        let llm = client_with(fast());
        let request = wire.request("hi").with_max_tokens(16);
        let stream = llm
            .stream(&wire.target(&server), request)
            .await
            .unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        let items = drain(stream).await;
        let text: usize = items
            .iter()
            .map(|item| match item {
                Ok(StreamEvent::TextDelta(text)) => text.len(),
                _ => 0,
            })
            .sum();
        assert!(
            text > 0 && text <= 16 * 32,
            "{wire:?}: {text} bytes passed on"
        );
        match items.last() {
            Some(Err(LlmError::OutputTooLarge {
                provider,
                limit_bytes,
                max_tokens,
            })) => {
                assert_eq!(provider, wire.provider(), "{wire:?}");
                assert_eq!(*limit_bytes, 512);
                assert_eq!(*max_tokens, 16);
            }
            other => panic!("{wire:?}: expected the cap, got {other:?}"),
        }
        wait_abandoned(&server, 1).await;
    }
}

#[tokio::test]
async fn a_stalled_stream_ends_at_the_idle_timeout_or_the_deadline() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push_all([Reply::stall("Let me think"), Reply::stall("Let me think")]);
        let mut config = fast();
        config.timeouts.stream_idle = Duration::from_millis(200);
        let llm = client_with(config);
        let stream = llm
            .stream(&wire.target(&server), wire.request("hi"))
            .await
            .unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        let items = drain(stream).await;
        assert!(
            matches!(items.first(), Some(Ok(StreamEvent::TextDelta(t))) if t == "Let me think"),
            "{wire:?}: {items:?}"
        );
        match items.last() {
            Some(Err(
                error @ LlmError::Timeout {
                    phase: TimeoutPhase::StreamIdle,
                    ..
                },
            )) => assert!(
                error
                    .to_string()
                    .contains("waiting for the next piece of the stream"),
                "{error}"
            ),
            other => panic!("{wire:?}: expected an idle timeout, got {other:?}"),
        }
        wait_abandoned(&server, 1).await;

        // An idle limit longer than what is left of the deadline: the deadline ends it.
        let mut config = with_deadline(Duration::from_millis(300));
        config.timeouts.stream_idle = Duration::from_secs(30);
        let stream = client_with(config)
            .stream(&wire.target(&server), wire.request("hi"))
            .await
            .unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        let items = drain(stream).await;
        assert!(
            matches!(items.last(), Some(Err(LlmError::Deadline { .. }))),
            "{wire:?}: {items:?}"
        );
        wait_abandoned(&server, 2).await;
    }
}

#[tokio::test]
async fn a_broken_endpoint_opens_its_own_breaker_only() {
    let server = TestLlm::start().await;
    let mut config = fast();
    config.retry.max_attempts = 1;
    config.breaker.failure_threshold = 1;
    let llm = client_with(config);
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let broken = Target::new("ollama").with_base_url(format!("http://127.0.0.1:{port}/v1"));
    let working = Target::new("ollama").with_base_url(server.openai_url());
    let request = || CompletionRequest::new("llama3.2").with_message(Message::user("hi"));

    let error = llm.complete(&broken, request()).await.expect_err("refused");
    assert!(matches!(error, LlmError::Connect { .. }), "{error:?}");
    let error = llm.complete(&broken, request()).await.expect_err("open");
    match &error {
        LlmError::CircuitOpen {
            provider, endpoint, ..
        } => {
            assert_eq!(provider, "ollama");
            assert_eq!(endpoint, &format!("http://127.0.0.1:{port}/v1"));
        }
        other => panic!("expected the breaker, got {other:?}"),
    }

    // The same provider name at a working URL still answers.
    server.push(Reply::text("still here"));
    let answer = llm.complete(&working, request()).await.expect("answers");
    assert_eq!(answer.text, "still here");

    let ollama: Vec<_> = llm
        .status()
        .into_iter()
        .filter(|s| s.provider == "ollama")
        .collect();
    assert_eq!(ollama.len(), 2, "{ollama:?}");
    for status in &ollama {
        let expected = if status.endpoint.as_deref() == Some(server.openai_url().as_str()) {
            BreakerState::Closed
        } else {
            BreakerState::Open
        };
        assert_eq!(status.state, expected, "{status:?}");
    }
}
