//! Reading OpenAI chat requests: every message and tool shape the official
//! client sends, and the mistakes answered with a 400.

use super::*;
use serde_json::json;

fn parse(body: Value) -> Result<ChatRequest, ChatError> {
    parse_request(body.to_string().as_bytes())
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
    }})
}

#[test]
fn a_function_calling_round_trip_is_read() {
    let request = parse(json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "tools": [weather_tool()],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {"type": "json_object"},
        "stop": "END",
        "seed": 7,
        "user": "u1",
        "max_completion_tokens": 100,
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1__sig__c2ln", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
            }]},
            {"role": "tool", "tool_call_id": "call_1__sig__c2ln", "content": "sunny"},
        ]
    }))
    .expect("valid");
    assert!(request.stream);
    assert_eq!(request.n, 1);
    let completion = request.completion;
    assert_eq!(completion.system.as_deref(), Some("Be brief."));
    assert_eq!(completion.tools.len(), 1);
    assert_eq!(completion.tools[0].name, "get_weather");
    assert_eq!(
        completion.tool_choice,
        Some(ToolChoice::Tool("get_weather".into()))
    );
    assert_eq!(completion.response_format, Some(ResponseFormat::JsonObject));
    assert_eq!(completion.stop, vec!["END".to_string()]);
    assert_eq!(
        (completion.seed, completion.user.as_deref()),
        (Some(7), Some("u1"))
    );
    assert_eq!(completion.max_tokens, 100);
    let mut call = ToolCall::new("call_1", "get_weather", "{\"city\":\"Paris\"}");
    call.signature = Some("c2ln".into());
    assert_eq!(
        completion.messages,
        vec![
            Message::user("Weather in Paris?"),
            Message::assistant_tool_calls("", vec![call]),
            Message::tool_result("call_1", "sunny"),
        ]
        .into_iter()
        .map(std::sync::Arc::new)
        .collect::<Vec<_>>()
    );
}

#[test]
fn malformed_tools_name_the_parameter() {
    let cases = [
        (
            json!([{"type": "function"}]),
            "tools[0].function",
            "missing_required_parameter",
        ),
        (
            json!([{"function": {"name": "f"}}]),
            "tools[0].type",
            "missing_required_parameter",
        ),
        (
            json!([{"type": "retrieval", "function": {"name": "f"}}]),
            "tools[0].type",
            "invalid_value",
        ),
        (
            json!([{"type": "function", "function": {"name": "no spaces"}}]),
            "tools[0].function.name",
            "invalid_value",
        ),
        (
            json!([{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
            "tools[0].function.parameters",
            "invalid_type",
        ),
        (
            json!([weather_tool(), weather_tool()]),
            "tools[1].function.name",
            "invalid_value",
        ),
        (json!({"name": "f"}), "tools", "invalid_type"),
    ];
    for (tools, param, code) in cases {
        let error = parse(json!({"model": "m", "tools": tools,
            "messages": [{"role": "user", "content": "x"}]}))
        .expect_err("refused");
        assert_eq!(
            (error.param(), error.code()),
            (Some(param), code),
            "{error}"
        );
    }
}

#[test]
fn tool_choice_must_be_known() {
    let base = |choice: Value, tools: Value| {
        parse(json!({"model": "m", "tools": tools, "tool_choice": choice,
            "messages": [{"role": "user", "content": "x"}]}))
    };
    let error = base(json!("sometimes"), json!([weather_tool()])).expect_err("refused");
    assert_eq!(
        (error.param(), error.code()),
        (Some("tool_choice"), "invalid_value")
    );
    let error = base(
        json!({"type": "function", "function": {"name": "nope"}}),
        json!([weather_tool()]),
    )
    .expect_err("refused");
    assert_eq!(error.param(), Some("tool_choice.function.name"));
    let error = base(json!("required"), Value::Null).expect_err("refused");
    assert_eq!(error.param(), Some("tool_choice"));
    let none = base(json!("none"), Value::Null).expect("no tools, nothing to refuse");
    assert_eq!(none.completion.tool_choice, None);
    for (choice, expected) in [
        ("auto", ToolChoice::Auto),
        ("none", ToolChoice::None),
        ("required", ToolChoice::Required),
    ] {
        let request = base(json!(choice), json!([weather_tool()])).expect("valid");
        assert_eq!(request.completion.tool_choice, Some(expected));
    }
}

#[test]
fn tool_messages_must_answer_a_preceding_call() {
    let call = json!({"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"}}]});
    let with = |messages: Value| parse(json!({"model": "m", "messages": messages}));
    let error = with(json!([
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "call_9", "content": "r"},
    ]))
    .expect_err("orphan");
    assert_eq!(
        (error.param(), error.code()),
        (Some("messages[1].tool_call_id"), "invalid_tool_call_id")
    );
    let error = with(json!([
        {"role": "user", "content": "x"}, call,
        {"role": "tool", "tool_call_id": "call_2", "content": "r"},
    ]))
    .expect_err("wrong id");
    assert_eq!(error.param(), Some("messages[2].tool_call_id"));
    let error = with(json!([
        {"role": "user", "content": "x"}, call,
        {"role": "tool", "tool_call_id": "call_1", "content": "r"},
        {"role": "tool", "tool_call_id": "call_1", "content": "again"},
    ]))
    .expect_err("answered twice");
    assert_eq!(error.param(), Some("messages[3].tool_call_id"));
    let error =
        with(json!([{"role": "user", "content": "x"}, call, {"role": "user", "content": "y"}]))
            .expect_err("unanswered");
    assert_eq!(
        (error.param(), error.code()),
        (Some("messages[1]"), "missing_tool_results")
    );
    assert!(error.to_string().contains("call_1"), "{error}");
    let error = with(json!([{"role": "user", "content": "x"},
        {"role": "tool", "content": "r"}]))
    .expect_err("no id");
    assert_eq!(error.param(), Some("messages[1].tool_call_id"));
}

#[test]
fn other_fields_are_checked() {
    let with = |extra: Value| {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        parse(body)
    };
    for (extra, param) in [
        (json!({"n": 0}), "n"),
        (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
        (json!({"stop": 5}), "stop"),
        (json!({"seed": "x"}), "seed"),
        (json!({"user": 1}), "user"),
        (
            json!({"response_format": {"type": "xml"}}),
            "response_format.type",
        ),
        (
            json!({"response_format": {"type": "json_schema"}}),
            "response_format.json_schema",
        ),
        (json!({"temperature": "hot"}), "temperature"),
        (json!({"stream": "yes"}), "stream"),
    ] {
        let error = with(extra.clone()).expect_err("refused");
        assert_eq!(error.param(), Some(param), "{extra}: {error}");
    }
    let request = with(json!({"n": 3, "stop": ["a", "b"], "response_format": {
        "type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}
    }, "parallel_tool_calls": true, "logprobs": false}))
    .expect("valid");
    assert_eq!(request.n, 3);
    assert_eq!(
        request.completion.stop,
        vec!["a".to_string(), "b".to_string()]
    );
    assert!(matches!(
        request.completion.response_format,
        Some(ResponseFormat::JsonSchema { ref name, strict: Some(true), .. }) if name == "out"
    ));
    assert!(matches!(
        parse_request(b"{\"model\": "),
        Err(ChatError::Body(_))
    ));
    assert_eq!(
        parse(json!({"messages": []}))
            .expect_err("no model")
            .param(),
        Some("model")
    );
    assert_eq!(
        parse(json!({"model": "m", "messages": []}))
            .expect_err("empty")
            .param(),
        Some("messages")
    );
}
