//! Every route whose document says its body is an object answers a JSON
//! array with 400 and says why: serde would otherwise read a struct from an
//! array by position (`host/api/src/extract/objects.rs`).

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use tower::ServiceExt;

/// A value of the parameter's type that the path or query extractor accepts.
fn parameter_value(path: &str, schema: &Value) -> &'static str {
    // Provider routes check the name before the body, so an unknown one is a
    // 404 whatever was sent.
    if path.starts_with("/api/providers/") {
        return "openai";
    }
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (_, Some("uuid")) => "00000000-0000-0000-0000-000000000001",
        (Some("integer" | "number"), _) => "1",
        (Some("boolean"), _) => "true",
        _ => "x",
    }
}

/// The request `operation` on `path` with an array body, or `None` when its
/// documented body is not an object with fields.
fn array_request(
    doc: &Value,
    method: &str,
    path: &str,
    operation: &Value,
) -> Option<Request<Body>> {
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    let schema = match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next()?;
            &doc["components"]["schemas"][name]
        }
        None => schema,
    };
    schema["properties"].as_object()?;
    let mut uri = path.to_string();
    let mut query = Vec::new();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        let name = parameter["name"].as_str()?;
        let value = parameter_value(path, &parameter["schema"]);
        match parameter["in"].as_str() {
            Some("path") => uri = uri.replace(&format!("{{{name}}}"), value),
            Some("query") if parameter["required"] == true => query.push(format!("{name}={value}")),
            _ => {}
        }
    }
    if !query.is_empty() {
        uri = format!("{uri}?{}", query.join("&"));
    }
    Request::builder()
        .method(method.to_uppercase().as_str())
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from("[null, null]"))
        .ok()
}

#[tokio::test]
async fn an_array_for_an_object_body_is_a_400_on_every_route() {
    let home = tempfile::tempdir().expect("temporary home");
    let kernel = talon_kernel::Kernel::boot(
        talon_kernel::home::Home::new(home.path()),
        None,
        Default::default(),
    )
    .expect("boot");
    let app = talon_api::server::app(talon_api::state::AppState::new(std::sync::Arc::new(kernel)));
    let doc = serde_json::to_value(talon_api::server::openapi()).expect("document as JSON");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let Some(request) = array_request(&doc, method, path, operation) else {
                continue;
            };
            checked += 1;
            let response = app.clone().oneshot(request).await.expect("answer");
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("body");
            let body = String::from_utf8_lossy(&body);
            if status != 400 || !body.contains("expected a JSON object, not an array") {
                wrong.push(format!("{method} {path}: {status} {body}"));
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} routes with object bodies found"
    );
    assert!(
        wrong.is_empty(),
        "routes that did not refuse an array body:\n{}",
        wrong.join("\n")
    );
}
