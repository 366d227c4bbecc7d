//! `/mcp`: Talon as an MCP server (streamable HTTP, `talon_mcp`), serving the
//! tools and agents `[mcp_server]` exposes through the kernel's tool path.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use talon_kernel::Kernel;
use talon_kernel::config::{McpServerEntry, McpTransport};
use talon_kernel::conversation::MessageInput;
use talon_kernel::mcp::catalog;
use talon_kernel::store::audit::AuditEvent;
use talon_mcp::{CallOutcome, Endpoint, EndpointConfig, Host, HostError, ToolSpec};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Tool names of agents: `agent_<name>`.
const AGENT_PREFIX: &str = "agent_";

/// The MCP endpoint for `state`'s kernel: built once per application, so
/// every request shares its sessions.
pub fn endpoint_for(state: &AppState) -> Endpoint {
    let config = state.kernel.config();
    // Without a key, only loopback Host headers are answered (a page on
    // another site cannot reach the daemon through DNS rebinding); a key
    // guards a daemon reached under any name.
    let allowed_hosts = config.api_key.is_empty().then(|| {
        vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ]
    });
    Endpoint::new(
        Arc::new(KernelHost {
            kernel: state.kernel.clone(),
        }),
        EndpointConfig {
            max_body_bytes: config.limits.max_body_bytes,
            allowed_hosts,
            shutdown: state.shutdown.clone(),
        },
    )
}

/// The MCP endpoint (streamable HTTP): `POST` a JSON-RPC message, `GET` the
/// session's server-to-client stream, `DELETE` to end the session. Closed
/// (403) unless `mcp_server.enabled`; lists and calls only what
/// `mcp_server.allowlist` names.
#[utoipa::path(method(get, post, delete), path = "/mcp", tag = "mcp",
    request_body(content = Object, description = "One JSON-RPC 2.0 message (POST)"),
    responses((status = 200, description = "The JSON-RPC answer, as JSON or an SSE stream (`text/event-stream`)", body = JsonRpcMessage),
              (status = 202, description = "A notification or response was accepted"),
              (status = 400, description = "Malformed JSON-RPC: `{jsonrpc, id, error: {code: -32700 | -32600 | -32602, message}}`, or a missing session id", body = JsonRpcMessage),
              (status = 403, description = "The MCP server is closed (`mcp_server.enabled = false`)"),
              (status = 404, description = "Unknown session, or an unknown method (`error.code: -32601`)"),
              (status = 406, description = "The Accept header allows neither JSON nor SSE"),
              (status = 413, description = "The message is larger than `limits.max_body_bytes` (`error.code: -32600`)", body = JsonRpcMessage),
              (status = 415, description = "The body is not `application/json`")))]
pub async fn endpoint(
    State(state): State<AppState>,
    Extension(endpoint): Extension<Endpoint>,
    request: Request,
) -> Response {
    let method = request.method();
    if method != axum::http::Method::GET
        && method != axum::http::Method::POST
        && method != axum::http::Method::DELETE
    {
        let mut refused =
            ApiError::MethodNotAllowed(format!("/mcp takes GET, POST or DELETE, not {method}"))
                .into_response();
        refused.headers_mut().insert(
            axum::http::header::ALLOW,
            axum::http::HeaderValue::from_static("GET, POST, DELETE"),
        );
        return refused;
    }
    if !state.kernel.config().mcp_server.enabled {
        return ApiError::Forbidden(
            "the MCP server is closed: set mcp_server.enabled = true and list what it exposes in mcp_server.allowlist"
                .into(),
        )
        .into_response();
    }
    endpoint.handle(request).await
}

/// The kernel as the MCP server sees it.
struct KernelHost {
    kernel: Arc<Kernel>,
}

