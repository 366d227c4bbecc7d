//! The three drivers against the test server: answers, tool calls, usage,
//! stop reasons, and what each driver puts on the wire.

mod common;

use common::{ALL, KEY, Wire, client, drain, events, word_count_tool};
use serde_json::json;
use talon_llm::{
    CompletionRequest, LlmError, Message, ResponseFormat, StopReason, StreamEvent, ToolCall,
    ToolChoice, Usage, collect,
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

/// A conversation with a system prompt, parallel tool calls, a success and
/// a failure result, then more user text.
fn tool_conversation(wire: Wire) -> CompletionRequest {
    CompletionRequest::new(wire.model())
        .with_system("Be brief.")
        .with_tool(word_count_tool())
        .with_max_tokens(256)
        .with_temperature(0.2)
        .with_messages([
            Message::user("Count the words of 'a b' and 'c'."),
            Message::assistant_tool_calls(
                "Let me count.",
                vec![
                    ToolCall::new("call_1", "word_count", r#"{"text":"a b"}"#),
                    ToolCall::new("call_2", "word_count", r#"{"text":"c"}"#),
                ],
            ),
            Message::tool_result("call_1", "2"),
            Message::tool_error("call_2", "boom"),
            Message::user("Thanks."),
        ])
}

#[tokio::test]
async fn openai_encodes_system_tools_and_tool_results() {
    let server = TestLlm::start().await;
    let llm = client();
    llm.complete(
        &Wire::OpenAi.target(&server),
        tool_conversation(Wire::OpenAi),
    )
    .await
    .expect("complete");
    let sent = server.last_request().expect("recorded");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body = &sent.body;
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Count the words of 'a b' and 'c'."},
            {"role": "assistant", "content": "Let me count.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "word_count", "arguments": "{\"text\":\"a b\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "word_count", "arguments": "{\"text\":\"c\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "2"},
            {"role": "tool", "tool_call_id": "call_2", "content": "Error: boom"},
            {"role": "user", "content": "Thanks."},
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {
            "name": "word_count",
            "description": "Counts the words of a text",
            "parameters": word_count_tool().parameters,
        }}])
    );
    assert_eq!(body["tool_choice"], "auto");
    // OpenAI itself gets max_completion_tokens (its reasoning models reject max_tokens).
    assert_eq!(body["max_completion_tokens"], 256);
    assert!(body.get("max_tokens").is_none());
    assert_eq!(body["temperature"].to_string(), "0.2");
    assert_eq!(body["stream"], false);
}

#[tokio::test]
async fn other_openai_compatible_providers_get_max_tokens() {
    let server = TestLlm::start().await;
    let target = talon_llm::Target::new("groq")
        .with_api_key(KEY)
        .with_base_url(server.openai_url());
    client()
        .complete(
            &target,
            CompletionRequest::new("llama-3.3-70b-versatile").with_message(Message::user("hi")),
        )
        .await
        .expect("complete");
    let body = server.last_request().expect("recorded").body;
    assert_eq!(body["max_tokens"], CompletionRequest::DEFAULT_MAX_TOKENS);
    assert!(body.get("max_completion_tokens").is_none());
    // No temperature was set, so none is sent.
    assert!(body.get("temperature").is_none());
    assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
}

#[tokio::test]
async fn anthropic_encodes_system_tools_and_tool_results() {
    let server = TestLlm::start().await;
    client()
        .complete(
            &Wire::Anthropic.target(&server),
            tool_conversation(Wire::Anthropic),
        )
        .await
        .expect("complete");
    let sent = server.last_request().expect("recorded");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    let body = &sent.body;
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Count the words of 'a b' and 'c'."}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me count."},
                {"type": "tool_use", "id": "call_1", "name": "word_count", "input": {"text": "a b"}},
                {"type": "tool_use", "id": "call_2", "name": "word_count", "input": {"text": "c"}},
            ]},
            // Both results in one user turn, first, then the user's text.
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "2"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "boom", "is_error": true},
                {"type": "text", "text": "Thanks."},
            ]},
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{
            "name": "word_count",
            "description": "Counts the words of a text",
            "input_schema": word_count_tool().parameters,
        }])
    );
    assert!(body.get("stream").is_none());
}

#[tokio::test]
async fn gemini_encodes_system_tools_and_tool_results() {
    let server = TestLlm::start().await;
    client()
        .complete(
            &Wire::Gemini.target(&server),
            tool_conversation(Wire::Gemini),
        )
        .await
        .expect("complete");
    let sent = server.last_request().expect("recorded");
    assert_eq!(sent.header("x-goog-api-key"), Some(KEY));
    // The key is never put in the URL.
    assert_eq!(sent.query, None);
    let body = &sent.body;
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        body["generationConfig"],
        json!({"maxOutputTokens": 256, "temperature": 0.2})
    );
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Count the words of 'a b' and 'c'."}]},
            {"role": "model", "parts": [
                {"text": "Let me count."},
                {"functionCall": {"name": "word_count", "args": {"text": "a b"}}},
                {"functionCall": {"name": "word_count", "args": {"text": "c"}}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "word_count", "response": {"output": "2"}}},
                {"functionResponse": {"name": "word_count", "response": {"error": "boom"}}},
                {"text": "Thanks."},
            ]},
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [{
            "name": "word_count",
            "description": "Counts the words of a text",
            "parametersJsonSchema": word_count_tool().parameters,
        }]}])
    );
}

