//! Client commands: find the running daemon and talk to it over its API.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use talon_kernel::config::Config;
use talon_kernel::home::Home;
use talon_llm::sse::{SseEvent, SseParser};

use crate::daemon_file::DaemonFile;
use crate::output;

/// Flags shared by client commands.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Daemon URL (default: from the running daemon's file, else api_listen).
    #[arg(long, env = "TALON_URL")]
    url: Option<String>,
    /// API key (default: api_key from the config file).
    #[arg(long, env = "TALON_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

/// A connection to the daemon.
pub(crate) struct Client {
    base: String,
    /// The data directory, for messages.
    home: std::path::PathBuf,
    /// Whether `base` names a daemon of this home (its `daemon.json`) or one
    /// the caller named (`--url`), rather than the configured default.
    located: bool,
    key: Option<String>,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    pub(crate) fn new(
        home: &Home,
        config_path: Option<&Path>,
        args: &ClientArgs,
    ) -> anyhow::Result<Self> {
        let config_file = config_path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| home.config_file());
        let config = if config_file.exists() {
            Config::load(&config_file)
                .with_context(|| format!("cannot read {}", config_file.display()))?
        } else {
            Config::default()
        };
        let running = DaemonFile::read(home).map(|d| d.listen.to_string());
        let located = args.url.is_some() || running.is_some();
        let base = match &args.url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", running.unwrap_or(config.api_listen.clone())),
        };
        let key = args
            .api_key
            .clone()
            .or((!config.api_key.is_empty()).then_some(config.api_key));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // No overall timeout here: plain calls set their own, streams last
        // as long as the turn or the log they follow.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            base,
            home: home.root().to_path_buf(),
            located,
            key,
            http,
            runtime,
        })
    }

    /// Whether this home's daemon (or the one named with `--url`) answers;
    /// a daemon of another home listening on the default address does not count.
    pub(crate) fn daemon_is_running(&self) -> bool {
        if !self.located {
            return false;
        }
        let request = self
            .http
            .get(format!("{}/api/health", self.base))
            .timeout(Duration::from_secs(2));
        self.runtime
            .block_on(async { request.send().await })
            .is_ok_and(|r| r.status().is_success())
    }

    /// GET `path`.
    pub(crate) fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.call_with(reqwest::Method::GET, path, None)
    }

    /// The daemon's address, for messages.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<serde_json::Value> {
        self.call_with(method, path, None)
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        if !self.located {
            // Never talk to whatever listens on the default address: it may
            // be another home's daemon.
            bail!(
                "no talon is running for {} (it has no daemon.json); start one with `talon start`, \
                 or name a daemon with --url",
                self.home.display()
            );
        }
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        Ok(request)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| self.unsent(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        Err(DaemonError::new(status, &body).into())
    }

    /// What a request that got no answer means to the user.
    fn unsent(&self, error: reqwest::Error) -> anyhow::Error {
        // The daemon refuses a body over its limit as soon as the headers
        // announce it, and closes the connection; a client still writing
        // the body may see the reset before it reads the 413.
        let cut_off =
            std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .filter_map(|e| e.downcast_ref::<std::io::Error>())
            .any(|e| {
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                )
            });
        let context = if cut_off {
            format!(
                "the daemon at {} closed the connection before the request was sent whole \
                 (a request larger than it accepts, limits.max_body_bytes, is refused before \
                 its body is read)",
                self.base
            )
        } else {
            format!(
                "cannot reach the daemon at {} (is `talon start` running?)",
                self.base
            )
        };
        anyhow::Error::new(error).context(context)
    }

    /// Calls the API with an optional JSON body; a non-2xx answer is a
    /// [`DaemonError`] carrying the daemon's message.
    pub(crate) fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        // Installing a large package takes a while: compiling it is part of the call.
        let timeout = Duration::from_secs(if body.is_some() { 300 } else { 30 });
        let request = self.request(method, path, body)?.timeout(timeout);
        self.runtime.block_on(async {
            let response = self.send(request).await?;
            Ok(response.json().await.unwrap_or(serde_json::Value::Null))
        })
    }

    /// Calls an SSE endpoint and hands each event to `on_event` as it
    /// arrives, until the stream ends or `on_event` answers false. A daemon
    /// silent for longer than [`STALL`] (it sends a keep-alive every 15 s)
    /// is an error rather than a hang.
    pub(crate) fn stream(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        mut on_event: impl FnMut(SseEvent) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let request = self.request(method, path, body)?;
        let stalled = || anyhow::anyhow!("the daemon sent nothing for {} s", STALL.as_secs());
        self.runtime.block_on(async {
            let mut response = tokio::time::timeout(STALL, self.send(request))
                .await
                .map_err(|_| stalled())??;
            let mut parser = SseParser::new();
            let mut events = Vec::new();
            loop {
                let chunk = tokio::time::timeout(STALL, response.chunk())
                    .await
                    .map_err(|_| stalled())?
                    .context("the daemon closed the stream")?;
                let Some(chunk) = chunk else {
                    return Ok(());
                };
                parser.push(&chunk, &mut events)?;
                for event in events.drain(..) {
                    if !on_event(event)? {
                        return Ok(());
                    }
                }
            }
        })
    }
}

