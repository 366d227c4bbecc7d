//! `/mcp`: Talon as an MCP server (streamable HTTP, `talon_mcp`), serving the
//! tools and agents `[mcp_server]` exposes through the kernel's tool path.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Map, Value};
use talon_kernel::Kernel;
use talon_kernel::conversation::MessageInput;
use talon_kernel::store::audit::AuditEvent;
use talon_mcp::{CallOutcome, Endpoint, EndpointConfig, Host, HostError, ToolSpec};
use utoipa::ToSchema;

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
            if let Err(error) = self.kernel.audit(event).await {
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

/// Status plus configuration (never `env` values: they may be secrets).
async fn server_views(state: &AppState) -> Vec<McpServerView> {
    let config = state.kernel.config();
    let mut views = Vec::new();
    for status in state.kernel.mcp().status().await {
        let entry = config.mcp_servers.get(&status.name);
        views.push(McpServerView {
            transport: "stdio",
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
    /// How Talon reaches it: `stdio` (a child process).
    pub transport: &'static str,
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
