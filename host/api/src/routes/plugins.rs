//! Plugin endpoints: install, list, inspect, enable, reload, sign, remove.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use serde::Deserialize;
use talon_kernel::plugins::{Grant, PluginView, Source};
use talon_runtime::Permissions;

use crate::error::ApiError;
use crate::extract::package::PackageJson;
use crate::extract::{Json, OptionalJson, Path};
use crate::state::AppState;

/// The body of `POST /api/plugins/install` (and `/api/skills/install`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// A package file on the daemon's machine.
    #[serde(default)]
    pub path: Option<String>,
    /// The package itself, base64-encoded (what `talon plugin install` sends).
    #[serde(default)]
    pub package: Option<String>,
    /// `"all"` (everything the manifest requests), `"none"` (the default), or
    /// an object `{filesystem, network, memory, env}` within the request.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub grant: Option<serde_json::Value>,
    /// Settings the plugin reads through `talon:plugin/settings`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// A marketplace name (the reference's skill install); not supported.
    #[serde(default)]
    pub name: Option<String>,
}

impl InstallRequest {
    pub(crate) fn source(&self) -> Result<Source, ApiError> {
        match (&self.path, &self.package) {
            (Some(path), None) => Ok(Source::Path(PathBuf::from(path))),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map(Source::Bytes)
                .map_err(|e| ApiError::BadRequest(format!("package is not valid base64: {e}"))),
            (Some(_), Some(_)) => Err(ApiError::BadRequest("give either path or package, not both".into())),
            (None, None) if self.name.is_some() => Err(ApiError::BadRequest(
                "installing by name from a marketplace is not supported; give `path` (a .talon package on the \
                 daemon's machine) or `package` (its bytes, base64)"
                    .into(),
            )),
            (None, None) => Err(ApiError::BadRequest(
                "missing package: give `path` (a .talon file on the daemon's machine) or `package` (base64)".into(),
            )),
        }
    }

    pub(crate) fn grant(&self) -> Result<Grant, ApiError> {
        parse_grant(self.grant.as_ref())
    }
}

/// A grant as install and `PUT .../grants` take it: `"all"`, `"none"`
/// (also what an absent grant means) or a permissions object.
fn parse_grant(grant: Option<&serde_json::Value>) -> Result<Grant, ApiError> {
    match grant {
        None => Ok(Grant::Nothing),
        Some(serde_json::Value::String(s)) if s == "none" => Ok(Grant::Nothing),
        Some(serde_json::Value::String(s)) if s == "all" => Ok(Grant::All),
        Some(value @ serde_json::Value::Object(_)) => {
            serde_json::from_value::<Permissions>(value.clone())
                .map(Grant::Exactly)
                .map_err(|e| ApiError::BadRequest(format!("grant: {e}")))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "grant must be \"all\", \"none\" or an object {{filesystem, network, memory, env}}, not {other}"
        ))),
    }
}

/// The body naming one plugin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameRequest {
    /// The plugin's name.
    pub name: String,
}

/// Installs a signed plugin package.
#[utoipa::path(post, path = "/api/plugins/install", tag = "plugins", request_body = InstallRequest,
    responses((status = 201, description = "The installed plugin: requested and granted permissions side by side", body = Object),
              (status = 400, description = "Malformed, tampered or invalid package, or a grant beyond the request"),
              (status = 403, description = "Unsigned or untrusted package while development mode is off"),
              (status = 409, description = "Already installed, or a tool name is taken")))]
pub async fn install(
    State(state): State<AppState>,
    // Streamed, bounded, one of a few at once: the slot is held until the
    // install is done.
    PackageJson(body, _slot): PackageJson<InstallRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let view = state
        .kernel
        .plugins()
        .install_plugin(body.source()?, body.grant()?, body.settings.clone(), None)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(view).map_err(|e| ApiError::Internal(e.to_string()))?),
    ))
}

/// Uninstalls a plugin.
#[utoipa::path(post, path = "/api/plugins/uninstall", tag = "plugins", request_body = NameRequest,
    responses((status = 200, description = "`{status: uninstalled, name, source}`; a `bundled` one comes back with `POST /api/plugins/{name}/restore`", body = Object),
              (status = 404, description = "No such plugin")))]