/// How long a stream may stay silent: four keep-alive periods.
const STALL: Duration = Duration::from_secs(60);

/// A refusal from the daemon: its status and message, with a hint at what
/// to do about it.
#[derive(Debug)]
pub(crate) struct DaemonError {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The daemon's own words (`error`, or `error.message` on `/v1`).
    pub message: String,
}

impl DaemonError {
    fn new(status: reqwest::StatusCode, body: &serde_json::Value) -> Self {
        let error = &body["error"];
        let message = error
            .as_str()
            .or_else(|| error["message"].as_str())
            .unwrap_or("no details")
            .to_string();
        Self { status, message }
    }

    /// What usually helps, by status.
    fn hint(&self) -> Option<&'static str> {
        Some(match self.status.as_u16() {
            401 => {
                "pass the daemon's api_key with --api-key or TALON_API_KEY (or set api_key in config.toml)"
            }
            403 => "the daemon's configuration forbids it (see `talon config show`)",
            404 => {
                "check the name or id (`talon agent list`, `talon cron list`, `talon plugin list`)"
            }
            409 => {
                "the target is not in a state that allows it (`talon agent show` tells its state)"
            }
            412 => "set what it names where the daemon runs, then restart the daemon",
            413 => "the request is larger than the daemon accepts (limits.max_body_bytes)",
            429 => "wait a moment and retry, or raise the limit it names",
            500..=599 => "the daemon's log says more",
            _ => return None,
        })
    }
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self.status.as_u16();
        write!(f, "{} (HTTP {code})", self.message)?;
        if let Some(hint) = self.hint() {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DaemonError {}

/// `talon status` (`--json`: the API's answer as it is).
pub fn status(
    home: &Home,
    config: Option<&Path>,
    args: &ClientArgs,
    json: bool,
) -> anyhow::Result<()> {
    let client = Client::new(home, config, args)?;
    let s = client.call(reqwest::Method::GET, "/api/status")?;
    if json {
        return output::print_json(&s);
    }
    let field = |k: &str| output::text(&s[k]);
    let bold = output::BOLD;
    anstream::println!(
        "{bold}talon {}{bold:#} at {}",
        field("version"),
        client.base
    );
    anstream::println!("  status:  {}", field("status"));
    anstream::println!("  uptime:  {} s", field("uptime_seconds"));
    anstream::println!(
        "  agents:  {} ({} active)",
        field("agent_count"),
        field("active_agent_count")
    );
    anstream::println!("  memory:  {} MB", field("memory_used_mb"));
    anstream::println!("  home:    {}", field("home_dir"));
    Ok(())
}

/// `talon stop`.
pub fn stop(home: &Home, config: Option<&Path>, args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(home, config, args)?;
    client.call(reqwest::Method::POST, "/api/shutdown")?;
    println!("talon at {} is shutting down", client.base);
    Ok(())
}

/// `talon config show`: the running configuration as TOML (secrets
/// redacted), or as JSON with `--json`.
pub fn config_show(
    home: &Home,
    config: Option<&Path>,
    args: &ClientArgs,
    json: bool,
) -> anyhow::Result<()> {
    let client = Client::new(home, config, args)?;
    let value = client.call(reqwest::Method::GET, "/api/config")?;
    if json {
        output::print_json(&value)?;
    } else {
        print!(
            "{}",
            toml::to_string_pretty(&without_nulls(value))
                .context("the configuration does not fit TOML")?
        );
    }
    Ok(())
}

/// `value` without its `null`s: TOML has no null, and an unset optional key
/// reads the same as an absent one.
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|v| !v.is_null())
                .map(without_nulls)
                .collect(),
        ),
        other => other,
    }
}

/// A name (a plugin's, an agent's) as one percent-encoded path segment.
pub(crate) fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `path` with `pairs` as its query string, percent-encoded.
pub(crate) fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://talon.invalid").expect("a constant URL parses");
    url.set_path(path);
    url.query_pairs_mut().extend_pairs(pairs);
    match url.query() {
        Some(query) if !query.is_empty() => format!("{}?{query}", url.path()),
        _ => url.path().to_string(),
    }
}
