//! Function calling through the OpenAI-compatible `/v1` API, end to end:
//! the official `openai` Python client talks to the real daemon, whose
//! catalog models (`gpt-4o-mini`, `claude-haiku-4-5-...`, `gemini-2.5-flash`)
//! are served by `talon-test-llm` in each provider's own wire format. The
//! test server refuses tools and tool results that are not in its format's
//! real shape, and the tests read what it received.

use serde_json::{Value, json};
use talon_test_llm::{Api, RecordedRequest, Reply, TestLlm};

use crate::harness::{Daemon, json};

/// The key the providers are given (the test server does not check it).
const PROVIDER_KEY: &str = "test-provider-key";

/// The answer after the tool result.
const FINAL_ANSWER: &str = "It is 18 C and sunny in Paris.";

/// The tool result the client sends back.
const TOOL_RESULT: &str = "18 C and sunny";

/// Gemini's thought signature on the scripted call, which must come back.
const SIGNATURE: &str = "c2lnbmF0dXJlLWdlbWluaQ==";

/// A catalog model per wire format.
const MODELS: [(Api, &str); 3] = [
    (Api::OpenAi, "gpt-4o-mini"),
    (Api::Anthropic, "claude-haiku-4-5-20251001"),
    (Api::Gemini, "gemini-2.5-flash"),
];

/// The official client's interpreter: scripts/test installs it and sets
/// `TALON_OPENAI_PYTHON`; these tests are about that client, so they
/// cannot run without it.
fn python() -> String {
    std::env::var("TALON_OPENAI_PYTHON").unwrap_or_else(|_| {
        panic!("TALON_OPENAI_PYTHON is not set: run scripts/test, which installs the openai client")
    })
}

/// Runs `script` with the official client; `env` is passed to it. Returns
/// the last line it printed.
fn run_python(script: &str, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(python())
        .args(["-c", script])
        .envs(env.iter().copied())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "openai client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_string()
}

/// A daemon whose openai, anthropic and gemini providers are `llm`.
async fn daemon_with_providers(llm: &TestLlm, config: &str) -> Daemon {
    let daemon = Daemon::start_with_env(
        config,
        &[
            ("OPENAI_API_KEY", PROVIDER_KEY),
            ("ANTHROPIC_API_KEY", PROVIDER_KEY),
            ("GEMINI_API_KEY", PROVIDER_KEY),
        ],
    )
    .await;
    for (provider, url) in [
        ("openai", llm.openai_url()),
        ("anthropic", llm.anthropic_url()),
        ("gemini", llm.gemini_url()),
    ] {
        let set = daemon
            .put(
                &format!("/api/providers/{provider}/url"),
                json!({ "base_url": url }),
            )
            .await;
        assert_eq!(set.status(), 200, "point {provider} at the test server");
    }
    daemon
}

/// The round trip, as an application using the client writes it: ask with
/// tools, run the requested tool, send the call and its result back, read
/// the answer. Streamed answers are reassembled from indexed tool-call
/// deltas as the client's users do. Prints the call id it was given.
const ROUND_TRIP: &str = r#"
import json, os, openai

client = openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key="unused")
model = os.environ["MODEL"]
stream = os.environ["STREAM"] == "1"
tools = [{"type": "function", "function": {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}}]
messages = [{"role": "user", "content": "What is the weather in Paris?"}]

def ask(**options):
    if not stream:
        reply = client.chat.completions.create(model=model, messages=messages, tools=tools, **options)
        assert len(reply.choices) == 1, reply
        choice = reply.choices[0]
        calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
        assert reply.usage.total_tokens > 0, reply
        return choice.finish_reason, choice.message.content, calls
    text, calls, finish, usage = "", {}, None, None
    for chunk in client.chat.completions.create(model=model, messages=messages, tools=tools, stream=True, **options):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                if call.id:
                    assert entry["id"] is None, "the id comes once per call"
                    entry["id"] = call.id
                if call.function and call.function.name:
                    entry["name"] += call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    assert usage is not None and usage.total_tokens > 0, usage
    return finish, text or None, [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]

finish, content, calls = ask(tool_choice="auto")
assert finish == "tool_calls", (finish, content, calls)
assert len(calls) == 1, calls
call_id, name, arguments = calls[0]
assert call_id and name == "get_weather", calls
assert json.loads(arguments) == {"city": "Paris"}, arguments