impl KernelHost {
    async fn exposed(&self) -> Result<Vec<ToolSpec>, HostError> {
        let config = self.kernel.config();
        let allow = &config.mcp_server;
        let mut specs: Vec<ToolSpec> = (self.kernel.plugins().tools().into_iter())
            .filter(|t| allow.allows(&t.name))
            .map(|t| ToolSpec {
                input_schema: match t.input_schema {
                    Value::Object(schema) => schema,
                    _ => object_schema(Map::new(), &[]),
                },
                name: t.name,
                description: t.description,
            })
            .collect();
        let agents =
            (self.kernel.agents().list().await).map_err(|e| HostError::Internal(e.to_string()))?;
        for agent in agents {
            let name = format!("{AGENT_PREFIX}{}", agent.manifest.name);
            if allow.allows(&name) {
                let mut properties = Map::new();
                properties.insert(
                    "message".into(),
                    serde_json::json!({ "type": "string", "description": "The message for the agent" }),
                );
                specs.push(ToolSpec {
                    name,
                    description: format!(
                        "Send a message to the agent {} and get its answer. {}",
                        agent.manifest.name, agent.manifest.description
                    ),
                    input_schema: object_schema(properties, &["message"]),
                });
            }
        }
        Ok(specs)
    }

    async fn call_tool(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallOutcome, HostError> {
        let (_, invocation) = self
            .kernel
            .plugins()
            .invoke_tool(name, &Value::Object(arguments).to_string(), None)
            .await
            .map_err(|e| match e {
                talon_kernel::KernelError::NotFound(_) => HostError::UnknownTool(name.to_string()),
                other => HostError::Internal(other.to_string()),
            })?;
        Ok(match invocation.result {
            Ok(text) => CallOutcome::Ok(text),
            Err(error) => CallOutcome::Failed(format!("{} ({})", error, error.kind())),
        })
    }

    async fn call_agent(
        &self,
        agent: &str,
        arguments: &Map<String, Value>,
    ) -> Result<CallOutcome, HostError> {
        let Some(id) = (self.kernel.agents().id_by_name(agent.to_string()).await)
            .map_err(|e| HostError::Internal(e.to_string()))?
        else {
            return Err(HostError::UnknownTool(format!("{AGENT_PREFIX}{agent}")));
        };
        let Some(message) = arguments.get("message").and_then(Value::as_str) else {
            return Err(HostError::InvalidArguments(
                "an agent tool takes {\"message\": \"...\"}".into(),
            ));
        };
        let input = MessageInput {
            text: message.to_string(),
            ..MessageInput::default()
        };
        Ok(
            match self.kernel.conversations().send_message(id, input).await {
                Ok(reply) => CallOutcome::Ok(reply.response),
                // The agent could not answer (stopped, over budget, provider
                // down): the caller's model reads why.
                Err(error) => CallOutcome::Failed(error.to_string()),
            },
        )
    }
}

impl Host for KernelHost {
    fn tools(&self) -> BoxFuture<'_, Result<Vec<ToolSpec>, HostError>> {
        Box::pin(self.exposed())
    }

    fn call(
        &self,
        name: String,
        arguments: Map<String, Value>,
    ) -> BoxFuture<'_, Result<CallOutcome, HostError>> {
        Box::pin(async move {
            // Unexposed names answer exactly as missing ones.
            if !self.kernel.config().mcp_server.allows(&name) {
                return Err(HostError::UnknownTool(name));
            }
            let outcome = match name.strip_prefix(AGENT_PREFIX) {
                Some(agent) if self.kernel.plugins().tool(&name).is_err() => {
                    self.call_agent(agent, &arguments).await
                }
                _ => self.call_tool(&name, arguments).await,
            };
            let mut event = AuditEvent::new("mcp_tool_call", format!("tool={name}"));
            event.outcome = match &outcome {
                Ok(CallOutcome::Ok(_)) => "ok".into(),
                Ok(CallOutcome::Failed(reason)) => reason.clone(),
                Err(error) => error.to_string(),
            };
            // Unsynced: a durable commit per call would cost several times
            // the call itself (docs/BENCHMARKS.md, MCP); the entry is in the
            // chain before the answer leaves, and on disk with the next sync.
            if let Err(error) = self.kernel.audit_unsynced(event).await {
                tracing::warn!(%error, tool = %name, "an MCP tool call could not be audited");
            }
            outcome
        })
    }
}

