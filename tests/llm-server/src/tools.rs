//! The checks each provider makes on tool definitions, tool choices and the
//! tool calls and results in a conversation, with the same 400s the real
//! services answer. A client that sends tools or results in another
//! format's shape, or a result that answers no call, is refused here as it
//! would be in production, so tests cannot pass on a request the provider
//! would reject.

use std::collections::BTreeSet;

use serde_json::Value;

/// The message of the provider's 400, when the request is refused.
pub(crate) type Verdict = Result<(), String>;

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn non_empty_str<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------
// OpenAI Chat Completions

/// `tools`, `tool_choice`, and the pairing of assistant `tool_calls` with
/// `role: "tool"` messages.
pub(crate) fn check_openai(body: &Value) -> Verdict {
    let mut names = BTreeSet::new();
    for (i, tool) in array(body, "tools").iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(format!(
                "Invalid value for 'tools[{i}].type': expected 'function'."
            ));
        }
        let name = non_empty_str(tool, "/function/name")
            .ok_or_else(|| format!("Missing required parameter: 'tools[{i}].function.name'."))?;
        if let Some(parameters) = tool.pointer("/function/parameters")
            && !parameters.is_object()
        {
            return Err(format!(
                "Invalid type for 'tools[{i}].function.parameters': expected an object."
            ));
        }
        names.insert(name);
    }
    if let Some(choice) = body.get("tool_choice") {
        if names.is_empty() {
            return Err(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
                    .into(),
            );
        }
        match choice {
            Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {}
            Value::Object(_) => {
                let name = non_empty_str(choice, "/function/name").unwrap_or_default();
                if !names.contains(name) {
                    return Err(format!(
                        "Invalid value for 'tool_choice': no function named '{name}' was specified in the 'tools' parameter."
                    ));
                }
            }
            other => return Err(format!("Invalid value for 'tool_choice': {other}.")),
        }
    }
    // Ids of the calls of the latest assistant message still waiting for a result.
    let mut open: Vec<String> = Vec::new();
    for (i, message) in array(body, "messages").iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role == "tool" {
            let id = non_empty_str(message, "/tool_call_id").ok_or_else(|| {
                format!("Missing required parameter: 'messages[{i}].tool_call_id'.")
            })?;
            let Some(position) = open.iter().position(|open| open == id) else {
                return Err(format!(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls' (messages[{i}], tool_call_id '{id}')."
                ));
            };
            open.remove(position);
            continue;
        }
        if !open.is_empty() {
            return Err(format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                open.join(", ")
            ));
        }
        if role == "assistant" {
            for (j, call) in array(message, "tool_calls").iter().enumerate() {
                let at = format!("messages[{i}].tool_calls[{j}]");
                let id = non_empty_str(call, "/id")
                    .ok_or_else(|| format!("Missing required parameter: '{at}.id'."))?;
                if call.get("type").and_then(Value::as_str) != Some("function")
                    || non_empty_str(call, "/function/name").is_none()
                    || !call
                        .pointer("/function/arguments")
                        .is_some_and(Value::is_string)
                {
                    return Err(format!(
                        "Invalid '{at}': expected {{\"id\", \"type\": \"function\", \"function\": {{\"name\", \"arguments\": string}}}}."
                    ));
                }
                open.push(id.to_string());
            }
        }
    }
    if !open.is_empty() {
        return Err(format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            open.join(", ")
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Anthropic Messages

/// `tools`, `tool_choice`, and `tool_use` blocks answered by `tool_result`
/// blocks in the next user message.
pub(crate) fn check_anthropic(body: &Value) -> Verdict {
    let mut names = BTreeSet::new();
    for (i, tool) in array(body, "tools").iter().enumerate() {
        let name = non_empty_str(tool, "/name")
            .ok_or_else(|| format!("tools.{i}.name: Field required"))?;
        if !tool.get("input_schema").is_some_and(Value::is_object) {
            return Err(format!("tools.{i}.custom.input_schema: Field required"));
        }
        names.insert(name);
    }
    if let Some(choice) = body.get("tool_choice") {
        match choice.get("type").and_then(Value::as_str) {
            Some("auto" | "any" | "none") => {}
            Some("tool") => {
                let name = non_empty_str(choice, "/name").unwrap_or_default();
                if !names.contains(name) {
                    return Err(format!(
                        "tool_choice: tool '{name}' is not one of the provided tools"
                    ));
                }
            }
            _ => return Err(format!("tool_choice: Input tag {choice} is not valid")),
        }
        if names.is_empty() && choice.get("type").and_then(Value::as_str) != Some("none") {
            return Err("tool_choice may only be specified while providing tools.".into());
        }
    }
    let mut open: BTreeSet<String> = BTreeSet::new();
    for (i, message) in array(body, "messages").iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let blocks = array(message, "content");
        let mut answered = BTreeSet::new();
        for (j, block) in blocks.iter().enumerate() {
            match block.get("type").and_then(Value::as_str) {
                Some("tool_result") => {
                    let id = non_empty_str(block, "/tool_use_id").unwrap_or_default();
                    if role != "user" || !open.contains(id) {
                        return Err(format!(
                            "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        ));
                    }
                    answered.insert(id.to_string());
                }
                Some("tool_use") if role != "assistant" => {
                    return Err(format!(
                        "messages.{i}.content.{j}: `tool_use` blocks are only allowed in assistant messages"
                    ));
                }
                _ => {}
            }
        }
        if !open.is_empty() {
            let missing: Vec<&String> = open.difference(&answered).collect();
            if !missing.is_empty() {
                return Err(format!(
                    "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        open = blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
            .filter_map(|b| non_empty_str(b, "/id").map(str::to_string))
            .collect();
        for (j, block) in blocks.iter().enumerate() {
            if block.get("type").and_then(Value::as_str) == Some("tool_use")
                && (non_empty_str(block, "/id").is_none()
                    || non_empty_str(block, "/name").is_none()
                    || !block.get("input").is_some_and(Value::is_object))
            {
                return Err(format!(
                    "messages.{i}.content.{j}.tool_use: `id`, `name` and an object `input` are required"
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Google Gemini

/// `tools[].functionDeclarations`, `toolConfig`, and `functionCall` turns
/// answered by as many `functionResponse` parts with the same names.
pub(crate) fn check_gemini(body: &Value) -> Verdict {
    let mut names = BTreeSet::new();
    for (i, tool) in array(body, "tools").iter().enumerate() {
        for (j, declaration) in array(tool, "functionDeclarations").iter().enumerate() {
            let name = non_empty_str(declaration, "/name").ok_or_else(|| {
                format!("* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: Name cannot be empty.")
            })?;
            let schema = declaration
                .get("parametersJsonSchema")
                .or_else(|| declaration.get("parameters"));
            if schema.is_some_and(|s| !s.is_object()) {
                return Err(format!(
                    "* GenerateContentRequest.tools[{i}].function_declarations[{j}].parameters: must be an object"
                ));
            }
            names.insert(name);
        }
    }
    if let Some(config) = body.pointer("/toolConfig/functionCallingConfig") {
        match config.get("mode").and_then(Value::as_str) {
            Some("AUTO" | "ANY" | "NONE" | "VALIDATED") | None => {}
            Some(other) => {
                return Err(format!(
                    "Invalid value at 'tool_config.function_calling_config.mode' ({other})"
                ));
            }
        }
        for name in array(config, "allowedFunctionNames") {
            let name = name.as_str().unwrap_or_default();
            if !names.contains(name) {
                return Err(format!(
                    "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: function '{name}' is not declared"
                ));
            }
        }
    }
    // Names of the calls of the previous model turn.
    let mut called: Vec<String> = Vec::new();
    for (i, content) in array(body, "contents").iter().enumerate() {
        let role = content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        let parts = array(content, "parts");
        let mut answered: Vec<String> = Vec::new();
        for part in parts {
            if let Some(response) = part.get("functionResponse") {
                let name = non_empty_str(response, "/name").unwrap_or_default();
                if role != "user" || !called.iter().any(|c| c == name) {
                    return Err(format!(
                        "* GenerateContentRequest.contents[{i}]: function response '{name}' does not answer a function call of the previous turn"
                    ));
                }
                if !response.get("response").is_some_and(Value::is_object) {
                    return Err(format!(
                        "* GenerateContentRequest.contents[{i}].parts.function_response.response: must be an object"
                    ));
                }
                answered.push(name.to_string());
            }
        }
        if !called.is_empty() && answered.len() != called.len() {
            return Err(
                "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."
                    .into(),
            );
        }
        called = parts
            .iter()
            .filter_map(|part| part.get("functionCall"))
            .map(|call| non_empty_str(call, "/name").unwrap_or_default().to_string())
            .collect();
        if role != "model" && !called.is_empty() {
            return Err(format!(
                "* GenerateContentRequest.contents[{i}]: function calls are only allowed in model turns"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_results_must_answer_the_previous_calls() {
        let call = json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]});
        let ok = json!({"messages": [
            {"role": "user", "content": "x"}, call,
            {"role": "tool", "tool_call_id": "c1", "content": "r"}
        ]});
        assert_eq!(check_openai(&ok), Ok(()));
        let orphan = json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "c1", "content": "r"}
        ]});
        assert!(check_openai(&orphan).unwrap_err().contains("preceeding"));
        let unanswered = json!({"messages": [{"role": "user", "content": "x"}, call]});
        assert!(check_openai(&unanswered).unwrap_err().contains("c1"));
        let anthropic_tools = json!({"messages": [], "tools": [{"name": "f", "input_schema": {}}]});
        assert!(check_openai(&anthropic_tools).is_err());
        let choice_without_tools = json!({"messages": [], "tool_choice": "auto"});
        assert!(check_openai(&choice_without_tools).is_err());
    }

    #[test]
    fn anthropic_results_must_follow_their_tool_use() {
        let tool_use = json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
        ]});
        let ok = json!({"messages": [
            {"role": "user", "content": "x"}, tool_use,
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}
        ]});
        assert_eq!(check_anthropic(&ok), Ok(()));
        let wrong_id = json!({"messages": [
            {"role": "user", "content": "x"}, tool_use,
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "r"}]}
        ]});
        assert!(check_anthropic(&wrong_id).unwrap_err().contains("t2"));
        let openai_tools = json!({"messages": [], "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {}}}
        ]});
        assert!(check_anthropic(&openai_tools).is_err());
    }

    #[test]
    fn gemini_responses_must_match_the_calls() {
        let call = json!({"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]});
        let ok = json!({"contents": [
            {"role": "user", "parts": [{"text": "x"}]}, call,
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "r"}}}]}
        ]});
        assert_eq!(check_gemini(&ok), Ok(()));
        let wrong_name = json!({"contents": [
            {"role": "user", "parts": [{"text": "x"}]}, call,
            {"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {}}}]}
        ]});
        assert!(check_gemini(&wrong_name).is_err());
        let missing = json!({"contents": [
            {"role": "user", "parts": [{"text": "x"}]}, call,
            {"role": "user", "parts": [{"text": "no answer"}]}
        ]});
        assert!(
            check_gemini(&missing)
                .unwrap_err()
                .contains("number of function response")
        );
    }
}