pub async fn uninstall(
    State(state): State<AppState>,
    Json(body): Json<NameRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let source = state
        .kernel
        .plugins()
        .uninstall_plugin(&body.name, None)
        .await?;
    Ok(Json(
        serde_json::json!({ "status": "uninstalled", "name": body.name, "source": source }),
    ))
}

/// Lists installed plugins.
#[utoipa::path(get, path = "/api/plugins", tag = "plugins",
    responses((status = 200, description = "`{plugins: [...], total}`", body = Object)))]
pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let plugins = state.kernel.plugins().list();
    Json(serde_json::json!({ "total": plugins.len(), "plugins": plugins }))
}

/// One installed plugin.
#[utoipa::path(get, path = "/api/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "The plugin", body = Object), (status = 404, description = "No such plugin")))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    to_json(state.kernel.plugins().plugin(&name)?)
}

fn to_json(value: impl serde::Serialize) -> Result<Json<serde_json::Value>, ApiError> {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Runtime status: loaded or not, why, and call figures. While a package
/// of this name is being compiled (an install, a reload, the start's load),
/// `compiling_ms` says for how long; a plugin still being installed answers
/// `status: compiling`.
#[utoipa::path(get, path = "/api/plugins/{name}/status", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "`{name, status, enabled, error, stats, limits, compiling_ms, compiler}`", body = Object),
              (status = 404, description = "No such plugin")))]
pub async fn status(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let plugins = state.kernel.plugins();
    let compiling_ms = plugins
        .compiling_for(&name)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let view = match (plugins.plugin(&name), compiling_ms) {
        (Ok(view), _) => view,
        (Err(_), Some(ms)) => {
            return Ok(Json(serde_json::json!({
                "name": name, "status": "compiling", "compiling_ms": ms,
            })));
        }
        (Err(e), None) => return Err(e.into()),
    };
    Ok(Json(serde_json::json!({
        "name": view.name, "version": view.version, "status": view.status, "enabled": view.enabled,
        "error": view.error, "stats": view.stats, "limits": view.limits, "compiling_ms": compiling_ms,
        "compiler": view.compiler,
    })))
}

/// Health probe: instantiates the plugin and asks it to describe itself.
#[utoipa::path(get, path = "/api/plugins/{name}/health", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "`{name, healthy, latency_ms, error}`", body = Object),
              (status = 404, description = "No such plugin")))]
pub async fn health(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match state.kernel.plugins().probe_plugin(&name).await {
        Ok(elapsed) => Ok(Json(serde_json::json!({
            "name": name, "healthy": true, "latency_ms": elapsed.as_secs_f64() * 1000.0, "error": null,
        }))),
        Err(talon_kernel::KernelError::NotFound(m)) => Err(ApiError::NotFound(m)),
        Err(e) => Ok(Json(
            serde_json::json!({ "name": name, "healthy": false, "latency_ms": null, "error": e.to_string() }),
        )),
    }
}

/// The body of `PUT /api/plugins/{name}/grants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsRequest {
    /// `"all"` (everything the manifest requests), `"none"`, or an object
    /// `{filesystem, network, memory, env}` within the request: the whole
    /// new grant, replacing the old one.
    #[schema(schema_with = grant_schema)]
    pub grant: serde_json::Value,
}

/// The documented shape of a grant, which [`parse_grant`] reads: `"all"`,
/// `"none"`, or a permissions object with no other keys.
fn grant_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{
        AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type,
    };
    let names = || ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String));
    let permissions = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "filesystem",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .enum_values(Some([
                    serde_json::json!("workspace"),
                    serde_json::Value::Null,
                ]))
                .description(Some("`workspace`: the calling agent's workspace")),
        )
        .property(
            "network",
            names().description(Some(
                "Hosts: `example.com`, `*.example.com`, `host:port`, `*`",
            )),
        )
        .property(
            "memory",
            names().description(Some("Memory keys or prefixes ending in `*`")),
        )
        .property(
            "env",
            names().description(Some("The daemon's environment variables")),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["all", "none"])),
        )
        .item(permissions)
        .build()
        .into()
}

/// Replaces what a plugin is granted, without reinstalling it. The next
/// call runs with the new grant; more than the manifest requests is refused.
#[utoipa::path(put, path = "/api/plugins/{name}/grants", tag = "plugins", request_body = GrantsRequest,
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "The plugin: requested and granted permissions side by side", body = Object),
              (status = 400, description = "Malformed grant, or a grant beyond what the manifest requests"),
              (status = 404, description = "No such plugin"),
              (status = 409, description = "The plugin is being installed or changed")))]
