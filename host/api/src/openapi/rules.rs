//! What the handlers require that utoipa's attributes cannot say: a string
//! field's fixed set of values, one field or another, a field that another
//! one needs. Each rule adds JSON Schema keywords at one place of the served
//! document, so that a client (or a fuzzer) reading it knows what the
//! handler will refuse. Single-field limits (patterns, lengths, ranges) stay
//! in the types' `#[schema(...)]` attributes.

use serde_json::{Value, json};

/// A schema that holds when `field` is there and not `null` (the handlers
/// read a `null` field as an absent one).
fn present(field: &str) -> Value {
    json!({ "required": [field], "properties": { field: { "not": { "type": "null" } } } })
}

/// Exactly one of `fields` is given.
fn one_of(fields: &[&str]) -> Value {
    json!({ "oneOf": fields.iter().map(|f| present(f)).collect::<Vec<_>>() })
}

/// `fields` are not all given together.
fn not_together(fields: &[&str]) -> Value {
    json!({ "not": { "allOf": fields.iter().map(|f| present(f)).collect::<Vec<_>>() } })
}

/// Internally tagged enums read with `deny_unknown_fields`.
const CLOSED_VARIANTS: [&str; 2] = ["StructuredSchedule", "CronActionInput"];

/// A workflow step's `mode` is `mode`.
fn mode_is(mode: &str) -> Value {
    json!({ "required": ["mode"], "properties": { "mode": { "const": mode } } })
}

/// Of a component schema.
fn schema(name: &str) -> String {
    format!("/components/schemas/{name}")
}

/// Of a property of a component schema.
fn property(name: &str, field: &str) -> String {
    format!("/components/schemas/{name}/properties/{field}")
}

/// Of an operation.
fn operation(method: &str, path: &str) -> String {
    let path = path.replace('~', "~0").replace('/', "~1");
    format!("/paths/{path}/{method}")
}

/// Of the JSON body of an operation.
fn body(method: &str, path: &str) -> String {
    format!(
        "{}/requestBody/content/application~1json/schema",
        operation(method, path)
    )
}

/// A webhook's URL and event names as the handlers read them.
fn webhook_fields() -> Value {
    let url = json!({ "pattern": "^https?://[A-Za-z0-9.-]+(:[0-9]{1,4})?(/[!-~]*)?$" });
    let event = json!({ "pattern": "^([a-z_]{1,64}|\\*)$" });
    let secret = json!({ "minLength": 1 });
    json!({ "properties": {
        "url": url,
        "events": { "items": event, "maxItems": 64 },
        "event_type": event,
        "secret": secret,
    } })
}