#[tokio::test]
async fn malformed_arguments_in_history_stay_valid_requests() {
    // Anthropic and Gemini need arguments as JSON objects in the history.
    for wire in [Wire::Anthropic, Wire::Gemini] {
        let server = TestLlm::start().await;
        let request = CompletionRequest::new(wire.model()).with_messages([
            Message::user("go"),
            Message::assistant_tool_calls(
                "",
                vec![ToolCall::new("c1", "word_count", r#"{"text": "#)],
            ),
            Message::tool_error("c1", "invalid JSON arguments"),
        ]);
        client()
            .complete(&wire.target(&server), request)
            .await
            .unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        let body = server.last_request().expect("recorded").body;
        let raw = json!({"_raw_arguments": "{\"text\": "});
        match wire {
            Wire::Anthropic => assert_eq!(body["messages"][1]["content"][0]["input"], raw),
            _ => assert_eq!(body["contents"][1]["parts"][0]["functionCall"]["args"], raw),
        }
    }
}

#[tokio::test]
async fn images_are_encoded_per_format() {
    for wire in ALL {
        let server = TestLlm::start().await;
        let request = CompletionRequest::new(wire.model())
            .with_message(Message::user("What is this?").with_image("image/png", "iVBORw0KGgo="));
        client()
            .complete(&wire.target(&server), request)
            .await
            .unwrap_or_else(|e| panic!("{wire:?}: {e}"));
        let body = server.last_request().expect("recorded").body;
        match wire {
            Wire::OpenAi => assert_eq!(
                body["messages"][0]["content"],
                json!([
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ])
            ),
            Wire::Anthropic => assert_eq!(
                body["messages"][0]["content"][1],
                json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
            ),
            Wire::Gemini => assert_eq!(
                body["contents"][0]["parts"][1],
                json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
            ),
        }
    }
}

#[tokio::test]
async fn gemini_thought_signatures_are_kept_and_sent_back() {
    let server = TestLlm::start().await;
    server.push(
        Reply::tool_calls([
            ("word_count", r#"{"text":"a"}"#),
            ("word_count", r#"{"text":"b"}"#),
        ])
        .with_thought_signature("c2lnbmF0dXJl"),
    );
    let target = Wire::Gemini.target(&server);
    let llm = client();
    let mut request = Wire::Gemini.request("count").with_tool(word_count_tool());
    let response = llm
        .complete(&target, request.clone())
        .await
        .expect("complete");
    assert_eq!(
        response.tool_calls[0].signature.as_deref(),
        Some("c2lnbmF0dXJl")
    );
    assert_eq!(response.tool_calls[1].signature, None);
    // Synthesized ids: present, distinct.
    assert_ne!(response.tool_calls[0].id, response.tool_calls[1].id);

    request.messages.push(response.to_message());
    for call in &response.tool_calls {
        request
            .messages
            .push(Message::tool_result(call.id.clone(), "1"));
    }
    llm.complete(&target, request).await.expect("second turn");
    let body = server.last_request().expect("recorded").body;
    let parts = &body["contents"][1]["parts"];
    assert_eq!(parts[0]["thoughtSignature"], "c2lnbmF0dXJl");
    assert!(parts[1].get("thoughtSignature").is_none());
    assert_eq!(
        body["contents"][2]["parts"][1]["functionResponse"]["name"],
        "word_count"
    );
}

#[tokio::test]
async fn gemini_streams_signatures_too() {
    let server = TestLlm::start().await;
    server.push(Reply::tool_call("word_count", r#"{"text":"a"}"#).with_thought_signature("sig"));
    let stream = client()
        .stream(&Wire::Gemini.target(&server), Wire::Gemini.request("count"))
        .await
        .expect("stream");
    let response = collect(stream, "gemini-2.5-flash").await.expect("collect");
    assert_eq!(response.tool_calls[0].signature.as_deref(), Some("sig"));
}

#[tokio::test]
async fn gemini_refuses_a_result_for_an_unknown_call_without_sending() {
    let server = TestLlm::start().await;
    let request = CompletionRequest::new("gemini-2.5-flash")
        .with_messages([Message::user("hi"), Message::tool_result("nowhere", "1")]);
    let error = client()
        .complete(&Wire::Gemini.target(&server), request)
        .await
        .expect_err("no call to answer");
    assert!(matches!(error, LlmError::InvalidRequest { .. }), "{error}");
    assert!(error.to_string().contains("nowhere"));
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn gemini_refuses_model_names_that_would_change_the_url() {
    let server = TestLlm::start().await;
    let request =
        CompletionRequest::new("x:generateContent?key=1#").with_message(Message::user("hi"));
    let error = client()
        .complete(&Wire::Gemini.target(&server), request)
        .await
        .expect_err("bad model");
    assert!(matches!(error, LlmError::InvalidRequest { .. }), "{error}");
    assert_eq!(server.request_count(), 0);
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
