//! Providers that misbehave in time rather than in content: one that never
//! answers, one that never stops, one that stops half-way and stays silent.
//! Each speaks the format's real framing up to the point where it goes
//! wrong, so a client's decoder accepts everything it does receive.

use super::*;

use futures::StreamExt;

/// What follows the start of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// The same piece of text again and again.
    Endless,
    /// Nothing, with the connection left open.
    Stall,
}

/// Counts the answer as abandoned when dropped: none of these answers ends
/// by itself, so being dropped means the connection went away.
struct Abandonment(Arc<Shared>);

impl Drop for Abandonment {
    fn drop(&mut self) {
        self.0.abandoned.fetch_add(1, Ordering::SeqCst);
    }
}

/// Never answers; counted as abandoned when the connection goes.
pub(crate) async fn hang(shared: &Arc<Shared>) -> Response {
    let _abandonment = Abandonment(Arc::clone(shared));
    std::future::pending::<Response>().await
}

/// The start of an answer with `text`, then `tail`.
pub(crate) fn respond(
    shared: &Arc<Shared>,
    api: Api,
    incoming: &Incoming,
    text: &str,
    tail: Tail,
) -> Response {
    let id = shared.next_id();
    let (content_type, opening, repeated) = if incoming.stream {
        let (opening, delta) = streamed(api, incoming, id, text);
        ("text/event-stream", opening, delta)
    } else {
        let piece = json_string_content(text);
        (
            "application/json",
            vec![blocking_prefix(api, incoming, id), piece.clone()],
            piece,
        )
    };
    let abandonment = Abandonment(Arc::clone(shared));
    let rest = match tail {
        Tail::Endless => futures::stream::repeat(repeated).boxed(),
        Tail::Stall => futures::stream::pending().boxed(),
    };
    let body = futures::stream::iter(opening)
        .chain(rest)
        .map(move |frame| {
            // Owned by the stream: dropped with it, when the connection goes.
            let _ = &abandonment;
            Ok::<_, Infallible>(frame)
        });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A streamed answer's opening events (up to and including one delta of
/// `text`) and the delta event itself, in `api`'s framing.
fn streamed(api: Api, incoming: &Incoming, id: u64, text: &str) -> (Vec<String>, String) {
    match api {
        Api::OpenAi => {
            let chunk = |delta: Value| {
                let value = json!({
                    "id": format!("chatcmpl-test-{id}"),
                    "object": "chat.completion.chunk",
                    "created": now_secs(),
                    "model": incoming.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": null}],
                });
                format!("data: {value}\n\n")
            };
            let delta = chunk(json!({"content": text}));
            (
                vec![
                    chunk(json!({"role": "assistant", "content": ""})),
                    delta.clone(),
                ],
                delta,
            )
        }
        Api::Anthropic => {
            let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
            let delta = event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            );
            (
                vec![
                    event(
                        "message_start",
                        json!({"type": "message_start", "message": {
                            "id": format!("msg_test_{id}"), "type": "message", "role": "assistant",
                            "model": incoming.model, "content": [], "stop_reason": null,
                            "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1},
                        }}),
                    ),
                    event(
                        "content_block_start",
                        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                    ),
                    delta.clone(),
                ],
                delta,
            )
        }
        Api::Gemini => {
            let value = json!({
                "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
                "usageMetadata": {"promptTokenCount": 1},
                "modelVersion": incoming.model,
                "responseId": format!("resp-test-{id}"),
            });
            // Gemini separates events with CRLF pairs.
            let delta = format!("data: {value}\r\n\r\n");
            (vec![delta.clone()], delta)
        }
    }
}

/// A blocking answer's JSON up to the opening quote of its text.
fn blocking_prefix(api: Api, incoming: &Incoming, id: u64) -> String {
    let model = json_string_content(&incoming.model);
    match api {
        Api::OpenAi => format!(
            r#"{{"id":"chatcmpl-test-{id}","object":"chat.completion","created":{},"model":"{model}","choices":[{{"index":0,"message":{{"role":"assistant","content":""#,
            now_secs()
        ),
        Api::Anthropic => format!(
            r#"{{"id":"msg_test_{id}","type":"message","role":"assistant","model":"{model}","content":[{{"type":"text","text":""#
        ),
        Api::Gemini => {
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":""#.to_string()
        }
    }
}

/// `text` escaped for use inside a JSON string (without the quotes).
fn json_string_content(text: &str) -> String {
    let quoted = Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_fits_between_quotes() {
        assert_eq!(json_string_content(r#"a "b" \ c"#), r#"a \"b\" \\ c"#);
        let prefix = blocking_prefix(
            Api::OpenAi,
            &Incoming {
                body: Value::Null,
                stream: false,
                model: "m".into(),
                include_usage: false,
            },
            1,
        );
        // Completing the prefix makes valid JSON of the format.
        let whole: Value =
            serde_json::from_str(&format!("{prefix}hi\"}}}}]}}")).expect("valid JSON");
        assert_eq!(whole["choices"][0]["message"]["content"], "hi");
    }
}