pub async fn set_grants(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<GrantsRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let grant = parse_grant(Some(&body.grant))?;
    to_json(state.kernel.plugins().set_grants(&name, grant).await?)
}

/// The environment variables and settings a plugin sees, values redacted.
#[utoipa::path(get, path = "/api/plugins/{name}/env", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "`{env: [{name, set, value}], settings: {key: \"***\"}}`", body = Object),
              (status = 404, description = "No such plugin")))]
pub async fn env(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let record = state.kernel.plugins().plugin_record(&name)?;
    let env: Vec<_> = record
        .granted
        .env
        .iter()
        .map(|var| {
            let set = std::env::var_os(var).is_some();
            serde_json::json!({ "name": var, "set": set, "value": if set { Some("***") } else { None } })
        })
        .collect();
    let settings: BTreeMap<&str, &str> = record
        .settings
        .keys()
        .map(|k| (k.as_str(), "***"))
        .collect();
    Ok(Json(
        serde_json::json!({ "name": name, "env": env, "settings": settings }),
    ))
}

/// The plugin's definition: its manifest, digest and grants.
#[utoipa::path(get, path = "/api/plugins/{name}/export", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "`{manifest, digest, granted, signature}`", body = Object),
              (status = 404, description = "No such plugin")))]
pub async fn export(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let manifest = state.kernel.plugins().plugin_manifest(&name)?;
    let view = state.kernel.plugins().plugin(&name)?;
    Ok(Json(serde_json::json!({
        "manifest": manifest, "digest": view.digest, "granted": view.permissions.granted, "signature": view.signature,
    })))
}

/// Findings about one plugin's manifest.
pub(crate) fn lint_manifest(manifest: &talon_runtime::Manifest) -> Vec<String> {
    let mut findings = Vec::new();
    if manifest.description.trim().is_empty() {
        findings.push("description is empty: operators see it in listings".to_string());
    }
    if manifest.author.is_none() {
        findings.push("author is not set".to_string());
    }
    if manifest.permissions.network.iter().any(|h| h == "*") {
        findings.push("network requests \"*\": ask for the hosts the plugin needs".to_string());
    }
    if manifest.limits.fuel.is_none()
        || manifest.limits.timeout_ms.is_none()
        || manifest.limits.memory_mb.is_none()
    {
        findings.push("limits are incomplete: set fuel, memory_mb and timeout_ms".to_string());
    }
    for tool in &manifest.tools {
        if tool.description.trim().len() < 10 {
            findings.push(format!(
                "tool {}: the description is too short for a model to use it well",
                tool.name
            ));
        }
        if tool.parameters.get("type").and_then(|t| t.as_str()) != Some("object") {
            findings.push(format!(
                "tool {}: parameters schema should have \"type\": \"object\"",
                tool.name
            ));
        }
    }
    findings
}

/// Lints a plugin's manifest.
#[utoipa::path(get, path = "/api/plugins/{name}/lint", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "`{name, ok, findings: [...]}`", body = Object),
              (status = 404, description = "No such plugin")))]
pub async fn lint(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let findings = lint_manifest(&state.kernel.plugins().plugin_manifest(&name)?);
    Ok(Json(
        serde_json::json!({ "name": name, "ok": findings.is_empty(), "findings": findings }),
    ))
}

/// Enables a plugin (loading it).
#[utoipa::path(post, path = "/api/plugins/{name}/enable", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "The plugin", body = Object), (status = 404, description = "No such plugin")))]
pub async fn enable(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    to_json(
        state
            .kernel
            .plugins()
            .set_plugin_enabled(&name, true)
            .await?,
    )
}

/// Disables a plugin: its tools are no longer offered.
#[utoipa::path(post, path = "/api/plugins/{name}/disable", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "The plugin", body = Object), (status = 404, description = "No such plugin")))]
pub async fn disable(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    to_json(
        state
            .kernel
            .plugins()
            .set_plugin_enabled(&name, false)
            .await?,
    )
}

