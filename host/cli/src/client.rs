//! Client commands: find the running daemon and talk to it over its API.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use talon_kernel::config::Config;
use talon_kernel::home::Home;

use crate::daemon_file::DaemonFile;

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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
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

    fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<serde_json::Value> {
        self.call_with(method, path, None)
    }

    /// Calls the API with an optional JSON body; a non-2xx answer is an
    /// error carrying the daemon's message.
    pub(crate) fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
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
            // Installing a large package takes a while: compiling it is part of the call.
            request = request.json(body).timeout(Duration::from_secs(300));
        }
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        self.runtime.block_on(async {
            let response = request.send().await.with_context(|| {
                format!(
                    "cannot reach the daemon at {} (is `talon start` running?)",
                    self.base
                )
            })?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
            if !status.is_success() {
                let message = body
                    .get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("no details");
                bail!("{status}: {message}");
            }
            Ok(body)
        })
    }
}

/// `talon status`.
pub fn status(home: &Home, config: Option<&Path>, args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(home, config, args)?;
    let s = client.call(reqwest::Method::GET, "/api/status")?;
    let field = |k: &str| {
        s.get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    println!("talon {} at {}", field("version"), client.base);
    println!("  status:  {}", field("status"));
    println!("  uptime:  {} s", field("uptime_seconds"));
    println!(
        "  agents:  {} ({} active)",
        field("agent_count"),
        field("active_agent_count")
    );
    println!("  memory:  {} MB", field("memory_used_mb"));
    println!("  home:    {}", field("home_dir"));
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
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!(
            "{}",
            toml::to_string_pretty(&value).context("the configuration does not fit TOML")?
        );
    }
    Ok(())
}
