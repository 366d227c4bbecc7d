//! What each driver puts on the wire: system prompts, tools, tool results,
//! images, request options and Gemini's thought signatures, checked in the
//! test server's record of each request.

mod common;

use common::{ALL, KEY, Wire, client, word_count_tool};
use serde_json::json;
use talon_llm::{CompletionRequest, LlmError, Message, ToolCall, collect};
use talon_test_llm::{Reply, TestLlm};

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

    request.messages.push(response.to_message().into());
    for call in &response.tool_calls {
        request
            .messages
            .push(Message::tool_result(call.id.clone(), "1").into());
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