/// Installs again a bundled plugin the operator removed: the binary's build,
/// granted what its manifest requests, as on a first start.
#[utoipa::path(post, path = "/api/plugins/{name}/restore", tag = "plugins",
    params(("name" = String, Path, description = "Name of a plugin the binary ships")),
    responses((status = 201, description = "The restored plugin", body = PluginView),
              (status = 404, description = "The binary ships no plugin of that name (the message lists those it ships)"),
              (status = 409, description = "A plugin of that name is installed, or the config leaves it out (plugins.bundled, plugins.bundled_exclude)")))]
pub async fn restore(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<PluginView>), ApiError> {
    let view = state.kernel.plugins().restore_bundled(&name).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The optional body of a reload: a new package to upgrade to.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {
    /// A new package file on the daemon's machine.
    #[serde(default)]
    pub path: Option<String>,
    /// A new package, base64.
    #[serde(default)]
    pub package: Option<String>,
    /// Accept a package of a lower version than the installed one.
    #[serde(default)]
    pub force: bool,
}

/// Reloads a plugin without a restart, from its package file or from a new
/// package; calls in flight finish on the old version.
#[utoipa::path(post, path = "/api/plugins/{name}/reload", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    request_body(content = Option<ReloadRequest>, description = "Optional new package"),
    responses((status = 200, description = "The reloaded plugin", body = Object),
              (status = 400, description = "The new package is invalid"),
              (status = 404, description = "No such plugin"),
              (status = 409, description = "The new package is older than the installed one (pass `force`), or the plugin is being changed")))]
pub async fn reload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    // Optional: none (or `null`) means "reload from the package file".
    OptionalJson(body): OptionalJson<ReloadRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let force = body.force;
    let source = match (body.path, body.package) {
        (None, None) => None,
        (path, package) => Some(
            InstallRequest {
                path,
                package,
                grant: None,
                settings: BTreeMap::new(),
                name: None,
            }
            .source()?,
        ),
    };
    to_json(
        state
            .kernel
            .plugins()
            .reload_plugin(&name, source, force)
            .await?,
    )
}

/// The body of a sign request; optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// A secret key file (from `talon plugin keygen`) on the daemon's
    /// machine; default `<home>/keys/publisher.key`, where keygen writes it.
    pub key_path: Option<String>,
}

/// Re-signs an installed package with a trusted key (Ed25519).
#[utoipa::path(post, path = "/api/plugins/{name}/sign", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    request_body(content = SignRequest, description = "Optional", content_type = "application/json"),
    responses((status = 200, description = "The plugin, now signed", body = Object),
              (status = 400, description = "Bad key file or untrusted key"),
              (status = 404, description = "No such plugin")))]
pub async fn sign(
    State(state): State<AppState>,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<SignRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key_path = match body.key_path {
        Some(path) => PathBuf::from(path),
        None => state
            .kernel
            .home()
            .root()
            .join("keys")
            .join("publisher.key"),
    };
    // A missing key file is the caller's mistake, not the daemon's.
    if !key_path.is_file() {
        return Err(ApiError::BadRequest(format!(
            "no key file at {}: create one with `talon plugin keygen` or give key_path",
            key_path.display()
        )));
    }
    to_json(state.kernel.plugins().sign_plugin(&name, key_path).await?)
}

/// Diagnoses every installed plugin.
#[utoipa::path(get, path = "/api/plugins/doctor", tag = "plugins",
    responses((status = 200, description = "`{ok, dev_mode, trusted_keys, plugins: [{name, status, problems}]}`", body = Object)))]
pub async fn doctor(State(state): State<AppState>) -> Json<serde_json::Value> {
    let config = state.kernel.config();
    let mut all_ok = true;
    let plugins: Vec<_> = state
        .kernel
        .plugins()
        .list()
        .into_iter()
        .map(|view| {
            let mut problems = Vec::new();
            if let Some(error) = &view.error {
                problems.push(format!("not loaded: {error}"));
            }
            if matches!(
                view.signature,
                Some(talon_runtime::Trust::Unsigned | talon_runtime::Trust::Untrusted { .. })
            ) {
                problems.push(
                    "not signed by a trusted key: it loads only in development mode".to_string(),
                );
            }
            for var in &view.permissions.granted.env {
                if std::env::var_os(var).is_none() {
                    problems.push(format!("granted environment variable {var} is not set"));
                }
            }
            all_ok &= problems.is_empty();
            serde_json::json!({ "name": view.name, "status": view.status, "problems": problems })
        })
        .collect();
    Json(serde_json::json!({
        "ok": all_ok,
        "dev_mode": config.plugins.dev_mode,
        "trusted_keys": config.plugins.trusted_keys.len(),
        "plugins": plugins,
    }))
}