messages.append({"role": "assistant", "content": content, "tool_calls": [
    {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]})
messages.append({"role": "tool", "tool_call_id": call_id, "content": os.environ["TOOL_RESULT"]})
finish, content, calls = ask()
assert finish == "stop", (finish, content, calls)
assert calls == [], calls
assert content == os.environ["FINAL_ANSWER"], content
print(call_id)
"#;

/// The tool as each wire format must have received it, and the client's
/// `tool_choice: "auto"` when `with_choice` (the second request has none:
/// OpenAI's driver then says `auto` itself, the others say nothing).
fn assert_tools_sent(api: Api, body: &Value, with_choice: bool) {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    match api {
        Api::OpenAi => {
            assert_eq!(
                body["tools"],
                json!([{"type": "function", "function": {
                    "name": "get_weather", "description": "Current weather in a city", "parameters": schema,
                }}])
            );
            assert_eq!(body["tool_choice"], "auto");
        }
        Api::Anthropic => {
            assert_eq!(
                body["tools"],
                json!([{"name": "get_weather", "description": "Current weather in a city", "input_schema": schema}])
            );
            let choice = with_choice.then(|| json!({"type": "auto"}));
            assert_eq!(body.get("tool_choice"), choice.as_ref());
        }
        Api::Gemini => {
            assert_eq!(
                body["tools"],
                json!([{"functionDeclarations": [{
                    "name": "get_weather", "description": "Current weather in a city", "parametersJsonSchema": schema,
                }]}])
            );
            let config = with_choice.then(|| json!({"functionCallingConfig": {"mode": "AUTO"}}));
            assert_eq!(body.get("toolConfig"), config.as_ref());
        }
    }
}

/// The call and its result as each wire format must have received them in
/// the second request; returns the provider's call id (none for Gemini).
fn assert_call_and_result_sent(api: Api, body: &Value) -> Option<String> {
    match api {
        Api::OpenAi => {
            let messages = body["messages"].as_array().expect("messages");
            assert_eq!(messages.len(), 3, "{body}");
            let call = &messages[1]["tool_calls"][0];
            let id = call["id"].as_str().expect("call id").to_string();
            assert_eq!(messages[1]["role"], "assistant");
            assert_eq!(call["type"], "function");
            assert_eq!(call["function"]["name"], "get_weather");
            let arguments: Value = serde_json::from_str(
                call["function"]["arguments"]
                    .as_str()
                    .expect("arguments text"),
            )
            .expect("arguments JSON");
            assert_eq!(arguments, json!({"city": "Paris"}));
            assert_eq!(
                messages[2],
                json!({"role": "tool", "tool_call_id": id, "content": TOOL_RESULT})
            );
            Some(id)
        }
        Api::Anthropic => {
            let messages = body["messages"].as_array().expect("messages");
            assert_eq!(messages.len(), 3, "{body}");
            assert_eq!(messages[1]["role"], "assistant");
            let tool_use = &messages[1]["content"][0];
            let id = tool_use["id"].as_str().expect("tool_use id").to_string();
            assert_eq!(
                tool_use,
                &json!({"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": "Paris"}})
            );
            assert_eq!(
                messages[2],
                json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": id, "content": TOOL_RESULT}
                ]})
            );
            Some(id)
        }
        Api::Gemini => {
            let contents = body["contents"].as_array().expect("contents");
            assert_eq!(contents.len(), 3, "{body}");
            assert_eq!(
                contents[1],
                json!({"role": "model", "parts": [{
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": SIGNATURE,
                }]})
            );
            assert_eq!(
                contents[2],
                json!({"role": "user", "parts": [{
                    "functionResponse": {"name": "get_weather", "response": {"output": TOOL_RESULT}}
                }]})
            );
            None
        }
    }
}