/// A memory key: 1-1024 bytes without control characters (the byte limit
/// is documented as characters, which is exact for ASCII).
fn memory_key() -> Value {
    json!({ "minLength": 1, "maxLength": 1024, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$" })
}

/// `(method, path, parameter, keywords added to its schema)`.
fn parameter_rules() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let kv = "/api/memory/agents/{id}/kv/{key}";
    vec![
        ("get", kv, "key", memory_key()),
        ("put", kv, "key", memory_key()),
        ("delete", kv, "key", memory_key()),
        (
            "get",
            "/api/agents/{id}/sessions/{session_id}/trajectory",
            "format",
            json!({ "enum": ["json", "jsonl", null] }),
        ),
    ]
}

/// `(JSON pointer, keywords added there)`, one per rule; `providers` are
/// the LLM providers the daemon knows.
fn rules(providers: &[String]) -> Vec<(String, Value)> {
    let provider = json!({ "enum": providers });
    let mut or_null = providers.iter().map(|p| json!(p)).collect::<Vec<_>>();
    or_null.push(Value::Null);
    let provider_or_null = json!({ "enum": or_null });
    // A new job needs its agent and its prompt.
    let prompts: Vec<Value> = ["prompt", "message", "action"]
        .iter()
        .map(|f| present(f))
        .collect();
    let new_job = json!({ "allOf": [
        present("agent_id"),
        { "anyOf": [present("schedule"), present("cron")] },
        { "anyOf": prompts },
    ] });
    // The prompt of a cron job comes once: as `prompt`, its alias
    // `message`, or `action.message`.
    // (`prompt` and `message` are one field to serde: both, even `null`, is a duplicate.)
    let one_prompt = json!({ "not": { "anyOf": [
        { "required": ["prompt", "message"] },
        { "required": ["schedule", "cron"] },
        { "allOf": [present("prompt"), present("action")] },
        { "allOf": [present("message"), present("action")] },
    ] } });
    vec![
        // Bulk creation answers each item's mistake in its results instead.
        (
            body("post", "/api/agents"),
            one_of(&["manifest_toml", "template"]),
        ),
        (
            body("put", "/api/agents/{id}/skills"),
            json!({ "anyOf": [{ "type": "array" }, present("skills")] }),
        ),
        (
            body("post", "/v1/chat/completions"),
            json!({
                "type": "object",
                "required": ["model", "messages"],
                "properties": {
                    "model": { "type": "string", "description": "A catalog model id or alias" },
                    "messages": { "type": "array", "minItems": 1, "items": { "type": "object" } },
                },
            }),
        ),
        (
            schema("ToolsRequest"),
            not_together(&["capabilities_tools", "tools"]),
        ),
        (schema("InstallRequest"), one_of(&["path", "package"])),
        (schema("ReloadRequest"), not_together(&["path", "package"])),
        // An empty message needs an attachment.
        (
            schema("MessageRequest"),
            json!({ "anyOf": [
                { "properties": { "message": { "pattern": "\\S" } } },
                { "required": ["attachments"], "properties": { "attachments": { "minItems": 1 } } },
            ] }),
        ),
        (
            property("ModeRequest", "mode"),
            json!({ "enum": ["observe", "assist", "full", "Normal", "Stable"] }),
        ),
        (
            property("ConfigPatch", "web_search_augmentation"),
            json!({ "enum": ["off", null] }),
        ),
        (
            property("ScaffoldRequest", "language"),
            json!({ "enum": ["rust", "rs", "python", "py", "javascript", "js", null] }),
        ),
        (
            property("ScaffoldRequest", "kind"),
            json!({ "enum": ["tool", "skill", null] }),
        ),
        // Instructions are for skills only.
        (
            schema("ScaffoldRequest"),
            json!({
                "if": present("prompt_context"),
                "then": { "required": ["kind"], "properties": { "kind": { "const": "skill" } } },
            }),
        ),
        // The aliases serde reads, and the prompt given once.
        (
            schema("CronJobInput"),
            json!({ "allOf": [one_prompt], "properties": {
                "message": {
                    "type": ["string", "null"],
                    "pattern": "\\S",
                    "description": "Same as `prompt`",
                },
                "cron": {
                    "oneOf": [{ "type": "null" }, { "$ref": "#/components/schemas/ScheduleInput" }],
                    "description": "Same as `schedule`",
                },
            } }),
        ),
        (body("post", "/api/cron/jobs"), new_job.clone()),
        (body("post", "/api/schedules"), new_job),
        (
            property("ConfigPatch", "provider"),
            provider_or_null.clone(),
        ),
        (property("ModelRequest", "provider"), provider_or_null),
        (property("CustomModelBody", "provider"), provider),
        (
            property("ImportRequest", "kv"),
            json!({ "propertyNames": memory_key() }),
        ),
        // What a step needs depends on its mode (`validate` in the kernel's
        // workflows): an agent and a prompt unless it collects, a condition
        // when conditional, 1-100 iterations when a loop.
        (
            schema("Step"),
            json!({ "allOf": [
                {
                    "if": mode_is("collect"),
                    "else": { "allOf": [
                        { "anyOf": [
                            present("agent_id"),
                            { "required": ["agent_name"], "properties": { "agent_name": { "type": "string", "minLength": 1 } } },
                        ] },
                        { "properties": { "prompt": { "pattern": "\\S" } } },
                    ] },
                },
                {
                    "if": mode_is("conditional"),
                    "then": { "required": ["condition"], "properties": { "condition": { "type": "string", "minLength": 1 } } },
                },
                {
                    "if": mode_is("loop"),
                    "then": { "properties": { "max_iterations": { "minimum": 1, "maximum": 100 } } },
                },
                { "properties": { "output_var": { "not": { "const": "input" } } } },
            ] }),
        ),
        // Creating a goal needs its title; updating one does not.
        (body("post", "/api/goals"), present("title")),
        // An approval names the action it asks about.
        (
            body("post", "/api/approvals"),
            json!({ "properties": { "action": { "pattern": "\\S" } } }),
        ),
        // A trigger's prompt has some text.
        (
            body("post", "/api/triggers"),
            json!({ "properties": { "prompt_template": { "pattern": "\\S" } } }),
        ),
        // Deliveries go to http(s) URLs and name events in snake_case (or
        // `*`); an event subscription names its event and its URL (updates
        // may leave any out).
        (
            body("post", "/api/webhooks"),
            json!({ "allOf": [present("url"), webhook_fields()] }),
        ),
        (body("put", "/api/webhooks/{id}"), webhook_fields()),
        (
            body("post", "/api/webhooks/events"),
            json!({ "allOf": [present("event_type"), present("url"), webhook_fields()] }),
        ),
        (body("put", "/api/webhooks/events/{id}"), webhook_fields()),
    ]
}

/// utoipa documents `u32` as `int32` and `u64` as `int64` with `minimum: 0`,
/// which puts their top at the signed type's; serde takes up to the unsigned
/// one. The range is written out, without the format, where no maximum is set.
fn unsigned_ranges(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let unsigned = map.get("minimum").and_then(Value::as_f64) == Some(0.0)
                && !map.contains_key("maximum");
            let top = match map.get("format").and_then(Value::as_str) {
                Some("int32") if unsigned => Some(json!(u32::MAX)),
                Some("int64") if unsigned => Some(json!(u64::MAX)),
                _ => None,
            };
            if let Some(top) = top {
                map.remove("format");
                map.insert("maximum".into(), top);
            }
            map.values_mut().for_each(unsigned_ranges);
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned_ranges),
        _ => {}
    }
}

