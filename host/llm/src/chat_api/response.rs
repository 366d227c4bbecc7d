//! Writing answers as `chat.completion` objects and streamed events as
//! `chat.completion.chunk`s, tool calls included.

use serde_json::{Value, json};

use super::external_call_id;
use crate::types::{CompletionResponse, StopReason, StreamEvent, Usage};

/// OpenAI's `finish_reason` for a provider's stop reason. A tool call is
/// `tool_calls` only when the answer has calls to show (clients look for
/// them when they see it); what a provider reports for a filtered or
/// refused answer is `content_filter`; every other way of ending (stop
/// sequences, Gemini's `OTHER`...) is a plain `stop`.
pub fn finish_reason(stop: &StopReason, has_calls: bool) -> &'static str {
    match stop {
        _ if has_calls => "tool_calls",
        StopReason::EndTurn | StopReason::ToolUse => "stop",
        StopReason::MaxTokens => "length",
        StopReason::Other(reason) => {
            let filtered = matches!(
                reason.as_str(),
                "content_filter"
                    | "refusal"
                    | "SAFETY"
                    | "RECITATION"
                    | "BLOCKLIST"
                    | "PROHIBITED_CONTENT"
                    | "SPII"
                    | "IMAGE_SAFETY"
            ) || reason.starts_with("blocked");
            if filtered { "content_filter" } else { "stop" }
        }
    }
}

/// `usage` in OpenAI's shape, for callers that put it on the last chunk.
pub fn usage_object(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total(),
    })
}

/// A `chat.completion` with one choice per answer (`n` answers to the same
/// request); `usage` is the sum of theirs.
pub fn completion(id: &str, model: &str, created: i64, answers: &[CompletionResponse]) -> Value {
    let mut usage = Usage::default();
    let choices: Vec<Value> = answers
        .iter()
        .enumerate()
        .map(|(index, answer)| {
            usage.input_tokens += answer.usage.input_tokens;
            usage.output_tokens += answer.usage.output_tokens;
            let has_calls = !answer.tool_calls.is_empty();
            let mut message = json!({"role": "assistant", "content": answer.text});
            if has_calls {
                // OpenAI's own answers carry null content next to calls
                // when the model said nothing.
                if answer.text.is_empty() {
                    message["content"] = Value::Null;
                }
                message["tool_calls"] = answer
                    .tool_calls
                    .iter()
                    .map(|call| {
                        json!({
                            "id": external_call_id(&call.id, call.signature.as_deref()),
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        })
                    })
                    .collect();
            }
            json!({
                "index": index,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason(&answer.stop_reason, has_calls),
            })
        })
        .collect();
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_object(usage),
    })
}

/// A tool call whose first chunk waits for the call's signature, which
/// drivers send right after the start (see [`StreamEvent::ToolCallSignature`]).
#[derive(Debug)]
struct PendingCall {
    index: usize,
    id: String,
    name: String,
    signature: Option<String>,
}

/// Writes one choice's [`StreamEvent`]s as `chat.completion.chunk`s.
///
/// Tool calls go out the way OpenAI streams them: a first delta with the
/// call's `index`, `id`, `type` and name, then deltas with the same `index`
/// carrying argument fragments to concatenate.
#[derive(Debug)]
pub struct ChunkEncoder {
    id: String,
    model: String,
    created: i64,
    choice: usize,
    pending: Option<PendingCall>,
    calls: usize,
    usage: Usage,
}

impl ChunkEncoder {
    /// An encoder for choice `choice` of the completion `id`.
    pub fn new(
        id: impl Into<String>,
        model: impl Into<String>,
        created: i64,
        choice: usize,
    ) -> Self {
        ChunkEncoder {
            id: id.into(),
            model: model.into(),
            created,
            choice,
            pending: None,
            calls: 0,
            usage: Usage::default(),
        }
    }

