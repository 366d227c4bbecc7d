//! Assembling the application and serving it.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, Uri};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;

use crate::connections::ConnectionLimits;
use crate::error::{ApiError, error_response};
use crate::middleware::{
    self, auth::auth, body_limit::BodyLimit, headers::security_headers, rate_limit::rate_limit,
    request_id::request_id,
};
use crate::openapi::ApiDoc;
use crate::routes::channels;
use crate::routes::comms;
use crate::routes::hands;
use crate::routes::{
    a2a, agent_settings, agents, approvals, audit, config, cron, dashboard, files, goals, logs,
    memory, messages, models, openai, plugins, sessions, skills, system, tasks, templates, tools,
    triggers, usage, webhooks, workflows, ws,
};
use crate::routing::{ApiRouter, Document, routes};
use crate::state::AppState;

/// The routes, and how to document each (see [`crate::routing`]);
/// `max_body_bytes` limits the bodies of all but the routes that carry
/// files and packages.
fn api_routes(max_body_bytes: usize) -> (Router<AppState>, Vec<Document>) {
    ApiRouter::new()
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .routes(routes!(system::health_detail))
        .routes(routes!(system::status))
        .routes(routes!(system::version))
        .routes(routes!(system::versions))
        .routes(routes!(system::metrics))
        .routes(routes!(system::shutdown))
        .routes(routes!(config::get_config))
        .routes(routes!(config::config_schema))
        .routes(routes!(config::set_config))
        .routes(routes!(config::reload_config))
        .routes(routes!(config::export_config))
        .routes(routes!(agents::list_agents, agents::spawn_agent))
        .routes(routes!(agents::get_agent, agents::kill_agent))
        .routes(routes!(agents::bulk_create, agents::bulk_delete))
        .routes(routes!(agents::bulk_start))
        .routes(routes!(agents::bulk_stop))
        .routes(routes!(agents::clone_agent))
        .routes(routes!(agents::patch_agent))
        .routes(routes!(agents::update_agent))
        .routes(routes!(agent_settings::set_mode))
        .routes(routes!(templates::list))
        .routes(routes!(templates::get))
        .routes(routes!(templates::toml))
        .routes(routes!(templates::profiles))
        .routes(routes!(templates::profile))
        .routes(routes!(agent_settings::patch_identity))
        .routes(routes!(agent_settings::patch_config))
        .routes(routes!(agent_settings::set_model))
        .routes(routes!(
            agent_settings::get_tools,
            agent_settings::put_tools
        ))
        .routes(routes!(
            agent_settings::get_skills,
            agent_settings::put_skills
        ))
        .routes(routes!(agents::traces))
        .routes(routes!(agents::metrics))
        .routes(routes!(agents::logs))
        .routes(routes!(messages::message))
        .routes(routes!(messages::message_stream))
        .routes(routes!(messages::attach))
        .routes(routes!(messages::attach_session))
        .routes(routes!(messages::stop))
        .routes(routes!(ws::chat))
        .routes(routes!(messages::interrupt))
        .routes(routes!(sessions::current))
        .routes(routes!(sessions::list_for_agent, sessions::create))
        .routes(routes!(sessions::switch))
        .routes(routes!(sessions::by_label))
        .routes(routes!(sessions::clear_history))
        .routes(routes!(sessions::reset))
        .routes(routes!(sessions::compact))
        .routes(routes!(sessions::trajectory))
        .routes(routes!(sessions::list))
        .routes(routes!(sessions::search))
        .routes(routes!(sessions::cleanup))
        .routes(routes!(sessions::get, sessions::delete))
        .routes(routes!(sessions::label))
        .routes(routes!(models::list))
        .routes(routes!(models::aliases))
        .routes(routes!(models::providers))
        .routes(routes!(models::provider))
        .routes(routes!(models::add_custom))
        .routes(routes!(models::set_key, models::delete_key))
        .routes(routes!(models::test))
        .routes(routes!(models::set_url))
        .routes(routes!(models::breaker_status))
        .routes(routes!(models::breaker_reset))
        .routes(routes!(usage::usage))
        .routes(routes!(usage::summary))
        .routes(routes!(usage::by_model))
        .routes(routes!(usage::daily))
        .routes(routes!(usage::budget, usage::set_budget))
        .routes(routes!(usage::agents))
        .routes(routes!(usage::agent, usage::set_agent))
        .routes(routes!(openai::chat_completions))
        .routes(routes!(openai::models))
        .routes(routes!(memory::export))
        .routes(routes!(memory::import))
        .routes(routes!(audit::recent))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::checkpoint))
        .routes(routes!(audit::security))
        .routes(routes!(logs::stream))
        .routes(routes!(memory::list_kv))
        .routes(routes!(memory::get_kv, memory::set_kv, memory::delete_kv))
        .routes(routes!(tools::list))
        .routes(routes!(tools::get))
        .routes(routes!(tools::invoke))
        .routes(routes!(plugins::list))
        .routes(routes!(plugins::doctor))
        .routes(routes!(plugins::uninstall))
        .routes(routes!(plugins::scaffold))
        .routes(routes!(plugins::get))
        .routes(routes!(plugins::status))
        .routes(routes!(plugins::health))
        .routes(routes!(plugins::env))
        .routes(routes!(plugins::set_grants))
        .routes(routes!(plugins::export))
        .routes(routes!(plugins::lint))
        .routes(routes!(plugins::enable))
        .routes(routes!(plugins::disable))
        .routes(routes!(plugins::sign))
        .routes(routes!(plugins::restore))
        .routes(routes!(skills::list))
        .routes(routes!(skills::get))
        .routes(routes!(skills::uninstall))
        .routes(routes!(skills::create))
        .routes(routes!(skills::reload))
        .routes(routes!(
            crate::routes::mcp::list_servers,
            crate::routes::mcp::add_server
        ))
        .routes(routes!(
            crate::routes::mcp::get_server,
            crate::routes::mcp::update_server,
            crate::routes::mcp::remove_server
        ))
        .routes(routes!(crate::routes::mcp::reload))
        .routes(routes!(crate::routes::mcp::list_catalog))
        .routes(routes!(crate::routes::mcp::get_catalog_entry))
        .routes(routes!(
            crate::routes::mcp::agent_servers,
            crate::routes::mcp::set_agent_servers
        ))
        .merge(scheduler_routes())
        // Layers wrap the routes added so far: the two groups after this
        // one set their own, larger limits.
        .layer(BodyLimit::max(max_body_bytes))
        .merge(large_body_routes())
        .routes(routes!(crate::routes::mcp::reconnect))
        .routes(routes!(crate::routes::mcp::health))
        .merge(package_routes())
        .merge(a2a_routes(max_body_bytes))
        .into_parts()
}