/// An object schema with `properties` and `required`.
fn object_schema(properties: Map<String, Value>, required: &[&str]) -> Map<String, Value> {
    let mut schema = Map::new();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert(
        "required".into(),
        required.iter().map(|r| Value::from(*r)).collect(),
    );
    schema
}

/// The MCP servers agents use (`[mcp_servers.<name>]`) and their state.
#[utoipa::path(get, path = "/api/mcp/servers", tag = "mcp",
    responses((status = 200, description = "Every configured server with its state", body = McpServerList)))]
pub async fn list_servers(State(state): State<AppState>) -> crate::extract::Json<McpServerList> {
    let servers = server_views(&state).await;
    crate::extract::Json(McpServerList {
        total: servers.len(),
        servers,
    })
}

/// One configured MCP server and its state.
#[utoipa::path(get, path = "/api/mcp/servers/{name}", tag = "mcp",
    params(("name" = String, Path, description = "Server name")),
    responses((status = 200, description = "The server's configuration and state", body = McpServerView),
              (status = 404, description = "No such server")))]
pub async fn get_server(
    State(state): State<AppState>,
    crate::extract::Path(name): crate::extract::Path<String>,
) -> Result<crate::extract::Json<McpServerView>, ApiError> {
    (server_views(&state).await.into_iter())
        .find(|s| s.state.name == name)
        .map(crate::extract::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no MCP server named {name}")))
}

/// Stops the server (if running) and starts it again now.
#[utoipa::path(post, path = "/api/mcp/servers/{name}/reconnect", tag = "mcp",
    params(("name" = String, Path, description = "Server name")),
    responses((status = 200, description = "The server's state after the new handshake", body = McpServerState),
              (status = 404, description = "No such server"),
              (status = 502, description = "The server could not be started or did not complete the handshake")))]
pub async fn reconnect(
    State(state): State<AppState>,
    crate::extract::Path(name): crate::extract::Path<String>,
) -> Result<crate::extract::Json<McpServerState>, ApiError> {
    if !state.kernel.config().mcp_servers.contains_key(&name) {
        return Err(ApiError::NotFound(format!("no MCP server named {name}")));
    }
    match state.kernel.mcp().reconnect(&name).await {
        Ok(status) => Ok(crate::extract::Json(status.into())),
        Err(message) => Err(ApiError::Upstream {
            status: axum::http::StatusCode::BAD_GATEWAY,
            message,
        }),
    }
}

/// Every configured server's health.
#[utoipa::path(get, path = "/api/mcp/health", tag = "mcp",
    responses((status = 200, description = "Every configured server's state", body = McpHealth)))]
pub async fn health(State(state): State<AppState>) -> crate::extract::Json<McpHealth> {
    let servers: Vec<McpServerState> = (state.kernel.mcp().status().await.into_iter())
        .map(McpServerState::from)
        .collect();
    let connected = servers.iter().filter(|s| s.status == "connected").count();
    crate::extract::Json(McpHealth {
        total: servers.len(),
        connected,
        servers,
    })
}

/// Status plus configuration (never `env` values or tokens: they may be
/// secrets).
async fn server_views(state: &AppState) -> Vec<McpServerView> {
    let config = state.kernel.config();
    let mut views = Vec::new();
    for status in state.kernel.mcp().status().await {
        let entry = config.mcp_servers.get(&status.name);
        views.push(McpServerView {
            transport: entry
                .map(|e| transport_name(e.transport))
                .unwrap_or("stdio"),
            url: entry.map(|e| e.url.clone()).unwrap_or_default(),
            auth: entry.is_some_and(|e| !e.auth_secret.is_empty()),
            command: entry.map(|e| e.command.clone()).unwrap_or_default(),
            args: entry.map(|e| e.args.clone()).unwrap_or_default(),
            env: entry
                .map(|e| e.env.keys().cloned().collect())
                .unwrap_or_default(),
            timeout_secs: entry.map(|e| e.timeout_secs).unwrap_or_default(),
            state: status.into(),
        });
    }
    views
}

