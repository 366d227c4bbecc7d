//! The three drivers against the test server: answers, tool calls, usage,
//! stop reasons and errors. What each driver puts on the wire: `encoding.rs`.

mod common;

use common::{ALL, Wire, client, drain, events, word_count_tool};
use serde_json::json;
use talon_llm::{
    CompletionRequest, LlmError, ResponseFormat, StopReason, StreamEvent, ToolChoice, Usage,
    collect,
};
use talon_test_llm::{Api, Reply, TestLlm};

#[tokio::test]
async fn blocking_text_in_each_format() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push(Reply::text("Hello there").with_usage(12, 3));
        let response = client()
            .complete(&wire.target(&server), wire.request("Hi"))
            .await
            .unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        assert_eq!(response.text, "Hello there", "{wire:?}");
        assert!(response.tool_calls.is_empty(), "{wire:?}");
        assert_eq!(response.usage, Usage::new(12, 3), "{wire:?}");
        assert_eq!(response.stop_reason, StopReason::EndTurn, "{wire:?}");
        assert_eq!(response.model, wire.model(), "{wire:?}");

        let sent = server.last_request().expect("request recorded");
        assert!(!sent.stream, "{wire:?}");
        assert_eq!(sent.model.as_deref(), Some(wire.model()));
        match wire {
            Wire::OpenAi => {
                assert_eq!(sent.api, Api::OpenAi);
                assert_eq!(sent.path, "/v1/chat/completions");
            }
            Wire::Anthropic => {
                assert_eq!(sent.api, Api::Anthropic);
                assert_eq!(sent.path, "/v1/messages");
            }
            Wire::Gemini => {
                assert_eq!(sent.api, Api::Gemini);
                assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
            }
        }
    }
}

#[tokio::test]
async fn streamed_text_in_each_format() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push(
            Reply::text("one two three four")
                .in_chunks(4)
                .with_usage(7, 4),
        );
        let stream = client()
            .stream(&wire.target(&server), wire.request("Hi"))
            .await
            .unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        let events = events(stream).await;
        let deltas: Vec<&str> = events
            .iter()
            .filter_map(|event| match event {
                StreamEvent::TextDelta(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deltas.len(), 4, "{wire:?}: {events:?}");
        assert_eq!(deltas.concat(), "one two three four", "{wire:?}");
        // Usage then Done, last.
        let n = events.len();
        assert_eq!(
            events[n - 2],
            StreamEvent::Usage(Usage::new(7, 4)),
            "{wire:?}"
        );
        assert_eq!(
            events[n - 1],
            StreamEvent::Done {
                stop_reason: StopReason::EndTurn
            },
            "{wire:?}"
        );

        let sent = server.last_request().expect("request recorded");
        assert!(sent.stream, "{wire:?}");
        match wire {
            Wire::OpenAi => {
                assert_eq!(sent.body["stream"], true);
                assert_eq!(sent.body["stream_options"]["include_usage"], true);
            }
            Wire::Anthropic => assert_eq!(sent.body["stream"], true),
            Wire::Gemini => {
                assert_eq!(
                    sent.path,
                    "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
                );
                assert_eq!(sent.query.as_deref(), Some("alt=sse"));
            }
        }
    }
}