/// Cron jobs, schedules, triggers, workflows, goals and the run queue (issue 5).
fn scheduler_routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(cron::list_jobs, cron::create_job))
        .routes(routes!(cron::get_job, cron::update_job, cron::delete_job))
        .routes(routes!(cron::enable_job))
        .routes(routes!(cron::job_status))
        .routes(routes!(cron::list_runs))
        .routes(routes!(cron::list_schedules, cron::create_schedule))
        .routes(routes!(
            cron::get_schedule,
            cron::update_schedule,
            cron::delete_schedule
        ))
        .routes(routes!(cron::run_schedule))
        .routes(routes!(triggers::list, triggers::create))
        .routes(routes!(triggers::get, triggers::patch, triggers::delete))
        .routes(routes!(triggers::fires))
        .routes(routes!(workflows::list, workflows::create))
        .routes(routes!(
            workflows::get,
            workflows::update,
            workflows::delete
        ))
        .routes(routes!(workflows::run))
        .routes(routes!(workflows::runs))
        .routes(routes!(workflows::get_run))
        .routes(routes!(goals::list, goals::create))
        .routes(routes!(goals::templates))
        .routes(routes!(goals::get, goals::update, goals::delete))
        .routes(routes!(goals::children))
        .routes(routes!(goals::queue_status))
        .routes(routes!(tasks::post))
        .routes(routes!(tasks::status))
        .routes(routes!(tasks::list))
        .routes(routes!(tasks::cancel))
        .routes(routes!(tasks::retry))
        .routes(routes!(approvals::list, approvals::create))
        .routes(routes!(approvals::get))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::reject))
        .routes(routes!(approvals::totp_setup))
        .routes(routes!(approvals::totp_confirm))
        .routes(routes!(approvals::totp_status))
        .routes(routes!(approvals::totp_revoke))
        .routes(routes!(approvals::count))
        .routes(routes!(approvals::batch))
        .routes(routes!(approvals::audit))
        .routes(routes!(approvals::session))
        .routes(routes!(approvals::approve_all))
        .routes(routes!(approvals::reject_all))
        .routes(routes!(approvals::modify))
        .routes(routes!(comms::topology))
        .routes(routes!(comms::events))
        .routes(routes!(comms::stream))
        .routes(routes!(comms::send))
        .routes(routes!(comms::task))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::test))
        .routes(routes!(webhooks::list_events, webhooks::create_event))
        .routes(routes!(webhooks::update_event, webhooks::delete_event))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::dead_letters))
        .routes(routes!(webhooks::retry_dead_letter))
        .routes(routes!(webhooks::wake))
        .routes(routes!(webhooks::agent))
        .routes(routes!(channels::list))
        .routes(routes!(channels::registry))
        .routes(routes!(channels::get))
        .routes(routes!(channels::configure, channels::remove))
        .routes(routes!(channels::test))
        .routes(routes!(channels::reload))
        .routes(routes!(channels::dead_letters))
        .routes(routes!(channels::retry_dead_letter))
        .routes(routes!(channels::deliveries))
        .routes(routes!(channels::agent_channels))
        .routes(routes!(channels::webhook))
        .routes(routes!(hands::list))
        .routes(routes!(hands::install))
        .routes(routes!(hands::reload))
        .routes(routes!(hands::active))
        .routes(routes!(hands::get, hands::uninstall))
        .routes(routes!(hands::activate))
        .routes(routes!(hands::check_deps))
        .routes(routes!(hands::get_settings, hands::put_settings))
        .routes(routes!(hands::pause))
        .routes(routes!(hands::resume))
        .routes(routes!(hands::deactivate))
        .routes(routes!(hands::stats))
}