/// One JSON-RPC 2.0 message: a request or notification (`method`,
/// `params`), or a response (`result` or `error`).
#[derive(Debug, Serialize, ToSchema)]
pub struct JsonRpcMessage {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The request's id (a string or number); absent on notifications,
    /// `null` when the request could not be read.
    #[schema(value_type = Option<Object>)]
    pub id: Option<Value>,
    /// A request's method.
    pub method: Option<String>,
    /// A request's parameters.
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
    /// A successful response's result.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// A failed response's error.
    pub error: Option<JsonRpcError>,
}

/// A JSON-RPC error: the spec's code (-32700 parse error, -32600 invalid
/// request, -32601 unknown method, -32602 invalid params) and a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct JsonRpcError {
    /// The error code.
    pub code: i64,
    /// What went wrong.
    pub message: String,
    /// More detail, when there is any.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// A configured MCP server's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct McpServerState {
    /// Its name (`[mcp_servers.<name>]`).
    pub name: String,
    /// `connected`, `disconnected` (not started yet) or `failed`.
    pub status: &'static str,
    /// Tools it offered when it connected.
    pub tools: Vec<String>,
    /// The last failure, if any.
    pub error: Option<String>,
    /// Failures in a row.
    pub failures: u32,
}

impl From<talon_kernel::mcp::ServerStatus> for McpServerState {
    fn from(s: talon_kernel::mcp::ServerStatus) -> Self {
        Self {
            name: s.name,
            status: s.status,
            tools: s.tools,
            error: s.error,
            failures: s.failures,
        }
    }
}

/// A configured MCP server: its state and how it is started.
#[derive(Debug, Serialize, ToSchema)]
pub struct McpServerView {
    /// Its state.
    #[serde(flatten)]
    pub state: McpServerState,
    /// How Talon reaches it: `stdio` (a child process), `http` (streamable
    /// HTTP) or `sse` (legacy HTTP+SSE).
    pub transport: &'static str,
    /// Its URL (`http`, `sse`).
    pub url: String,
    /// Whether a bearer token is sent (kept in the secrets file, never shown).
    pub auth: bool,
    /// The program.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Names of the variables set for it (never their values).
    pub env: Vec<String>,
    /// Per call, and for start and handshake, in seconds.
    pub timeout_secs: u64,
}

/// `GET /api/mcp/servers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct McpServerList {
    /// How many servers are configured.
    pub total: usize,
    /// Each of them.
    pub servers: Vec<McpServerView>,
}

/// `GET /api/mcp/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct McpHealth {
    /// How many servers are configured.
    pub total: usize,
    /// How many are connected.
    pub connected: usize,
    /// Each one's state.
    pub servers: Vec<McpServerState>,
}

fn transport_name(transport: McpTransport) -> &'static str {
    match transport {
        McpTransport::Stdio => "stdio",
        McpTransport::Http => "http",
        McpTransport::Sse => "sse",
    }
}

/// Longest server name: it is part of every tool name (`mcp_<server>_<tool>`).
const MAX_NAME_LEN: usize = 48;

/// Longest bearer token accepted.
const MAX_TOKEN_LEN: usize = 8192;

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::BadRequest(format!(
            "a server name is 1 to {MAX_NAME_LEN} letters, digits, `-` or `_`"
        )));
    }
    Ok(())
}

/// How a server is reached: LibreFang's `"stdio"`, or its
/// `{"type": "stdio", "command": ..., "args": [...]}` / `{"type": "http",
/// "url": ...}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TransportField {
    /// `stdio`, `http` or `sse`.
    Name(TransportName),
    /// The transport with its settings.
    Spec(TransportSpec),
}

/// A transport's name.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransportName {
    /// A child process on stdio.
    Stdio,
    /// Streamable HTTP.
    Http,
    /// Legacy HTTP+SSE.
    Sse,
}

impl From<TransportName> for McpTransport {
    fn from(name: TransportName) -> Self {
        match name {
            TransportName::Stdio => McpTransport::Stdio,
            TransportName::Http => McpTransport::Http,
            TransportName::Sse => McpTransport::Sse,
        }
    }
}