/// One full round trip with the official client against `model` (served in
/// the wire format `api`), then what the provider received.
fn round_trip(daemon: &Daemon, llm: &TestLlm, api: Api, model: &str, stream: bool) {
    let call = Reply::tool_call("get_weather", r#"{"city":"Paris"}"#);
    let call = match api {
        Api::Gemini => call.with_thought_signature(SIGNATURE),
        _ => call,
    };
    // Streamed, the arguments and the text arrive in several fragments.
    let chunks = if stream { 3 } else { 1 };
    llm.push(call.in_chunks(chunks));
    llm.push(Reply::text(FINAL_ANSWER).in_chunks(chunks));
    llm.clear_requests();

    let client_call_id = run_python(
        ROUND_TRIP,
        &[
            ("BASE", daemon.base_url()),
            ("MODEL", model),
            ("STREAM", if stream { "1" } else { "0" }),
            ("TOOL_RESULT", TOOL_RESULT),
            ("FINAL_ANSWER", FINAL_ANSWER),
        ],
    );

    let sent: Vec<RecordedRequest> = llm.requests();
    assert_eq!(sent.len(), 2, "{api:?}: one request per client call");
    for (i, request) in sent.iter().enumerate() {
        assert_eq!(request.api, api);
        assert_eq!(request.stream, stream, "{api:?}");
        assert_eq!(request.model.as_deref(), Some(model));
        assert_tools_sent(api, &request.body, i == 0);
    }
    let provider_id = assert_call_and_result_sent(api, &sent[1].body);
    match provider_id {
        // The client saw the provider's own id and sent it back.
        Some(id) => assert_eq!(client_call_id, id, "{api:?}"),
        // Gemini has no ids: the client got one carrying the signature.
        None => assert!(
            client_call_id.ends_with(&format!("__sig__{SIGNATURE}")),
            "{client_call_id}"
        ),
    }
    assert_eq!(llm.pending(), 0);
}

#[tokio::test]
async fn the_openai_client_calls_functions_through_every_wire_format() {
    let llm = TestLlm::start().await;
    let daemon = daemon_with_providers(&llm, "").await;
    for (api, model) in MODELS {
        for stream in [false, true] {
            round_trip(&daemon, &llm, api, model, stream);
        }
    }
}

#[tokio::test]
async fn request_options_reach_every_wire_format() {
    let llm = TestLlm::start().await;
    let daemon = daemon_with_providers(&llm, "").await;
    let schema = json!({"type": "object", "properties": {"celsius": {"type": "number"}}});
    for (api, model) in MODELS {
        llm.clear_requests();
        llm.push(Reply::tool_call("get_weather", r#"{"city":"Oslo"}"#));
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": "Weather in Oslo as JSON"}],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": schema}},
            "stop": ["END"],
            "seed": 11,
            "user": "user-42",
        });
        let response = daemon.post("/v1/chat/completions", body).await;
        assert_eq!(response.status(), 200, "{api:?}");
        let completion = json(response).await;
        assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
        let sent = llm.last_request().expect("recorded").body;
        match api {
            Api::OpenAi => {
                assert_eq!(
                    sent["tool_choice"],
                    json!({"type": "function", "function": {"name": "get_weather"}})
                );
                assert_eq!(
                    sent["response_format"],
                    json!({"type": "json_schema", "json_schema": {"name": "weather", "schema": schema}})
                );
                assert_eq!(sent["stop"], json!(["END"]));
                assert_eq!(sent["seed"], 11);
                assert_eq!(sent["user"], "user-42");
            }
            Api::Anthropic => {
                assert_eq!(
                    sent["tool_choice"],
                    json!({"type": "tool", "name": "get_weather"})
                );
                assert_eq!(sent["stop_sequences"], json!(["END"]));
                assert_eq!(sent["metadata"], json!({"user_id": "user-42"}));
                assert!(sent["system"].as_str().expect("system").contains("celsius"));
            }
            Api::Gemini => {
                assert_eq!(
                    sent["toolConfig"],
                    json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
                );
                let generation = &sent["generationConfig"];
                assert_eq!(generation["stopSequences"], json!(["END"]));
                assert_eq!(generation["seed"], 11);
                assert_eq!(generation["responseMimeType"], "application/json");
                assert_eq!(generation["responseJsonSchema"], schema);
            }
        }

        // `n` answers, whole and streamed: one provider request each.
        llm.clear_requests();
        llm.push_all([Reply::text("one"), Reply::text("two")]);
        let body = json!({"model": model, "n": 2, "messages": [{"role": "user", "content": "Hi"}]});
        let completion = json(daemon.post("/v1/chat/completions", body).await).await;
        let mut texts: Vec<&str> = completion["choices"]
            .as_array()
            .expect("choices")
            .iter()
            .map(|c| c["message"]["content"].as_str().expect("text"))
            .collect();
        texts.sort_unstable();
        assert_eq!(texts, ["one", "two"], "{completion}");
        assert_eq!(completion["choices"][1]["index"], 1);
        assert_eq!(llm.request_count(), 2);

        llm.push_all([
            Reply::text("alpha").in_chunks(2),
            Reply::text("beta").in_chunks(2),
        ]);
        let body = json!({"model": model, "n": 2, "stream": true,
            "messages": [{"role": "user", "content": "Hi"}]});
        let text = daemon
            .post("/v1/chat/completions", body)
            .await
            .text()
            .await
            .expect("stream");
        let frames: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(frames.last(), Some(&"[DONE]"), "{text}");
        let mut by_choice = [String::new(), String::new()];
        let mut finished = [false, false];
        for frame in &frames[..frames.len() - 1] {
            let chunk: Value = serde_json::from_str(frame).expect("chunk");
            let choice = &chunk["choices"][0];
            let index = choice["index"].as_u64().expect("index") as usize;
            by_choice[index].push_str(choice["delta"]["content"].as_str().unwrap_or_default());
            finished[index] |= choice["finish_reason"] == "stop";
        }
        by_choice.sort();
        assert_eq!(
            by_choice,
            ["alpha".to_string(), "beta".to_string()],
            "{text}"
        );
        assert_eq!(finished, [true, true]);
    }
}