/// Routes that carry files: their own, larger body limit replaces the global one.
fn large_body_routes() -> ApiRouter {
    let limit = talon_kernel::agents::uploads::MAX_UPLOAD_BYTES + 64 * 1024;
    ApiRouter::new()
        .routes(routes!(files::list_files))
        .routes(routes!(
            files::get_file,
            files::put_file,
            files::delete_file
        ))
        .routes(routes!(files::upload))
        .routes(routes!(files::get_upload))
        .layer(BodyLimit::max(limit))
}

/// Routes that carry plugin packages (base64 in JSON): components of
/// Python plugins are about 20 MB.
fn package_routes() -> ApiRouter {
    let limit = crate::extract::package::MAX_PACKAGE_BODY_BYTES;
    ApiRouter::new()
        .routes(routes!(plugins::install))
        .routes(routes!(plugins::reload))
        .routes(routes!(skills::install))
        .layer(BodyLimit::max(limit))
}

/// A2A (docs/A2A.md): the JSON-RPC endpoint reads its body itself, so an
/// oversized one is answered with a JSON-RPC error; the rest take the
/// global limit.
fn a2a_routes(max_body_bytes: usize) -> ApiRouter {
    ApiRouter::new().routes(routes!(a2a::rpc)).merge(
        ApiRouter::new()
            .routes(routes!(a2a::agent_card))
            .routes(routes!(a2a::agent_card_v1))
            .routes(routes!(a2a::list_agents))
            .routes(routes!(a2a::send_task))
            .routes(routes!(a2a::get_task))
            .routes(routes!(a2a::cancel_task))
            .routes(routes!(a2a::list_peers))
            .routes(routes!(a2a::get_peer))
            .routes(routes!(a2a::discover))
            .routes(routes!(a2a::send_to_peer))
            .routes(routes!(a2a::peer_task_status))
            .layer(BodyLimit::max(max_body_bytes)),
    )
}

/// The OpenAPI document of this build.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, documents) = api_routes(talon_kernel::config::LimitsConfig::default().max_body_bytes);
    document(&documents)
}