/// A transport with its settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransportSpec {
    /// `stdio`, `http` or `sse`.
    #[serde(rename = "type")]
    pub kind: TransportName,
    /// The program (stdio).
    pub command: Option<String>,
    /// Its arguments (stdio).
    pub args: Option<Vec<String>>,
    /// The URL (http, sse).
    pub url: Option<String>,
}

/// Body of `POST /api/mcp/servers` and `PUT /api/mcp/servers/{name}`: a
/// catalog template (`template_id`, `credentials`) or a raw spec. A token
/// goes to the secrets file, never to `config.toml`, and is never shown.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerRequest {
    /// The server's name (`POST`; the path's for `PUT`). Defaults to the
    /// template's id.
    pub name: Option<String>,
    /// A catalog entry to start from (`GET /api/mcp/catalog`).
    pub template_id: Option<String>,
    /// The template's required settings by name: `token` is the bearer
    /// token, others are set in the server's environment.
    pub credentials: Option<BTreeMap<String, String>>,
    /// How it is reached.
    pub transport: Option<TransportField>,
    /// The program (stdio).
    pub command: Option<String>,
    /// Its arguments (stdio).
    pub args: Option<Vec<String>>,
    /// Its URL (http, sse).
    pub url: Option<String>,
    /// Variables set for it (stdio).
    pub env: Option<BTreeMap<String, String>>,
    /// The daemon's variables passed through to it (stdio).
    pub env_passthrough: Option<Vec<String>>,
    /// Its working directory (stdio).
    pub cwd: Option<String>,
    /// Per call, and for start and handshake, in seconds (1 to 3600).
    pub timeout_secs: Option<u64>,
    /// A bearer token for an http or sse server.
    pub auth_token: Option<String>,
}

/// The entry a request describes, starting from `base` (the current entry
/// for `PUT`), and the token it carries.
fn entry_from(
    request: McpServerRequest,
    base: McpServerEntry,
) -> Result<(McpServerEntry, Option<String>), ApiError> {
    let mut token = request.auth_token;
    let mut entry = base;
    if let Some(id) = &request.template_id {
        let template = catalog::find(id)
            .ok_or_else(|| ApiError::BadRequest(format!("no catalog entry {id}")))?;
        entry = template.to_entry();
        let mut credentials = request.credentials.unwrap_or_default();
        for required in template.required_env {
            let Some(value) = credentials.remove(required.name) else {
                return Err(ApiError::BadRequest(format!(
                    "template {id} needs `credentials.{}` ({})",
                    required.name, required.label
                )));
            };
            if required.name == "token" {
                token = Some(value);
            } else {
                entry.env.insert(required.name.to_string(), value);
            }
        }
        if let Some(extra) = credentials.keys().next() {
            return Err(ApiError::BadRequest(format!(
                "template {id} takes no credential `{extra}`"
            )));
        }
    } else if request.credentials.is_some() {
        return Err(ApiError::BadRequest(
            "`credentials` go with a `template_id`".into(),
        ));
    }
    match request.transport {
        Some(TransportField::Name(kind)) => entry.transport = kind.into(),
        Some(TransportField::Spec(spec)) => {
            entry.transport = spec.kind.into();
            if let Some(command) = spec.command {
                entry.command = command;
            }
            if let Some(args) = spec.args {
                entry.args = args;
            }
            if let Some(url) = spec.url {
                entry.url = url;
            }
        }
        None => {}
    }
    if let Some(command) = request.command {
        entry.command = command;
    }
    if let Some(args) = request.args {
        entry.args = args;
    }
    if let Some(url) = request.url {
        entry.url = url;
    }
    if let Some(env) = request.env {
        entry.env.extend(env);
    }
    if let Some(vars) = request.env_passthrough {
        entry.env_passthrough = vars;
    }
    if let Some(cwd) = request.cwd {
        entry.cwd = cwd;
    }
    if let Some(secs) = request.timeout_secs {
        entry.timeout_secs = secs;
    }
    if entry.transport == McpTransport::Stdio {
        if token.is_some() {
            return Err(ApiError::BadRequest(
                "a stdio server takes no `auth_token`: give it `env` instead".into(),
            ));
        }
        entry.url.clear();
        entry.auth_secret.clear();
    } else {
        entry.command.clear();
        entry.args.clear();
    }
    if let Some(token) = &token
        && (token.is_empty() || token.len() > MAX_TOKEN_LEN || token.chars().any(char::is_control))
    {
        return Err(ApiError::BadRequest(format!(
            "`auth_token` must be 1 to {MAX_TOKEN_LEN} printable characters"
        )));
    }
    entry.check().map_err(ApiError::BadRequest)?;
    Ok((entry, token))
}

