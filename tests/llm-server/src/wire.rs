//! The three wire formats' answers: checking what a client sent in each
//! format's real shape, and answering a scripted reply in it, blocking or
//! streamed.

use super::*;

pub(super) async fn openai(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    handle(shared, &OPENAI, uri, headers, raw, None).await
}

pub(super) fn validate_openai(incoming: &Incoming, _headers: &HeaderMap) -> Result<(), String> {
    if incoming.model.is_empty() {
        return Err("you must provide a model parameter".into());
    }
    match incoming.body.get("messages").and_then(Value::as_array) {
        Some(messages) if !messages.is_empty() => tools::check_openai(&incoming.body),
        _ => Err("'messages' must be a non-empty array".into()),
    }
}

pub(super) fn answer_openai(
    shared: &Shared,
    incoming: &Incoming,
    reply: &Reply,
    text: &str,
    calls: &[(String, String)],
) -> Response {
    let id = format!("chatcmpl-test-{}", shared.next_id());
    let created = now_secs();
    let call_ids: Vec<String> = calls
        .iter()
        .map(|_| format!("call_test_{}", shared.next_id()))
        .collect();
    let finish = if reply.max_tokens {
        "length"
    } else if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let (input, output) = usage_of(reply, &incoming.body, text, calls);
    let usage = json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output});

    if !incoming.stream {
        let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
        if !calls.is_empty() {
            message["tool_calls"] = calls
                .iter()
                .zip(&call_ids)
                .map(|((name, arguments), call_id)| {
                    json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
                })
                .collect();
        }
        return axum::Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": incoming.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage,
        }))
        .into_response();
    }

    let chunk = |choices: Value| {
        let value = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": incoming.model,
            "choices": choices,
        });
        format!("data: {value}\n\n")
    };
    let mut frames = Frames::new(reply.chunk_delay);
    frames.control(chunk(json!([
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}
    ])));
    for piece in split(text, reply.chunks) {
        frames.content(chunk(
            json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]),
        ));
    }
    for (index, ((name, arguments), call_id)) in calls.iter().zip(&call_ids).enumerate() {
        frames.control(chunk(json!([{
            "index": 0,
            "delta": {"tool_calls": [{
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }]},
            "finish_reason": null,
        }])));
        for piece in split(arguments, reply.chunks) {
            frames.content(chunk(json!([{
                "index": 0,
                "delta": {"tool_calls": [{"index": index, "function": {"arguments": piece}}]},
                "finish_reason": null,
            }])));
        }
    }
    if !reply.truncated {
        frames.control(chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
        ));
        if incoming.include_usage {
            let value = json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": incoming.model,
                "choices": [],
                "usage": usage,
            });
            frames.control(format!("data: {value}\n\n"));
        }
        frames.control("data: [DONE]\n\n".to_string());
    }
    frames.into_response()
}

// ---------------------------------------------------------------------------
// Anthropic Messages

pub(super) async fn anthropic(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    handle(shared, &ANTHROPIC, uri, headers, raw, None).await
}

pub(super) fn validate_anthropic(incoming: &Incoming, headers: &HeaderMap) -> Result<(), String> {
    if headers.get("anthropic-version").is_none() {
        return Err("anthropic-version: header is required".into());
    }
    if incoming.model.is_empty() {
        return Err("model: Field required".into());
    }
    if incoming
        .body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_none()
    {
        return Err("max_tokens: Field required".into());
    }
    match incoming.body.get("messages").and_then(Value::as_array) {
        Some(messages) if !messages.is_empty() => tools::check_anthropic(&incoming.body),
        _ => Err("messages: at least one message is required".into()),
    }
}