/// Adds every rule to `doc` (the served document, as JSON); answers the
/// pointers that name nothing (a renamed type), which a test keeps empty.
pub fn apply(doc: &mut Value, providers: &[String]) -> Vec<String> {
    unsigned_ranges(doc);
    let mut missing = Vec::new();
    let mut rules = rules(providers);
    for (method, path, name, keywords) in parameter_rules() {
        let parameters = doc
            .pointer(&format!("{}/parameters", operation(method, path)))
            .and_then(Value::as_array);
        match parameters.and_then(|list| list.iter().position(|p| p["name"] == name)) {
            Some(at) => rules.push((
                format!("{}/parameters/{at}/schema", operation(method, path)),
                keywords,
            )),
            None => missing.push(format!("{method} {path} {name}")),
        }
    }
    // serde's `deny_unknown_fields` on internally tagged enums, which utoipa
    // leaves open: each variant takes its own fields only.
    for name in CLOSED_VARIANTS {
        let variants = doc
            .pointer_mut(&format!("{}/oneOf", schema(name)))
            .and_then(Value::as_array_mut);
        match variants {
            Some(variants) => {
                for variant in variants.iter_mut().filter_map(Value::as_object_mut) {
                    variant.insert("additionalProperties".into(), Value::Bool(false));
                }
            }
            None => missing.push(schema(name)),
        }
    }
    for (pointer, keywords) in rules {
        let Some(target) = doc.pointer_mut(&pointer) else {
            missing.push(pointer);
            continue;
        };
        // Keywords beside a `$ref` are easy to misread: put both in `allOf`.
        if let Some(reference) = target.get("$ref").cloned() {
            *target = json!({ "allOf": [{ "$ref": reference }] });
        }
        let (Value::Object(target), Value::Object(keywords)) = (target, keywords) else {
            missing.push(pointer);
            continue;
        };
        for (key, value) in keywords {
            match (target.get_mut(&key), value) {
                // Two rules on one schema: their `allOf`s and properties add up.
                (Some(Value::Array(have)), Value::Array(more)) => have.extend(more),
                (Some(Value::Object(have)), Value::Object(more)) if key == "properties" => {
                    have.extend(more)
                }
                (_, value) => {
                    target.insert(key, value);
                }
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_names_a_place_in_the_document() {
        let mut doc = serde_json::to_value(crate::server::openapi()).expect("document as JSON");
        assert_eq!(
            super::apply(&mut doc, &["openai".into()]),
            Vec::<String>::new()
        );
    }
}
