//! The OpenAI Chat Completions API as a server speaks it, for Talon's own
//! `/v1/chat/completions`: requests read into a [`CompletionRequest`] (any
//! driver can then send it in its own wire format), answers and streamed
//! events written back as `chat.completion` objects and
//! `chat.completion.chunk`s.
//!
//! The client side of the same format is the OpenAI driver (`openai.rs`);
//! this is the other direction, and what makes function calling through
//! `/v1` work whatever format the model behind it speaks.
//!
//! Gemini's thought signatures (see [`ToolCall::signature`]) have no place
//! in OpenAI's format, yet Gemini refuses a conversation whose function
//! calls lost them. They travel inside the tool call id that clients send
//! back unchanged: `<id>` + [`SIGNATURE_SEPARATOR`] + `<signature>`.
//!
//! [`CompletionRequest`]: crate::CompletionRequest
//! [`ToolCall::signature`]: crate::ToolCall::signature

mod request;
mod response;

pub use request::{ChatError, ChatRequest, parse_request};
pub use response::{ChunkEncoder, completion, finish_reason, usage_object};

/// Separates a tool call id from the provider signature carried in it.
pub const SIGNATURE_SEPARATOR: &str = "__sig__";

/// The id a client sees for a call: the call's id, with its signature if any.
pub(crate) fn external_call_id(id: &str, signature: Option<&str>) -> String {
    match signature {
        Some(signature) => format!("{id}{SIGNATURE_SEPARATOR}{signature}"),
        None => id.to_string(),
    }
}

/// Splits an id made by [`external_call_id`] back into id and signature.
pub(crate) fn split_call_id(external: &str) -> (&str, Option<&str>) {
    match external.split_once(SIGNATURE_SEPARATOR) {
        Some((id, signature)) if !signature.is_empty() => (id, Some(signature)),
        _ => (external, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_ride_in_the_call_id_and_come_back() {
        let external = external_call_id("call_1", Some("c2ln+/="));
        assert_eq!(split_call_id(&external), ("call_1", Some("c2ln+/=")));
        assert_eq!(external_call_id("call_1", None), "call_1");
        assert_eq!(split_call_id("call_1"), ("call_1", None));
        assert_eq!(split_call_id("call_1__sig__"), ("call_1__sig__", None));
    }
}