/// Writes `entry` (and its token) for `name` and applies the new config;
/// nothing is left half-written when the config is refused.
async fn save(
    state: &AppState,
    name: &str,
    mut entry: McpServerEntry,
    token: Option<String>,
) -> Result<McpServerView, ApiError> {
    let providers = state.kernel.providers();
    if let Some(token) = token {
        entry.auth_secret = name.to_string();
        providers.set_mcp_secret(name, Some(token)).await?;
    }
    let value = serde_json::to_value(&entry)
        .map_err(|e| ApiError::BadRequest(format!("cannot write the server: {e}")))?;
    if let Err(error) = state
        .kernel
        .set_config_table("mcp_servers", name, Some(value))
        .await
    {
        if entry.auth_secret == name
            && !(state.kernel.config().mcp_servers.get(name)).is_some_and(|e| e.auth_secret == name)
        {
            let _ = providers.set_mcp_secret(name, None).await;
        }
        return Err(error.into());
    }
    (server_views(state).await.into_iter())
        .find(|s| s.state.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no MCP server named {name}")))
}

/// Adds an MCP server (to `config.toml`; a token to the secrets file); its
/// tools reach the agents that name it at their next turn.
#[utoipa::path(post, path = "/api/mcp/servers", tag = "mcp", request_body = McpServerRequest,
    responses((status = 200, description = "The new server (not connected yet)", body = McpServerView),
              (status = 400, description = "A bad name, unknown template, missing credential, or an invalid spec"),
              (status = 409, description = "A server with that name exists")))]
pub async fn add_server(
    State(state): State<AppState>,
    crate::extract::Json(request): crate::extract::Json<McpServerRequest>,
) -> Result<crate::extract::Json<McpServerView>, ApiError> {
    let name = (request.name.clone())
        .or_else(|| request.template_id.clone())
        .ok_or_else(|| ApiError::BadRequest("`name` is required".into()))?;
    check_name(&name)?;
    if state.kernel.config().mcp_servers.contains_key(&name) {
        return Err(ApiError::Conflict(format!(
            "an MCP server named {name} exists: PUT /api/mcp/servers/{name} to change it"
        )));
    }
    let (entry, token) = entry_from(request, McpServerEntry::default())?;
    Ok(crate::extract::Json(
        save(&state, &name, entry, token).await?,
    ))
}

/// Changes an MCP server; fields left out keep their values (the token
/// too). The server is reconnected at its next use.
#[utoipa::path(put, path = "/api/mcp/servers/{name}", tag = "mcp", request_body = McpServerRequest,
    params(("name" = String, Path, description = "Server name")),
    responses((status = 200, description = "The changed server", body = McpServerView),
              (status = 400, description = "An invalid spec"),
              (status = 404, description = "No such server")))]
pub async fn update_server(
    State(state): State<AppState>,
    crate::extract::Path(name): crate::extract::Path<String>,
    crate::extract::Json(request): crate::extract::Json<McpServerRequest>,
) -> Result<crate::extract::Json<McpServerView>, ApiError> {
    let Some(current) = state.kernel.config().mcp_servers.get(&name).cloned() else {
        return Err(ApiError::NotFound(format!("no MCP server named {name}")));
    };
    let (entry, token) = entry_from(request, current)?;
    Ok(crate::extract::Json(
        save(&state, &name, entry, token).await?,
    ))
}