/// The body of a scaffold request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaffoldRequest {
    /// The plugin's (and its first tool's) name.
    #[schema(pattern = "^[a-z0-9][a-z0-9_]{0,63}$")]
    pub name: String,
    /// One line about it.
    #[serde(default)]
    pub description: Option<String>,
    /// `rust` (default), `python` or `js`.
    #[serde(default)]
    pub language: Option<String>,
    /// `tool` (default) or `skill`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The project's folder under `<home>/plugin-projects/` (a relative path);
    /// default `<name>`. Documented without folders that start with a dot,
    /// which keeps `..` out without a lookahead.
    #[serde(default)]
    #[schema(
        pattern = "^[^./\\x00-\\x1f\\x7f-\\x9f][^/\\x00-\\x1f\\x7f-\\x9f]*(/[^./\\x00-\\x1f\\x7f-\\x9f][^/\\x00-\\x1f\\x7f-\\x9f]*)*$"
    )]
    pub directory: Option<String>,
    /// Skills only (LibreFang's `prompt_context`): the instructions added to
    /// the system prompt of an agent with the skill, written into the
    /// project in place of the template's placeholder.
    #[serde(default)]
    pub prompt_context: Option<String>,
}

/// Writes a new plugin project and returns its directory and files.
pub(crate) async fn scaffold_project(
    state: &AppState,
    body: ScaffoldRequest,
) -> Result<(String, Vec<String>), ApiError> {
    use talon_runtime::scaffold::{Language, Scaffold, ScaffoldError};
    let language = Language::parse(body.language.as_deref().unwrap_or("rust"))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let kind = match body.kind.as_deref().unwrap_or("tool") {
        "tool" => talon_runtime::Kind::Tool,
        "skill" => talon_runtime::Kind::Skill,
        other => {
            return Err(ApiError::BadRequest(format!(
                "kind {other:?}: use tool or skill"
            )));
        }
    };
    // Projects live under the home: an API caller names a folder there, never
    // a path elsewhere on the daemon's machine (or relative to its cwd).
    let projects = state.kernel.home().root().join("plugin-projects");
    let dir = match body.directory {
        Some(dir) => projects.join(project_folder(&dir)?),
        None => projects.join(&body.name),
    };
    let prompt_context = body.prompt_context;
    let scaffold = Scaffold {
        description: body
            .description
            .unwrap_or_else(|| format!("The {} plugin.", body.name)),
        name: body.name,
        language,
        kind,
        sdk: language.checkout_sdk(),
    };
    let written = tokio::task::spawn_blocking(move || {
        let files = scaffold.write(&dir, prompt_context.as_deref())?;
        Ok::<_, ScaffoldError>((dir, files))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    match written {
        Ok((dir, files)) => Ok((
            dir.display().to_string(),
            files.iter().map(|f| f.display().to_string()).collect(),
        )),
        Err(ScaffoldError::Exists(m)) => Err(ApiError::Conflict(format!(
            "{m} already exists and is not empty"
        ))),
        Err(ScaffoldError::Invalid(m)) => Err(ApiError::BadRequest(m)),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// A project folder under `<home>/plugin-projects/`: a relative path of plain
/// names (no `..`, no root, no control characters).
fn project_folder(dir: &str) -> Result<PathBuf, ApiError> {
    use std::path::Component;
    let path = std::path::Path::new(dir);
    let plain = !dir.is_empty()
        && !dir.chars().any(char::is_control)
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if plain {
        Ok(path.to_path_buf())
    } else {
        Err(ApiError::BadRequest(format!(
            "directory {dir:?}: name a folder under <home>/plugin-projects/ \
             (a relative path without `..`)"
        )))
    }
}

/// Creates a new plugin project from the SDK's template.
#[utoipa::path(post, path = "/api/plugins/scaffold", tag = "plugins", request_body = ScaffoldRequest,
    responses((status = 201, description = "`{status: created, path, files}`", body = Object),
              (status = 400, description = "Bad name, language or kind"),
              (status = 409, description = "The directory exists and is not empty")))]
pub async fn scaffold(
    State(state): State<AppState>,
    Json(body): Json<ScaffoldRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (path, files) = scaffold_project(&state, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "status": "created", "path": path, "files": files })),
    ))
}
