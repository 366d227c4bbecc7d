//! Starts the real `talon` binary and talks to it.
//!
//! Each [`Daemon`] owns a temporary data directory. The daemon is started with
//! `--listen 127.0.0.1:0`, so the kernel picks a free port and prints it on its
//! one stdout line; there is no port race between tests running in parallel.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn talon_bin() -> &'static str {
    env!("CARGO_BIN_EXE_talon")
}

/// `config` with `plugins.bundled = false` added, unless it mentions
/// `bundled`; the default config file so when it is empty.
fn leave_out_bundled(config: &str) -> String {
    const OFF: &str = "bundled = false\n";
    if config.contains("bundled") {
        return config.to_string();
    }
    if config.is_empty() {
        return talon_kernel::config::DEFAULT_CONFIG_TOML.replacen("bundled = true\n", OFF, 1);
    }
    match config.find("[plugins]\n") {
        Some(at) => {
            let at = at + "[plugins]\n".len();
            format!("{}{OFF}{}", &config[..at], &config[at..])
        }
        None => format!("{config}\n[plugins]\n{OFF}"),
    }
}

/// A running (or stopped) daemon with its own data directory.
pub struct Daemon {
    child: Option<Child>,
    home: tempfile::TempDir,
    base: String,
    api_key: Option<String>,
    http: reqwest::Client,
    /// Extra environment of the daemon process, kept for restarts.
    env: Vec<(String, String)>,
}

impl Daemon {
    /// Starts a daemon with the default configuration.
    pub async fn start() -> Daemon {
        Self::start_with_config("").await
    }

    /// Starts a daemon whose `config.toml` is `config` (written before start).
    pub async fn start_with_config(config: &str) -> Daemon {
        Self::start_with_env(config, &[]).await
    }

    /// Starts a daemon with `config` and these extra environment variables
    /// (set again at every restart). The plugins the binary ships are left
    /// out (`plugins.bundled = false`) unless `config` mentions `bundled`:
    /// most tests install the plugins they use themselves.
    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Daemon {
        Self::start_raw(&leave_out_bundled(config), env).await
    }

    /// Starts a daemon with `config` as written (so with the bundled
    /// plugins unless it says otherwise) and these environment variables.
    pub async fn start_bundled(config: &str, env: &[(&str, &str)]) -> Daemon {
        Self::start_raw(config, env).await
    }

    async fn start_raw(config: &str, env: &[(&str, &str)]) -> Daemon {
        let home = tempfile::tempdir().expect("temporary home");
        Self::start_in(home, config, env).await
    }

    /// Starts a daemon in `home`, prepared by the caller (a filesystem
    /// mounted for its data, say), with `config` as written.
    pub async fn start_in(home: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Daemon {
        if !config.is_empty() {
            std::fs::write(home.path().join("config.toml"), config).expect("write config");
        }
        let mut daemon = Daemon {
            child: None,
            home,
            base: String::new(),
            api_key: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        daemon.launch();
        daemon
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.path().join("daemon.log"))
            .expect("log file");
        let mut child = Command::new(talon_bin())
            .args([
                "--home",
                &self.home_str(),
                "start",
                "--listen",
                "127.0.0.1:0",
            ])
            .env_remove("RUST_LOG")
            .env_remove("TALON_HOME")
            // Tests must not reach real providers with a developer's keys.
            .env_remove("OPENAI_API_KEY")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("GEMINI_API_KEY")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn talon");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("talon listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => self.base = url,
            Err(_) => {
                let _ = child.kill();
                panic!("talon did not start; log:\n{}", self.log());
            }
        }
        self.child = Some(child);
    }