/// Removes an MCP server (and its token), closing its connection.
#[utoipa::path(delete, path = "/api/mcp/servers/{name}", tag = "mcp",
    params(("name" = String, Path, description = "Server name")),
    responses((status = 200, description = "`{status: removed, name}`", body = McpServerRemoved),
              (status = 404, description = "No such server")))]
pub async fn remove_server(
    State(state): State<AppState>,
    crate::extract::Path(name): crate::extract::Path<String>,
) -> Result<crate::extract::Json<McpServerRemoved>, ApiError> {
    let Some(current) = state.kernel.config().mcp_servers.get(&name).cloned() else {
        return Err(ApiError::NotFound(format!("no MCP server named {name}")));
    };
    state
        .kernel
        .set_config_table("mcp_servers", &name, None)
        .await?;
    if current.auth_secret == name {
        state.kernel.providers().set_mcp_secret(&name, None).await?;
    }
    state.kernel.mcp().reset(false).await;
    Ok(crate::extract::Json(McpServerRemoved {
        status: "removed",
        name,
    }))
}

/// Re-reads `config.toml` and reconnects every MCP server now.
#[utoipa::path(post, path = "/api/mcp/reload", tag = "mcp",
    responses((status = 200, description = "Every server's state after reconnecting", body = McpHealth),
              (status = 400, description = "The config file is invalid (the old config is kept)")))]
pub async fn reload(
    State(state): State<AppState>,
) -> Result<crate::extract::Json<McpHealth>, ApiError> {
    state.kernel.reload_config().await?;
    state.kernel.mcp().reset(true).await;
    let servers: Vec<McpServerState> = (state.kernel.mcp().connect_all().await.into_iter())
        .map(McpServerState::from)
        .collect();
    let connected = servers.iter().filter(|s| s.status == "connected").count();
    Ok(crate::extract::Json(McpHealth {
        total: servers.len(),
        connected,
        servers,
    }))
}

/// The built-in catalog of well-known MCP servers.
#[utoipa::path(get, path = "/api/mcp/catalog", tag = "mcp",
    responses((status = 200, description = "`{entries, total}`", body = McpCatalog)))]
pub async fn list_catalog() -> crate::extract::Json<McpCatalog> {
    let entries: Vec<McpCatalogEntry> =
        catalog::CATALOG.iter().map(McpCatalogEntry::from).collect();
    crate::extract::Json(McpCatalog {
        total: entries.len(),
        entries,
    })
}

/// One catalog entry.
#[utoipa::path(get, path = "/api/mcp/catalog/{id}", tag = "mcp",
    params(("id" = String, Path, description = "Catalog entry id")),
    responses((status = 200, description = "The entry", body = McpCatalogEntry),
              (status = 404, description = "No such entry")))]
pub async fn get_catalog_entry(
    crate::extract::Path(id): crate::extract::Path<String>,
) -> Result<crate::extract::Json<McpCatalogEntry>, ApiError> {
    catalog::find(&id)
        .map(|e| crate::extract::Json(McpCatalogEntry::from(e)))
        .ok_or_else(|| ApiError::NotFound(format!("no catalog entry {id}")))
}

/// The MCP servers an agent uses, and those it could.
#[utoipa::path(get, path = "/api/agents/{id}/mcp_servers", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{agent_id, mcp_servers, available}`", body = AgentMcpServers),
              (status = 404, description = "No such agent")))]
pub async fn agent_servers(
    State(state): State<AppState>,
    crate::extract::Path(id): crate::extract::Path<Uuid>,
) -> Result<crate::extract::Json<AgentMcpServers>, ApiError> {
    let agent = state.kernel.agents().get(id).await?;
    Ok(crate::extract::Json(AgentMcpServers {
        agent_id: id,
        mcp_servers: agent.manifest.mcp_servers,
        available: state.kernel.config().mcp_servers.keys().cloned().collect(),
    }))
}

/// Body of `PUT /api/agents/{id}/mcp_servers`: LibreFang's bare array of
/// server names, or `{"mcp_servers": [...]}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AgentMcpServersRequest {
    /// `["everything", ...]`.
    Names(Vec<String>),
    /// `{"mcp_servers": [...]}`.
    Object {
        /// The server names.
        mcp_servers: Vec<String>,
    },
}