/// Bad input, through the official client: each refusal is a
/// `BadRequestError` whose `code`, `type` and `param` are OpenAI's fields.
const BAD_INPUT: &str = r#"
import os, openai

client = openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key="unused")
model = os.environ["MODEL"]
tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
user = {"role": "user", "content": "hi"}
call = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}

def refused(param, code, **request):
    try:
        client.chat.completions.create(model=model, **request)
    except openai.BadRequestError as e:
        assert e.status_code == 400, e
        assert e.type == "invalid_request_error", (e.type, e.body)
        assert e.code == code, (e.code, e.body)
        assert e.param == param, (e.param, e.body)
        return
    raise AssertionError(f"not refused: {request}")

refused("tools[0].function", "missing_required_parameter", messages=[user], tools=[{"type": "function"}])
refused("tools[0].function.name", "invalid_value", messages=[user],
        tools=[{"type": "function", "function": {"name": "get weather"}}])
refused("tools[0].type", "invalid_value", messages=[user], tools=[{"type": "code_interpreter"}])
refused("tool_choice", "invalid_value", messages=[user], tools=[tool], tool_choice="sometimes")
refused("tool_choice.function.name", "invalid_value", messages=[user], tools=[tool],
        tool_choice={"type": "function", "function": {"name": "other"}})
refused("messages[1].tool_call_id", "invalid_tool_call_id", tools=[tool],
        messages=[user, {"role": "tool", "tool_call_id": "call_1", "content": "r"}])
refused("messages[2].tool_call_id", "invalid_tool_call_id", tools=[tool],
        messages=[user, call, {"role": "tool", "tool_call_id": "call_2", "content": "r"}])
refused("messages[1]", "missing_tool_results", tools=[tool], messages=[user, call, user])
print("ok")
"#;

#[tokio::test]
async fn bad_input_gets_openai_shaped_400s_before_any_provider_call() {
    let llm = TestLlm::start().await;
    let daemon = daemon_with_providers(&llm, "").await;
    run_python(
        BAD_INPUT,
        &[("BASE", daemon.base_url()), ("MODEL", "gpt-4o-mini")],
    );
    assert_eq!(llm.request_count(), 0, "nothing reached the provider");

    // The raw shape: every field present, `param` and `code` included.
    let response = daemon
        .post(
            "/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}),
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        json(response).await,
        json!({"error": {
            "message": "Invalid type for 'tools[0].function.parameters': expected a JSON Schema object.",
            "type": "invalid_request_error",
            "param": "tools[0].function.parameters",
            "code": "invalid_type",
        }})
    );
}

/// A wrong key, through the official client.
const UNAUTHORIZED: &str = r#"
import os, openai

client = openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key="wrong-key")
try:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("not refused")
except openai.AuthenticationError as e:
    assert e.status_code == 401, e
    assert e.type == "invalid_request_error", (e.type, e.body)
    assert e.code == "invalid_api_key", (e.code, e.body)
    assert "param" in e.body and e.param is None, e.body
models = openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key=os.environ["KEY"]).models.list()
assert any(m.id == "gpt-4o-mini" for m in models), models
print("ok")
"#;

#[tokio::test]
async fn a_401_on_v1_is_openai_shaped() {
    let mut daemon = Daemon::start_with_config("api_key = \"v1-secret\"\n").await;
    run_python(
        UNAUTHORIZED,
        &[("BASE", daemon.base_url()), ("KEY", "v1-secret")],
    );

    let response = daemon.get("/v1/models").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        json(response).await,
        json!({"error": {
            "message": "missing Authorization header: send `Authorization: Bearer <api_key>`",
            "type": "invalid_request_error",
            "param": null,
            "code": "missing_api_key",
        }})
    );
    // The rest of the API keeps its own shape.
    let response = daemon.get("/api/agents").await;
    assert_eq!(response.status(), 401);
    assert!(json(response).await["error"].is_string());
    daemon.use_key("v1-secret");
    assert_eq!(daemon.get("/v1/models").await.status(), 200);
}