    /// The daemon's base URL (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The data directory.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    fn home_str(&self) -> String {
        self.home.path().display().to_string()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("daemon.log")).unwrap_or_default()
    }

    /// Sends this key as a bearer token on every later request.
    pub fn use_key(&mut self, key: &str) {
        self.api_key = Some(key.to_string());
    }

    /// A request to `path`, with the key if one was set.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET")
    }

    /// POST `body` as JSON to `path`.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    /// PUT `body` as JSON to `path`.
    pub async fn put(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.request(reqwest::Method::PUT, path)
            .json(&body)
            .send()
            .await
            .expect("PUT")
    }

    /// Spawns an agent called `name` and returns its id.
    pub async fn spawn_agent(&self, name: &str) -> String {
        self.spawn_manifest(format!(
            "name = \"{name}\"\nversion = \"0.1.0\"\n[model]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n"
        ))
        .await
    }

    /// Spawns an agent from a TOML manifest and returns its id.
    pub async fn spawn_manifest(&self, manifest: String) -> String {
        let response = self
            .post(
                "/api/agents",
                serde_json::json!({ "manifest_toml": manifest }),
            )
            .await;
        assert_eq!(response.status(), 201, "spawn {manifest}");
        let body: serde_json::Value = response.json().await.expect("spawn body");
        body["agent_id"].as_str().expect("agent_id").to_string()
    }

    /// Sends `text` to `agent` (`POST /api/agents/{id}/message`).
    pub async fn message(&self, agent: &str, text: &str) -> reqwest::Response {
        self.post(
            &format!("/api/agents/{agent}/message"),
            serde_json::json!({ "message": text }),
        )
        .await
    }

    /// Sends `text` to `agent` on a task of its own, for tests that act on
    /// the turn (interrupt, stop) while it runs.
    pub fn message_in_background(
        &self,
        agent: &str,
        text: &str,
    ) -> tokio::task::JoinHandle<reqwest::Response> {
        let request = self
            .request(
                reqwest::Method::POST,
                &format!("/api/agents/{agent}/message"),
            )
            .json(&serde_json::json!({ "message": text }));
        tokio::spawn(async move { request.send().await.expect("POST message") })
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM)");
        wait_for_exit(&mut child, Duration::from_secs(30))
    }

    /// Waits for a daemon that was asked to stop (for example over the API) to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        wait_for_exit(&mut child, Duration::from_secs(30))
    }

    /// Starts the daemon again on the same data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the daemon before restarting it");
        self.launch();
    }

    /// Runs a `talon` client command against this daemon's home.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_command(args).output().expect("run talon")
    }

    /// A `talon` client command against this daemon's home, to spawn with
    /// pipes of the caller's choosing (a chat fed on stdin, a followed log).
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(talon_bin());
        cmd.arg("--home")
            .arg(self.home.path())
            .args(args)
            .env_remove("TALON_URL");
        if let Some(key) = &self.api_key {
            cmd.env("TALON_API_KEY", key);
        }
        cmd
    }

    /// The config file.
    pub fn config_file(&self) -> PathBuf {
        self.home.path().join("config.toml")
    }
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("daemon did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One server-sent event: its name and JSON data.
#[derive(Debug, Clone)]
pub struct SseFrame {
    /// The `event:` name (`message` when absent).
    pub event: String,
    /// The `data:` payload, parsed.
    pub data: serde_json::Value,
}

/// Reads an SSE response to its end and parses every event (comments skipped).
pub async fn sse_frames(response: reqwest::Response) -> Vec<SseFrame> {
    assert_eq!(response.status(), 200, "SSE status");
    let text = response.text().await.expect("SSE body");
    parse_sse(&text)
}

/// Parses SSE text.
pub fn parse_sse(text: &str) -> Vec<SseFrame> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = "message".to_string();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if data.is_empty() {
                return None;
            }
            let data = serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data));
            Some(SseFrame { event, data })
        })
        .collect()
}

/// Reads a response's JSON body, failing with the raw text if it is not JSON.
pub async fn json(response: reqwest::Response) -> serde_json::Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts an API error: the status and an `{"error": "..."}` body containing `needle`.
pub async fn assert_error(response: reqwest::Response, status: u16, needle: &str) {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error bodies are JSON"
    );
    let body = json(response).await;
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {body}"));
    assert!(
        message.to_lowercase().contains(&needle.to_lowercase()),
        "error `{message}` should mention `{needle}`"
    );
}