/// Replaces the MCP servers an agent uses (each must be configured).
#[utoipa::path(put, path = "/api/agents/{id}/mcp_servers", tag = "agents", request_body = AgentMcpServersRequest,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{agent_id, mcp_servers, available}`", body = AgentMcpServers),
              (status = 400, description = "Not a list of names, or a name no server has"),
              (status = 404, description = "No such agent"),
              (status = 409, description = "Stable mode")))]
pub async fn set_agent_servers(
    State(state): State<AppState>,
    crate::extract::Path(id): crate::extract::Path<Uuid>,
    crate::extract::Json(body): crate::extract::Json<AgentMcpServersRequest>,
) -> Result<crate::extract::Json<AgentMcpServers>, ApiError> {
    let (AgentMcpServersRequest::Names(names)
    | AgentMcpServersRequest::Object { mcp_servers: names }) = body;
    let config = state.kernel.config();
    if let Some(unknown) = names.iter().find(|n| !config.mcp_servers.contains_key(*n)) {
        return Err(ApiError::BadRequest(format!(
            "no MCP server named {unknown} is configured"
        )));
    }
    let record = state
        .kernel
        .agents()
        .edit_manifest(id, vec![("mcp_servers".into(), names.into())])
        .await?;
    Ok(crate::extract::Json(AgentMcpServers {
        agent_id: id,
        mcp_servers: record.manifest.mcp_servers,
        available: config.mcp_servers.keys().cloned().collect(),
    }))
}

/// `DELETE /api/mcp/servers/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct McpServerRemoved {
    /// `removed`.
    pub status: &'static str,
    /// The server.
    pub name: String,
}

/// `GET /api/agents/{id}/mcp_servers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentMcpServers {
    /// The agent.
    pub agent_id: Uuid,
    /// The servers whose tools it gets.
    pub mcp_servers: Vec<String>,
    /// Every configured server.
    pub available: Vec<String>,
}

/// A setting a catalog server needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct McpCatalogEnv {
    /// The credential's name (`token` for a bearer token).
    pub name: &'static str,
    /// What it is.
    pub label: &'static str,
    /// Where to get it.
    pub help: &'static str,
    /// Whether it is a secret.
    pub is_secret: bool,
}

/// One well-known MCP server and how to start it.
#[derive(Debug, Serialize, ToSchema)]
pub struct McpCatalogEntry {
    /// Its id (`template_id` in `POST /api/mcp/servers`).
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// What it offers.
    pub description: &'static str,
    /// A coarse category.
    pub category: &'static str,
    /// `stdio`, `http` or `sse`.
    pub transport: &'static str,
    /// The program (stdio).
    pub command: &'static str,
    /// Its arguments (stdio).
    pub args: Vec<&'static str>,
    /// Its URL (http, sse).
    pub url: &'static str,
    /// The credentials to give in `credentials`.
    pub required_env: Vec<McpCatalogEnv>,
    /// How to set it up.
    pub setup_instructions: &'static str,
    /// Its documentation.
    pub homepage: &'static str,
}

impl From<&catalog::CatalogEntry> for McpCatalogEntry {
    fn from(e: &catalog::CatalogEntry) -> Self {
        Self {
            id: e.id,
            name: e.name,
            description: e.description,
            category: e.category,
            transport: transport_name(e.transport),
            command: e.command,
            args: e.args.to_vec(),
            url: e.url,
            required_env: (e.required_env.iter())
                .map(|r| McpCatalogEnv {
                    name: r.name,
                    label: r.label,
                    help: r.help,
                    is_secret: r.is_secret,
                })
                .collect(),
            setup_instructions: e.setup_instructions,
            homepage: e.homepage,
        }
    }
}

/// `GET /api/mcp/catalog`.
#[derive(Debug, Serialize, ToSchema)]
pub struct McpCatalog {
    /// How many entries.
    pub total: usize,
    /// Each of them.
    pub entries: Vec<McpCatalogEntry>,
}