pub(super) fn answer_anthropic(
    shared: &Shared,
    incoming: &Incoming,
    reply: &Reply,
    text: &str,
    calls: &[(String, String)],
) -> Response {
    let id = format!("msg_test_{}", shared.next_id());
    let call_ids: Vec<String> = calls
        .iter()
        .map(|_| format!("toolu_test_{}", shared.next_id()))
        .collect();
    let stop = if reply.max_tokens {
        "max_tokens"
    } else if calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    let (input, output) = usage_of(reply, &incoming.body, text, calls);

    if !incoming.stream {
        let mut content = Vec::new();
        if !text.is_empty() {
            content.push(json!({"type": "text", "text": text}));
        }
        for ((name, arguments), call_id) in calls.iter().zip(&call_ids) {
            content.push(json!({"type": "tool_use", "id": call_id, "name": name, "input": arguments_value(arguments)}));
        }
        return axum::Json(json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": incoming.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output},
        }))
        .into_response();
    }

    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut frames = Frames::new(reply.chunk_delay);
    frames.control(event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": incoming.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": 1},
        }}),
    ));
    frames.control(event("ping", json!({"type": "ping"})));
    let mut block = 0;
    if !text.is_empty() {
        frames.control(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": block, "content_block": {"type": "text", "text": ""}}),
        ));
        for piece in split(text, reply.chunks) {
            frames.content(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": block, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        frames.control(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": block}),
        ));
        block += 1;
    }
    for ((name, arguments), call_id) in calls.iter().zip(&call_ids) {
        frames.control(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": block, "content_block": {
                "type": "tool_use", "id": call_id, "name": name, "input": {},
            }}),
        ));
        for piece in split(arguments, reply.chunks) {
            frames.content(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": block, "delta": {
                    "type": "input_json_delta", "partial_json": piece,
                }}),
            ));
        }
        frames.control(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": block}),
        ));
        block += 1;
    }
    if !reply.truncated {
        frames.control(event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                   "usage": {"output_tokens": output}}),
        ));
        frames.control(event("message_stop", json!({"type": "message_stop"})));
    }
    frames.into_response()
}

// ---------------------------------------------------------------------------
// Google Gemini

pub(super) async fn gemini(
    State(shared): State<Arc<Shared>>,
    Path(rest): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let stream = match rest.rsplit_once(':').map(|(_, action)| action) {
        Some("generateContent") => false,
        Some("streamGenerateContent") => true,
        _ => {
            return error_response(
                Api::Gemini,
                404,
                &format!("unknown method in {rest:?}"),
                &[],
            );
        }
    };
    handle(shared, &GEMINI, uri, headers, raw, Some(stream)).await
}

pub(super) fn validate_gemini(incoming: &Incoming, _headers: &HeaderMap) -> Result<(), String> {
    if incoming.model.is_empty() {
        return Err("model name is required".into());
    }
    match incoming.body.get("contents").and_then(Value::as_array) {
        Some(contents) if !contents.is_empty() => tools::check_gemini(&incoming.body),
        _ => Err("* GenerateContentRequest.contents: contents is not specified".into()),
    }
}

pub(super) fn answer_gemini(
    shared: &Shared,
    incoming: &Incoming,
    reply: &Reply,
    text: &str,
    calls: &[(String, String)],
) -> Response {
    let response_id = format!("resp-test-{}", shared.next_id());
    let finish = if reply.max_tokens {
        "MAX_TOKENS"
    } else {
        "STOP"
    };
    let (input, output) = usage_of(reply, &incoming.body, text, calls);
    let usage = json!({"promptTokenCount": input, "candidatesTokenCount": output, "totalTokenCount": input + output});
    let call_parts: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(index, (name, arguments))| {
            let mut part =
                json!({"functionCall": {"name": name, "args": arguments_value(arguments)}});
            if index == 0
                && let Some(signature) = &reply.thought_signature
            {
                part["thoughtSignature"] = json!(signature);
            }
            part
        })
        .collect();
    let chunk = |parts: Vec<Value>, last: bool| {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if last {
            candidate["finishReason"] = json!(finish);
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": if last { usage.clone() } else { json!({"promptTokenCount": input}) },
            "modelVersion": incoming.model,
            "responseId": response_id,
        })
    };

    if !incoming.stream {
        let mut parts = Vec::new();
        if !text.is_empty() {
            parts.push(json!({"text": text}));
        }
        parts.extend(call_parts);
        return axum::Json(chunk(parts, true)).into_response();
    }

    // Text arrives in pieces; function calls arrive whole, with the last
    // chunk, which also carries the finish reason and the final usage.
    let mut groups: Vec<Vec<Value>> = split(text, reply.chunks)
        .into_iter()
        .map(|piece| vec![json!({"text": piece})])
        .collect();
    if groups.is_empty() || !call_parts.is_empty() {
        groups.push(call_parts);
    }
    if reply.truncated {
        groups.pop();
    }
    let last = groups.len().saturating_sub(1);
    let mut frames = Frames::new(reply.chunk_delay);
    for (index, parts) in groups.into_iter().enumerate() {
        let finished = index == last && !reply.truncated;
        // Gemini separates events with CRLF pairs.
        frames.content(format!("data: {}\r\n\r\n", chunk(parts, finished)));
    }
    frames.into_response()
}