    /// A chunk of this choice with `delta` and `finish_reason`.
    pub fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": self.choice,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        })
    }

    /// The first chunk: the assistant's role.
    pub fn role(&self) -> Value {
        self.chunk(json!({"role": "assistant", "content": ""}), None)
    }

    /// The usage the stream reported so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The chunks for one event; the one for [`StreamEvent::Done`] carries
    /// the `finish_reason` (the caller adds `usage` where it wants it).
    pub fn push(&mut self, event: StreamEvent) -> Vec<Value> {
        if let StreamEvent::ToolCallSignature { index, signature } = &event
            && let Some(pending) = self.pending.as_mut().filter(|p| p.index == *index)
        {
            pending.signature = Some(signature.clone());
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(pending) = self.pending.take() {
            let id = external_call_id(&pending.id, pending.signature.as_deref());
            out.push(self.chunk(
                json!({"tool_calls": [{
                    "index": pending.index,
                    "id": id,
                    "type": "function",
                    "function": {"name": pending.name, "arguments": ""},
                }]}),
                None,
            ));
        }
        match event {
            StreamEvent::TextDelta(text) => out.push(self.chunk(json!({"content": text}), None)),
            StreamEvent::ToolCallStart { index, id, name } => {
                self.calls += 1;
                self.pending = Some(PendingCall {
                    index,
                    id,
                    name,
                    signature: None,
                });
            }
            StreamEvent::ToolCallDelta {
                index,
                arguments_fragment,
            } => out.push(self.chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": arguments_fragment}}]}),
                None,
            )),
            // A signature for a call already shown cannot be added to it;
            // drivers send signatures first, so this does not happen.
            StreamEvent::ToolCallSignature { .. } => {}
            StreamEvent::Usage(usage) => self.usage = usage,
            StreamEvent::Done { stop_reason } => {
                let finish = finish_reason(&stop_reason, self.calls > 0);
                out.push(self.chunk(json!({}), Some(finish)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolCall;

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(&StopReason::EndTurn, false), "stop");
        assert_eq!(finish_reason(&StopReason::ToolUse, true), "tool_calls");
        assert_eq!(finish_reason(&StopReason::ToolUse, false), "stop");
        assert_eq!(finish_reason(&StopReason::MaxTokens, false), "length");
        assert_eq!(
            finish_reason(&StopReason::Other("stop_sequence".into()), false),
            "stop"
        );
        assert_eq!(
            finish_reason(&StopReason::Other("SAFETY".into()), false),
            "content_filter"
        );
        assert_eq!(
            finish_reason(&StopReason::Other("blocked: OTHER".into()), false),
            "content_filter"
        );
    }

    #[test]
    fn a_tool_call_answer_is_a_tool_calls_choice() {
        let mut call = ToolCall::new("call_1", "get_weather", "{\"city\":\"Paris\"}");
        call.signature = Some("sig".into());
        let answer = CompletionResponse {
            text: String::new(),
            tool_calls: vec![call],
            usage: Usage::new(10, 5),
            stop_reason: StopReason::ToolUse,
            model: "m".into(),
        };
        let value = completion("chatcmpl-1", "m", 1, &[answer.clone(), answer]);
        let choice = &value["choices"][1];
        assert_eq!(choice["index"], 1);
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([{"id": "call_1__sig__sig", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        assert_eq!(value["usage"]["total_tokens"], 30);
    }

    #[test]
    fn tool_calls_stream_as_indexed_deltas_with_the_signature_in_the_id() {
        let mut encoder = ChunkEncoder::new("chatcmpl-1", "m", 1, 0);
        let events = [
            StreamEvent::TextDelta("Let me look.".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "a".into(),
                name: "f".into(),
            },
            StreamEvent::ToolCallSignature {
                index: 0,
                signature: "s".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments_fragment: "{\"x\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments_fragment: "1}".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "b".into(),
                name: "g".into(),
            },
            StreamEvent::Usage(Usage::new(3, 4)),
            StreamEvent::Done {
                stop_reason: StopReason::ToolUse,
            },
        ];
        let chunks: Vec<Value> = events.into_iter().flat_map(|e| encoder.push(e)).collect();
        let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(deltas[0], &json!({"content": "Let me look."}));
        assert_eq!(
            deltas[1],
            &json!({"tool_calls": [{"index": 0, "id": "a__sig__s", "type": "function",
                "function": {"name": "f", "arguments": ""}}]})
        );
        assert_eq!(
            deltas[2]["tool_calls"][0],
            json!({"index": 0, "function": {"arguments": "{\"x\":"}})
        );
        assert_eq!(deltas[3]["tool_calls"][0]["function"]["arguments"], "1}");
        assert_eq!(deltas[4]["tool_calls"][0]["id"], "b");
        assert_eq!(deltas[5], &json!({}));
        assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks.len(), 6);
        assert_eq!(encoder.usage(), Usage::new(3, 4));
        assert_eq!(encoder.role()["choices"][0]["delta"]["role"], "assistant");
    }
}
