//! LibreFang's OpenAPI document as the checker reads it: where it is, its
//! operations, and example values made from its schemas.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

/// HTTP methods an operation can have.
pub const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The shared reference folder beside the repository (`$repo/../shared`).
pub fn shared_dir() -> PathBuf {
    let repo = crate::plugins::repo();
    let shared = repo.join("../shared");
    assert!(
        shared.join("reference/librefang-openapi.json").is_file(),
        "{} is missing: the compatibility check needs LibreFang's OpenAPI document in \
         ../shared/reference beside the repository (CI copies shared/ there)",
        shared.join("reference/librefang-openapi.json").display()
    );
    shared
}

/// LibreFang's OpenAPI document.
pub fn librefang() -> Value {
    let path = shared_dir().join("reference/librefang-openapi.json");
    let text = std::fs::read_to_string(&path).expect("read LibreFang's OpenAPI document");
    serde_json::from_str(&text).expect("LibreFang's OpenAPI document is JSON")
}

/// One operation of a document.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Upper-case method.
    pub method: String,
    /// The path as the document writes it.
    pub path: String,
    /// The operation object.
    pub op: Value,
}

impl Operation {
    /// `METHOD /path`, the key of the allowlist.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Every operation of `doc`.
pub fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    op: op.clone(),
                });
            }
        }
    }
    out
}

/// A path with its parameter names erased (`/api/agents/{}`), so that two
/// documents naming a parameter differently still match.
pub fn shape(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Resolves a local `$ref` (`#/components/schemas/X`).
pub fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or(&Value::Null),
        None => schema,
    }
}

/// An example instance of `schema`: every property when `all`, else only
/// the required ones (recursively), with plain values of each type.
pub fn example(doc: &Value, schema: &Value, all: bool) -> Value {
    let schema = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let chosen = options
                .iter()
                .find(|o| o.get("type") != Some(&json!("null")))
                .unwrap_or(&Value::Null);
            return example(doc, chosen, all);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => return json!({}),
    };
    match kind {
        "object" => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut out = Map::new();
            if let Some(props) = schema["properties"].as_object() {
                for (name, prop) in props {
                    if all || required.contains(&name.as_str()) {
                        out.insert(name.clone(), example(doc, prop, all));
                    }
                }
            }
            Value::Object(out)
        }
        "array" => json!([example(doc, &schema["items"], all)]),
        "string" => match schema["enum"].as_array().and_then(|e| e.first()) {
            Some(first) => first.clone(),
            None => json!("compat"),
        },
        "integer" => json!(schema["minimum"].as_i64().unwrap_or(0).max(1)),
        "number" => json!(1.0),
        "boolean" => json!(false),
        _ => Value::Null,
    }
}

/// Applies `patch` onto `base` (objects merged key by key, `null` removes).
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    base.remove(key);
                } else {
                    merge(base.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}