/// The OpenAPI document of the routes `documents` describe, completed.
fn document(documents: &[Document]) -> utoipa::openapi::OpenApi {
    let mut doc = crate::routing::document(ApiDoc::openapi(), documents);
    crate::openapi::complete(&mut doc);
    doc
}

/// Builds the whole application for `state`: routes plus the shared conventions.
pub fn app(state: AppState) -> Router {
    let max_body_bytes = state.kernel.config().limits.max_body_bytes;
    // The document is made on its first request (`OpenApiJson`).
    let (routes, documents) = api_routes(max_body_bytes);
    let provider_names: Vec<String> = (state.kernel.providers().llm().providers().iter())
        .map(|p| p.name.clone())
        .collect();
    let openapi = OpenApiJson {
        documents: documents.into(),
        providers: std::sync::Arc::new(provider_names),
        json: std::sync::Arc::new(tokio::sync::OnceCell::new()),
    };
    let mcp_endpoint = crate::routes::mcp::endpoint_for(&state);
    let router = routes
        .merge(dashboard::router())
        // MCP's streamable HTTP: one path, three methods, the SDK's sessions.
        .route(
            "/mcp",
            axum::routing::any(crate::routes::mcp::endpoint).layer(axum::Extension(mcp_endpoint)),
        )
        // Model ids may contain slashes, which a `{id}` segment cannot hold.
        .route("/api/models/{*id}", get(models::get))
        .route(
            "/api/models/custom/{*id}",
            axum::routing::delete(models::remove_custom),
        )
        .route(
            "/api/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { openapi.serve().await }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    with_conventions(router, state)
}

/// `/api/openapi.json`, made on its first request instead of at start:
/// completing and serializing the document was over a quarter of the
/// daemon's start-up work, and few daemons are ever asked for it. Once made
/// it is kept as bytes (fixed for the life of the process; its tree of
/// structs is several times the size of its JSON).
#[derive(Clone)]
struct OpenApiJson {
    /// What documents each route of the router.
    documents: std::sync::Arc<[Document]>,
    /// The LLM providers the daemon knew as it started.
    providers: std::sync::Arc<Vec<String>>,
    json: std::sync::Arc<tokio::sync::OnceCell<axum::body::Bytes>>,
}

impl OpenApiJson {
    async fn serve(&self) -> Result<axum::response::Response, ApiError> {
        let json = self
            .json
            .get_or_try_init(|| {
                let (documents, providers) = (self.documents.clone(), self.providers.clone());
                async move {
                    tokio::task::spawn_blocking(move || {
                        let doc = document(&documents);
                        serde_json::to_vec(&crate::openapi::served(&doc, &providers))
                            .map(axum::body::Bytes::from)
                            .map_err(|e| ApiError::Internal(format!("OpenAPI document: {e}")))
                    })
                    .await
                    .map_err(|e| ApiError::Internal(format!("OpenAPI document: {e}")))?
                }
            })
            .await?;
        Ok(axum::response::IntoResponse::into_response((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json.clone(),
        )))
    }
}

/// Wraps any router in the conventions every route shares (see [`crate::middleware`]).
pub fn with_conventions(router: Router<AppState>, state: AppState) -> Router {
    let config = state.kernel.config();
    let metrics = state.metrics.clone();
    let layers = ServiceBuilder::new()
        .layer(axum::middleware::from_fn(request_id))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::metrics,
        ))
        .layer(CatchPanicLayer::custom(
            move |panic: Box<dyn std::any::Any + Send>| {
                metrics.panics.inc();
                let detail = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("non-string panic payload");
                tracing::error!(%detail, "handler panicked");
                error_response(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal server error",
                )
            },
        ))
        .layer(cors_layer(&config.api_key, &config.cors.allowed_origins))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::body_timeout::body_timeout,
        ))
        .layer(DefaultBodyLimit::max(config.limits.max_body_bytes));
    router.layer(layers).with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// Without an API key only localhost pages may call the API from a browser.
fn cors_layer(api_key: &str, extra: &[String]) -> CorsLayer {
    let keyless = api_key.is_empty();
    let extra: Vec<HeaderValue> = extra
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            let local = origin.to_str().is_ok_and(is_localhost_origin);
            // Localhost always; configured origins only once a key guards the API.
            local || (!keyless && extra.contains(origin))
        }))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderName::from_static("x-api-key"),
            axum::http::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([axum::http::HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600))
}