#[tokio::test]
async fn collect_folds_a_stream_into_the_blocking_answer() {
    for wire in ALL {
        let server = TestLlm::start().await;
        let reply = Reply::tool_call("word_count", r#"{"text":"a b c"}"#)
            .with_text("Counting.")
            .in_chunks(3)
            .with_usage(20, 9);
        server.push_all([reply.clone(), reply]);
        let target = wire.target(&server);
        let request = wire.request("count").with_tool(word_count_tool());
        let llm = client();
        let blocking = llm
            .complete(&target, request.clone())
            .await
            .expect("complete");
        let stream = llm.stream(&target, request).await.expect("stream");
        let streamed = collect(stream, wire.model()).await.expect("collect");
        assert_eq!(streamed.text, blocking.text, "{wire:?}");
        assert_eq!(streamed.usage, blocking.usage, "{wire:?}");
        assert_eq!(streamed.stop_reason, StopReason::ToolUse, "{wire:?}");
        assert_eq!(blocking.stop_reason, StopReason::ToolUse, "{wire:?}");
        assert_eq!(streamed.tool_calls.len(), 1);
        assert_eq!(streamed.tool_calls[0].name, blocking.tool_calls[0].name);
        assert_eq!(
            streamed.tool_calls[0].arguments, r#"{"text":"a b c"}"#,
            "{wire:?}"
        );
        assert_eq!(
            blocking.tool_calls[0].arguments, r#"{"text":"a b c"}"#,
            "{wire:?}"
        );
    }
}

#[tokio::test]
async fn single_tool_call_blocking_and_streamed() {
    for wire in ALL {
        for streamed in [false, true] {
            let server = TestLlm::start().await;
            server.push(Reply::tool_call("word_count", r#"{"text":"a b"}"#).in_chunks(5));
            let target = wire.target(&server);
            let request = wire.request("count 'a b'").with_tool(word_count_tool());
            let llm = client();
            let response = if streamed {
                collect(
                    llm.stream(&target, request).await.expect("stream"),
                    wire.model(),
                )
                .await
                .expect("collect")
            } else {
                llm.complete(&target, request).await.expect("complete")
            };
            let context = format!("{wire:?} streamed={streamed}");
            assert_eq!(response.stop_reason, StopReason::ToolUse, "{context}");
            assert_eq!(response.text, "", "{context}");
            assert_eq!(response.tool_calls.len(), 1, "{context}");
            let call = &response.tool_calls[0];
            assert_eq!(call.name, "word_count", "{context}");
            assert!(!call.id.is_empty(), "{context}");
            assert_eq!(
                call.parse_arguments().expect("valid JSON"),
                json!({"text": "a b"}),
                "{context}"
            );
        }
    }
}

#[tokio::test]
async fn parallel_tool_calls_with_fragmented_arguments_are_reassembled() {
    let calls = [
        ("word_count", r#"{"text":"the quick brown fox"}"#),
        ("word_count", r#"{"text":"jumps over"}"#),
        ("clock", "{}"),
    ];
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push(
            Reply::tool_calls(calls)
                .with_text("Let me check.")
                .in_chunks(4),
        );
        let stream = client()
            .stream(
                &wire.target(&server),
                wire.request("go").with_tool(word_count_tool()),
            )
            .await
            .expect("stream");
        let events = events(stream).await;
        if wire != Wire::Gemini {
            // Gemini sends calls whole; the others in fragments.
            let fragments = events
                .iter()
                .filter(|e| matches!(e, StreamEvent::ToolCallDelta { index: 0, .. }))
                .count();
            assert_eq!(fragments, 4, "{wire:?}: arguments must arrive in fragments");
        }
        let starts: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallStart { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(starts, vec![0, 1, 2], "{wire:?}");

        let mut builder = talon_llm::ResponseBuilder::new(wire.model());
        for event in events {
            builder.push(event).expect("consistent stream");
        }
        let response = builder.finish().expect("finished");
        assert_eq!(response.text, "Let me check.", "{wire:?}");
        assert_eq!(response.stop_reason, StopReason::ToolUse, "{wire:?}");
        let got: Vec<(&str, &str)> = response
            .tool_calls
            .iter()
            .map(|c| (c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(got, calls.to_vec(), "{wire:?}");
        let mut ids: Vec<&str> = response.tool_calls.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 3, "{wire:?}: ids must be distinct");
    }
}

#[tokio::test]
async fn malformed_tool_arguments_arrive_as_raw_text() {
    let malformed = r#"{"text": "unterminated"#;
    for wire in ALL {
        for streamed in [false, true] {
            let server = TestLlm::start().await;
            server.push(Reply::tool_call("word_count", malformed).in_chunks(3));
            let target = wire.target(&server);
            let request = wire.request("count").with_tool(word_count_tool());
            let llm = client();
            let response = if streamed {
                collect(
                    llm.stream(&target, request).await.expect("stream"),
                    wire.model(),
                )
                .await
                .expect("collect")
            } else {
                llm.complete(&target, request).await.expect("complete")
            };
            let call = &response.tool_calls[0];
            assert_eq!(call.arguments, malformed, "{wire:?} streamed={streamed}");
            assert!(call.parse_arguments().is_err());
        }
    }
}

#[tokio::test]
async fn max_tokens_stop_reason() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push(Reply::text("cut sh").max_tokens());
        server.push(Reply::text("cut sh").max_tokens());
        let target = wire.target(&server);
        let llm = client();
        let response = llm
            .complete(&target, wire.request("long"))
            .await
            .expect("complete");
        assert_eq!(response.stop_reason, StopReason::MaxTokens, "{wire:?}");
        let stream = llm
            .stream(&target, wire.request("long"))
            .await
            .expect("stream");
        let response = collect(stream, wire.model()).await.expect("collect");
        assert_eq!(response.stop_reason, StopReason::MaxTokens, "{wire:?}");
        assert_eq!(response.text, "cut sh");
    }
}

#[tokio::test]
async fn a_cut_stream_is_an_error_not_a_short_answer() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push(Reply::text("partial answer here").in_chunks(3).truncated());
        let stream = client()
            .stream(&wire.target(&server), wire.request("Hi"))
            .await
            .expect("stream starts");
        let items = drain(stream).await;
        let (last, before) = items.split_last().expect("items");
        assert!(
            matches!(last, Err(LlmError::Stream { .. })),
            "{wire:?}: expected a stream error, got {last:?}"
        );
        assert!(
            before
                .iter()
                .all(|item| matches!(item, Ok(StreamEvent::TextDelta(_))))
        );
        assert!(
            !before.is_empty(),
            "{wire:?}: the text before the cut is delivered"
        );
    }
}

#[tokio::test]
async fn provider_error_messages_are_extracted() {
    for wire in ALL {
        let server = TestLlm::start().await;
        server.push(Reply::error(404, "The model does not exist"));
        let error = client()
            .complete(&wire.target(&server), wire.request("hi"))
            .await
            .expect_err("404");
        match &error {
            LlmError::Http {
                provider,
                status,
                message,
            } => {
                assert_eq!(provider, wire.provider());
                assert_eq!(*status, 404);
                assert_eq!(message, "The model does not exist", "{wire:?}");
            }
            other => panic!("{wire:?}: unexpected {other:?}"),
        }
        assert!(!error.is_retryable());
        assert_eq!(server.request_count(), 1, "{wire:?}: a 404 is not retried");
    }
}

#[tokio::test]
async fn a_wrong_key_is_a_clear_http_error() {
    let server = TestLlm::start().await;
    server.require_api_key(Some("the-right-key"));
    let error = client()
        .complete(&Wire::OpenAi.target(&server), Wire::OpenAi.request("hi"))
        .await
        .expect_err("wrong key");
    assert!(
        matches!(&error, LlmError::Http { status: 401, message, .. } if message == "Incorrect API key provided."),
        "{error:?}"
    );
}

#[tokio::test]
async fn echo_mode_answers_without_a_script() {
    let server = TestLlm::start().await;
    for wire in ALL {
        let response = client()
            .complete(&wire.target(&server), wire.request("anything"))
            .await
            .expect("complete");
        assert_eq!(response.text, talon_test_llm::DEFAULT_REPLY);
    }
    assert_eq!(server.request_count(), 3);
}

/// A request using every option the OpenAI-compatible API forwards.
fn request_with_options(wire: Wire, choice: ToolChoice) -> CompletionRequest {
    wire.request("count")
        .with_tool(word_count_tool())
        .with_tool_choice(choice)
        .with_response_format(ResponseFormat::JsonSchema {
            name: "count".into(),
            description: None,
            schema: json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
            strict: Some(true),
        })
        .with_stop("END")
        .with_stop("STOP")
        .with_seed(42)
        .with_user("user-7")
}

#[tokio::test]
async fn tool_choice_response_format_stop_seed_and_user_reach_each_format() {
    let server = TestLlm::start().await;
    let llm = client();
    let choices = [
        ToolChoice::Auto,
        ToolChoice::None,
        ToolChoice::Required,
        ToolChoice::Tool("word_count".into()),
    ];
    for wire in ALL {
        for choice in choices.clone() {
            llm.complete(
                &wire.target(&server),
                request_with_options(wire, choice.clone()),
            )
            .await
            .expect("complete");
            let body = server.last_request().expect("recorded").body;
            match wire {
                Wire::OpenAi => {
                    let expected = match &choice {
                        ToolChoice::Auto => json!("auto"),
                        ToolChoice::None => json!("none"),
                        ToolChoice::Required => json!("required"),
                        ToolChoice::Tool(name) => {
                            json!({"type": "function", "function": {"name": name}})
                        }
                    };
                    assert_eq!(body["tool_choice"], expected);
                    assert_eq!(
                        body["response_format"],
                        json!({"type": "json_schema", "json_schema": {
                            "name": "count",
                            "schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
                            "strict": true,
                        }})
                    );
                    assert_eq!(body["stop"], json!(["END", "STOP"]));
                    assert_eq!(body["seed"], 42);
                    assert_eq!(body["user"], "user-7");
                }
                Wire::Anthropic => {
                    let expected = match &choice {
                        ToolChoice::Auto => json!({"type": "auto"}),
                        ToolChoice::None => json!({"type": "none"}),
                        ToolChoice::Required => json!({"type": "any"}),
                        ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
                    };
                    assert_eq!(body["tool_choice"], expected);
                    assert_eq!(body["stop_sequences"], json!(["END", "STOP"]));
                    assert_eq!(body["metadata"], json!({"user_id": "user-7"}));
                    // No JSON mode and no seed in the Messages API.
                    let system = body["system"].as_str().expect("system prompt");
                    assert!(system.contains("single JSON object"), "{system}");
                    assert!(system.contains(r#""integer""#), "{system}");
                    assert!(body.get("seed").is_none() && body.get("response_format").is_none());
                }
                Wire::Gemini => {
                    let expected = match &choice {
                        ToolChoice::Auto => json!({"mode": "AUTO"}),
                        ToolChoice::None => json!({"mode": "NONE"}),
                        ToolChoice::Required => json!({"mode": "ANY"}),
                        ToolChoice::Tool(name) => {
                            json!({"mode": "ANY", "allowedFunctionNames": [name]})
                        }
                    };
                    assert_eq!(
                        body["toolConfig"],
                        json!({"functionCallingConfig": expected})
                    );
                    let generation = &body["generationConfig"];
                    assert_eq!(generation["stopSequences"], json!(["END", "STOP"]));
                    assert_eq!(generation["seed"], 42);
                    assert_eq!(generation["responseMimeType"], "application/json");
                    assert_eq!(
                        generation["responseJsonSchema"],
                        json!({"type": "object", "properties": {"n": {"type": "integer"}}})
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn without_options_nothing_extra_is_sent() {
    let server = TestLlm::start().await;
    let llm = client();
    for wire in ALL {
        llm.complete(&wire.target(&server), wire.request("hi"))
            .await
            .expect("complete");
        let body = server.last_request().expect("recorded").body;
        for key in [
            "tool_choice",
            "response_format",
            "stop",
            "stop_sequences",
            "seed",
            "user",
            "metadata",
            "toolConfig",
            "system",
        ] {
            assert!(body.get(key).is_none(), "{wire:?} sent {key}: {body}");
        }
        if wire == Wire::Gemini {
            assert_eq!(body["generationConfig"], json!({"maxOutputTokens": 4096}));
        }
    }
}

#[tokio::test]
async fn a_json_object_answer_is_asked_for_in_each_format() {
    let server = TestLlm::start().await;
    let llm = client();
    for wire in ALL {
        let request = wire
            .request("hi")
            .with_response_format(ResponseFormat::JsonObject);
        llm.complete(&wire.target(&server), request)
            .await
            .expect("complete");
        let body = server.last_request().expect("recorded").body;
        match wire {
            Wire::OpenAi => assert_eq!(body["response_format"], json!({"type": "json_object"})),
            Wire::Anthropic => assert!(
                body["system"]
                    .as_str()
                    .expect("system")
                    .contains("JSON object"),
                "{body}"
            ),
            Wire::Gemini => {
                assert_eq!(
                    body["generationConfig"]["responseMimeType"],
                    "application/json"
                );
                assert!(body["generationConfig"].get("responseJsonSchema").is_none());
            }
        }
    }
}
