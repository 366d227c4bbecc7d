//! The OpenAPI document, assembled from the handlers' `#[utoipa::path]` annotations.

use utoipa::OpenApi;

pub mod rules;

/// The document as served: `doc` as JSON, with the [`rules`] utoipa's
/// attributes cannot express; `providers` are the LLM providers the daemon
/// knows as it starts (the document is made once, on its first request).
pub fn served(doc: &utoipa::openapi::OpenApi, providers: &[String]) -> serde_json::Value {
    // Its maps have string keys, so serializing it cannot fail.
    let mut json = serde_json::to_value(doc).unwrap_or_default();
    // A rule naming nothing is caught by `rules`' test; serving goes on.
    let _missing = rules::apply(&mut json, providers);
    json
}

/// Document-level information; paths are added by the router in [`crate::server`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Talon API",
        description = "Talon agent operating system: REST API compatible with LibreFang's.",
        license(name = "MIT OR Apache-2.0")
    ),
    // Served outside the OpenAPI router (model ids may hold slashes; `/mcp` is
    // one path for three methods, served by the MCP SDK), so listed here.
    paths(crate::routes::models::get, crate::routes::models::remove_custom, crate::routes::mcp::endpoint),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health, status, version, metrics, shutdown"),
        (name = "config", description = "Configuration"),
        (name = "agents", description = "Agent registry"),
        (name = "memory", description = "Agent key-value memory"),
        (name = "audit", description = "Audit hash chain and security overview"),
        (name = "scheduler", description = "Cron jobs, schedules and their runs"),
        (name = "triggers", description = "Event triggers"),
        (name = "workflows", description = "Workflows and their runs"),
        (name = "goals", description = "Goals and sub-goals"),
        (name = "approvals", description = "Tool calls waiting for an operator; TOTP"),
        (name = "webhooks", description = "Outbound webhooks, their queue and dead letters; inbound hooks"),
        (name = "channels", description = "Chat platforms bound to agents: status, configuration, tests, dead letters"),
        (name = "hands", description = "Hands: autonomous plugins activated with settings, each driving an agent on a schedule"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme used when `api_key` is set.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The body of every error answer: `{"error": "what went wrong"}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, written for the person reading it.
    pub error: String,
}

/// Errors the shared middleware can answer on any route (see [`crate::middleware`]).
const MIDDLEWARE_ERRORS: [(&str, &str); 3] = [
    (
        "401",
        "`api_key` is set and the request carries no key or a wrong one",
    ),
    (
        "403",
        "No `api_key` is set and the client is not on this machine",
    ),
    (
        "429",
        "Rate limit spent (callers on this machine are exempt by default); `Retry-After` says when to retry",
    ),
];

/// Routes the auth middleware lets through without a key (`GET` only).
const PUBLIC_PATHS: [&str; 2] = ["/api/health", "/api/ready"];

/// Completes the assembled document with what every operation shares, so
/// each handler's annotation lists only its own outcomes: the middleware's
/// errors, 400 wherever parameters or a body are parsed, 404 wherever the
/// path names something, 413 wherever a body is read, 507 on every
/// operation that may write (the disk is full), and the `{"error"}`
/// body on every error answer.
pub fn complete(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::{PartialSchema as _, ToSchema as _};
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert("ErrorBody".into(), ErrorBody::schema());
    components.schemas.insert(
        "OpenAiErrorBody".into(),
        crate::routes::openai::OpenAiErrorBody::schema(),
    );
    let mut nested = Vec::new();
    crate::routes::openai::OpenAiErrorBody::schemas(&mut nested);
    components.schemas.extend(nested);
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation.as_mut() {
                let public = method == "get" && PUBLIC_PATHS.contains(&path.as_str());
                // The OpenAI-compatible API answers errors in OpenAI's shape.
                let error_body = if path.starts_with("/v1/") {
                    "OpenAiErrorBody"
                } else {
                    "ErrorBody"
                };
                complete_operation(operation, public, error_body, method != "get");
            }
        }
    }
}

fn complete_operation(
    operation: &mut utoipa::openapi::path::Operation,
    public: bool,
    error_body: &str,
    writes: bool,
) {
    use utoipa::openapi::{RefOr, Response};
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(Response::new(description)));
    };
    for (status, description) in MIDDLEWARE_ERRORS {
        if !(public && status == "401") {
            add(status, description);
        }
    }
    let parsed = operation.request_body.is_some()
        || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if parsed {
        add("400", "Malformed parameters or body");
    }
    let by_path = operation.parameters.as_ref().is_some_and(|params| {
        params
            .iter()
            .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path)
    });
    if by_path {
        add("404", "Nothing with that id or name");
    }
    if writes {
        add(
            "507",
            "The disk holding the data directory is full: the write was not made (reads still work)",
        );
    }
    if operation.request_body.is_some() {
        add(
            "413",
            "The body is larger than allowed (`limits.max_body_bytes`)",
        );
    }
    for (status, response) in responses.iter_mut() {
        let error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(response)) = (error, response)
            && response.content.is_empty()
        {
            response.content.insert(
                "application/json".into(),
                utoipa::openapi::Content::new(Some(utoipa::openapi::Ref::from_schema_name(
                    error_body,
                ))),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    /// `(handler, its annotation, its parameter list)` for every annotated
    /// handler in `source`.
    fn handlers(source: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for chunk in source.split("#[utoipa::path(").skip(1) {
            let Some((annotation, rest)) = chunk.split_once(")]") else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix("pub async fn ") else {
                continue;
            };
            let (name, rest) = rest.split_once('(').unwrap_or((rest, ""));
            let params = rest.split_once("->").map_or(rest, |(p, _)| p);
            out.push((name.to_string(), annotation.to_string(), params.to_string()));
        }
        out
    }

    /// A handler that parses its body into a type must document that type,
    /// not a bare `Object` (a cheap guard against the document drifting).
    #[test]
    fn typed_request_bodies_are_documented_with_their_type() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
        let mut offenders = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("routes dir") {
            let path = entry.expect("entry").path();
            let source = std::fs::read_to_string(&path).expect("read route module");
            for (name, annotation, params) in handlers(&source) {
                if !annotation.contains("request_body = Object") {
                    continue;
                }
                let Some(body_type) = params
                    .split("Json<")
                    .nth(1)
                    .and_then(|t| t.split('>').next())
                else {
                    continue;
                };
                let free_form = body_type == "serde_json::Value";
                if !free_form {
                    offenders.push(format!("{}: {name} takes {body_type}", path.display()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "request_body = Object where the handler's type could be documented:\n{}",
            offenders.join("\n")
        );
    }

    /// Answers documented as a bare `Object` (or a list of them) say
    /// nothing a client can check. Their number may only go down: lower
    /// this when you type one.
    const BARE_OBJECT_ANSWERS: usize = 132;

    #[test]
    fn bare_object_answers_do_not_grow() {
        let doc = super::served(&crate::server::openapi(), &["openai".into()]);
        let bare = serde_json::json!({ "type": "object" });
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let responses = operation["responses"].as_object().into_iter().flatten();
                for (status, response) in responses {
                    let contents = response["content"].as_object().into_iter().flatten();
                    for (_, content) in contents {
                        let schema = &content["schema"];
                        if *schema == bare || schema["items"] == bare {
                            found.push(format!("{method} {path} {status}"));
                        }
                    }
                }
            }
        }
        assert!(
            found.len() <= BARE_OBJECT_ANSWERS,
            "{} answers are documented as a bare Object (the limit is {BARE_OBJECT_ANSWERS}); give the new ones a type:\n{}",
            found.len(),
            found.join("\n")
        );
        println!("{} bare Object answers", found.len());
    }

    /// Every error answer is documented with an `{"error"}` body, and the
    /// middleware's errors are listed on every operation.
    #[test]
    fn every_operation_documents_its_errors() {
        let doc = crate::server::openapi();
        for (path, item) in &doc.paths.paths {
            for operation in [&item.get, &item.put, &item.post, &item.delete, &item.patch]
                .into_iter()
                .flatten()
            {
                let responses = &operation.responses.responses;
                assert!(responses.contains_key("429"), "{path}: no 429");
                assert!(responses.contains_key("403"), "{path}: no 403");
                for (status, response) in responses {
                    if let (true, utoipa::openapi::RefOr::T(r)) =
                        (status.starts_with('4'), response)
                    {
                        assert!(!r.content.is_empty(), "{path} {status}: no body documented");
                    }
                }
            }
        }
    }
}