fn is_localhost_origin(origin: &str) -> bool {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    let host = if rest.starts_with('[') {
        rest.split_once(']').map(|(h, _)| &h[1..]).unwrap_or("")
    } else {
        rest.split(':').next().unwrap_or("")
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// `/api/v1/...` is an alias of `/api/...`: rewrite before routing.
fn strip_version_prefix(mut request: Request) -> Request {
    let path = request.uri().path();
    if let Some(rest) = path
        .strip_prefix("/api/v1")
        .filter(|r| r.is_empty() || r.starts_with('/'))
    {
        let new_path = format!("/api{rest}");
        let pq = match request.uri().query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = pq.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// The daemon's HTTP server: the application, built, and the state it serves.
pub struct Server {
    app: Router,
    state: AppState,
    limits: ConnectionLimits,
}

impl Server {
    /// Builds the application (routes, OpenAPI document, conventions) for
    /// `state`. Done before serving so that the memory start-up used can be
    /// given back before the first request.
    pub fn new(state: AppState) -> Self {
        let limits = ConnectionLimits::new(&state.kernel.config().server, None);
        crate::extract::package::clear_spool(state.kernel.home());
        Server {
            app: app(state.clone()),
            state,
            limits,
        }
    }

    /// Derives an unset total connection cap from the process's
    /// file-descriptor limit `nofile` instead of the fixed default.
    pub fn with_fd_limit(mut self, nofile: u64) -> Self {
        self.limits = ConnectionLimits::new(&self.state.kernel.config().server, Some(nofile));
        self
    }

    /// The connection limits it will serve with.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Serves on `listener` until `state.shutdown` is cancelled or a SIGINT
    /// or SIGTERM arrives; in-flight requests then get the configured grace
    /// period to finish, after which what is left is closed.
    pub async fn run(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let limiter = self.state.limiter.clone();
        let janitor = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                limiter.cleanup();
            }
        });
        let signals = tokio::spawn(shutdown_signal(shutdown.clone()));
        let service = tower::ServiceExt::<Request>::map_request(self.app, strip_version_prefix);
        crate::connections::serve(listener, service, self.limits, shutdown).await;
        signals.abort();
        janitor.abort();
        Ok(())
    }
}

async fn shutdown_signal(token: tokio_util::sync::CancellationToken) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        _ = terminate => tracing::info!("SIGTERM received, shutting down"),
        _ = token.cancelled() => {}
    }
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_origins() {
        assert!(is_localhost_origin("http://localhost:3000"));
        assert!(is_localhost_origin("http://127.0.0.1"));
        assert!(is_localhost_origin("http://[::1]:8080"));
        assert!(!is_localhost_origin("http://localhost.evil.com"));
        assert!(!is_localhost_origin("https://example.com"));
    }

    #[test]
    fn version_prefix_is_an_alias() {
        let req = Request::builder()
            .uri("/api/v1/agents?limit=2")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(strip_version_prefix(req).uri(), "/api/agents?limit=2");
        let req = Request::builder()
            .uri("/api/v10")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(strip_version_prefix(req).uri(), "/api/v10");
    }
}

#[cfg(test)]
mod panic_tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn explode() -> &'static str {
        panic!("handler bug")
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_and_the_app_keeps_serving() {
        let home = tempfile::tempdir().unwrap();
        let kernel = talon_kernel::Kernel::boot(
            talon_kernel::home::Home::new(home.path()),
            None,
            Default::default(),
        )
        .unwrap();
        let state = AppState::new(std::sync::Arc::new(kernel));
        let router = Router::new()
            .route("/explode", get(explode))
            .route("/api/health", get(crate::routes::system::health));
        let app = with_conventions(router, state.clone());

        let response = app
            .clone()
            .oneshot(
                Request::builder()
                    .uri("/explode")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        assert!(response.headers().contains_key("x-request-id"));
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"error":"internal server error"}"#);
        assert_eq!(state.metrics.panics.get(), 1);

        let next = app
            .oneshot(
                Request::builder()
                    .uri("/api/health")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(next.status(), 200);
    }
}
