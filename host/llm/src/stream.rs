//! Streamed answers and how to fold them into a [`CompletionResponse`].

use std::collections::BTreeMap;
use std::pin::Pin;

use futures::{Stream, StreamExt};

use crate::error::LlmError;
use crate::types::{CompletionResponse, StopReason, StreamEvent, ToolCall, Usage};

/// A streamed answer: events until [`StreamEvent::Done`], or an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// Assembles [`StreamEvent`]s into a [`CompletionResponse`].
///
/// Drivers use it for blocking answers too (they turn the provider's JSON
/// into the same events), so that tool-call assembly has one code path.
#[derive(Debug, Default)]
pub struct ResponseBuilder {
    text: String,
    calls: BTreeMap<usize, ToolCall>,
    usage: Usage,
    stop_reason: Option<StopReason>,
    model: String,
}

impl ResponseBuilder {
    /// A builder; `model` is reported unless changed with [`ResponseBuilder::set_model`].
    pub fn new(model: impl Into<String>) -> Self {
        ResponseBuilder {
            model: model.into(),
            ..ResponseBuilder::default()
        }
    }

    /// Records the model the provider says answered.
    pub fn set_model(&mut self, model: impl Into<String>) {
        self.model = model.into();
    }

    /// Applies one event. Fails on events that contradict the stream so far
    /// (argument fragments for a call that never started, anything after
    /// [`StreamEvent::Done`]).
    pub fn push(&mut self, event: StreamEvent) -> Result<(), LlmError> {
        if self.stop_reason.is_some() {
            return Err(LlmError::stream("event after the end of the answer"));
        }
        match event {
            StreamEvent::TextDelta(text) => self.text.push_str(&text),
            StreamEvent::ToolCallStart { index, id, name } => {
                if self.calls.contains_key(&index) {
                    return Err(LlmError::stream(format!("tool call {index} started twice")));
                }
                self.calls
                    .insert(index, ToolCall::new(id, name, String::new()));
            }
            StreamEvent::ToolCallDelta {
                index,
                arguments_fragment,
            } => self.call(index)?.arguments.push_str(&arguments_fragment),
            StreamEvent::ToolCallSignature { index, signature } => {
                self.call(index)?.signature = Some(signature)
            }
            StreamEvent::Usage(usage) => self.usage = usage,
            StreamEvent::Done { stop_reason } => self.stop_reason = Some(stop_reason),
        }
        Ok(())
    }

    fn call(&mut self, index: usize) -> Result<&mut ToolCall, LlmError> {
        self.calls.get_mut(&index).ok_or_else(|| {
            LlmError::stream(format!(
                "arguments for tool call {index}, which never started"
            ))
        })
    }

    /// Whether [`StreamEvent::Done`] has been seen.
    pub fn is_done(&self) -> bool {
        self.stop_reason.is_some()
    }

    /// The response; fails if the answer never finished.
    pub fn finish(self) -> Result<CompletionResponse, LlmError> {
        let stop_reason = self
            .stop_reason
            .ok_or_else(|| LlmError::stream("the answer ended before the model finished"))?;
        Ok(CompletionResponse {
            text: self.text,
            tool_calls: self.calls.into_values().collect(),
            usage: self.usage,
            stop_reason,
            model: self.model,
        })
    }
}

/// Reads a whole stream into a [`CompletionResponse`]; `model` is what the
/// response reports as the model (streams do not carry it).
pub async fn collect(
    mut stream: EventStream,
    model: impl Into<String>,
) -> Result<CompletionResponse, LlmError> {
    let mut builder = ResponseBuilder::new(model);
    while let Some(event) = stream.next().await {
        builder.push(event?)?;
        if builder.is_done() {
            break;
        }
    }
    builder.finish()
}

/// Turns the events of one provider's stream into [`StreamEvent`]s.
pub(crate) trait Decoder: Send + 'static {
    /// Handles one server-sent event. Emitting [`StreamEvent::Done`] ends the stream.
    fn on_event(
        &mut self,
        event: &crate::sse::SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), LlmError>;

    /// The body ended without [`StreamEvent::Done`]: either finish leniently
    /// (emit `Done` if the answer is evidently complete) or fail.
    fn on_eof(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError>;
}

/// Several providers (Gemini; some OpenAI-compatible servers) report a plain
/// "stop" when the model called tools. Consumers decide whether to run tools
/// from the stop reason, so it is corrected here.
pub(crate) fn normalize_stop(reason: StopReason, called_tools: bool) -> StopReason {
    match reason {
        StopReason::EndTurn if called_tools => StopReason::ToolUse,
        other => other,
    }
}

/// Tool-call id for providers that give none, unique across answers so that
/// results from different turns never collide.
pub(crate) fn synthesize_call_id() -> String {
    format!("call_{:016x}", crate::resilience::random_u64())
}

/// Runs blocking-response events through a [`ResponseBuilder`].
pub(crate) fn build_response(
    events: Vec<StreamEvent>,
    model: impl Into<String>,
) -> Result<CompletionResponse, LlmError> {
    let mut builder = ResponseBuilder::new(model);
    for event in events {
        builder.push(event)?;
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_assembles_interleaved_calls_in_index_order() {
        let mut builder = ResponseBuilder::new("m");
        let events = vec![
            StreamEvent::TextDelta("Hel".into()),
            StreamEvent::ToolCallStart {
                index: 1,
                id: "b".into(),
                name: "g".into(),
            },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "a".into(),
                name: "f".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments_fragment: "{\"y\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments_fragment: "{}".into(),
            },
            StreamEvent::TextDelta("lo".into()),
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments_fragment: "2}".into(),
            },
            StreamEvent::Usage(Usage::new(3, 4)),
            StreamEvent::Done {
                stop_reason: StopReason::ToolUse,
            },
        ];
        for event in events {
            builder.push(event).expect("push");
        }
        let response = builder.finish().expect("finish");
        assert_eq!(response.text, "Hello");
        assert_eq!(
            response.tool_calls,
            vec![
                ToolCall::new("a", "f", "{}"),
                ToolCall::new("b", "g", "{\"y\":2}")
            ]
        );
        assert_eq!(response.usage, Usage::new(3, 4));
        assert_eq!(response.stop_reason, StopReason::ToolUse);
    }

    #[test]
    fn builder_rejects_inconsistent_streams() {
        let mut builder = ResponseBuilder::new("m");
        assert!(matches!(
            builder.push(StreamEvent::ToolCallDelta {
                index: 0,
                arguments_fragment: "x".into()
            }),
            Err(LlmError::Stream { .. })
        ));
        let builder = ResponseBuilder::new("m");
        assert!(matches!(builder.finish(), Err(LlmError::Stream { .. })));
        let mut builder = ResponseBuilder::new("m");
        builder
            .push(StreamEvent::Done {
                stop_reason: StopReason::EndTurn,
            })
            .expect("done");
        assert!(builder.push(StreamEvent::TextDelta("late".into())).is_err());
    }

    #[test]
    fn synthesized_ids_are_unique() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| synthesize_call_id()).collect();
        assert_eq!(ids.len(), 1000);
    }
}
