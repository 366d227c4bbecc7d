//! A real Matrix homeserver for tests: Synapse (`matrix-synapse` from
//! PyPI, installed by `scripts/test` into `target/test-tools/synapse-venv`)
//! on a free loopback port, with a configuration generated in a temporary
//! directory (SQLite, client API only, open registration with the dummy
//! flow, rate limits lifted, no federation), and [`Person`]s on it: plain
//! client-server HTTP calls, nothing from the code under test.
//!
//! `TALON_SYNAPSE_PYTHON` names the venv's Python when it is elsewhere.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// How long Synapse may take to answer after starting (the first start
/// creates its database; a loaded machine is slow).
const START_GUARD: Duration = Duration::from_secs(180);
/// The hang guard of [`Person::wait_for`].
const WAIT_GUARD: Duration = Duration::from_secs(60);

/// The server name of every test homeserver (user ids end in it).
pub const SERVER_NAME: &str = "talon.test";

/// A Synapse process; killed on drop.
pub struct Synapse {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Where Synapse's Python is expected: `TALON_SYNAPSE_PYTHON`, else the
/// venv `scripts/test` makes.
fn python_path() -> PathBuf {
    match std::env::var_os("TALON_SYNAPSE_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/test-tools/synapse-venv/bin/python"),
    }
}

/// Whether Synapse's Python is where [`Synapse::start`] looks for it, so a
/// test can say it is skipped instead of failing on a machine without it.
pub fn installed() -> bool {
    python_path().exists()
}

fn python() -> PathBuf {
    let path = python_path();
    assert!(
        path.exists(),
        "{}: Synapse is not installed; scripts/test installs it (python3 -m venv \
         target/test-tools/synapse-venv && target/test-tools/synapse-venv/bin/pip install \
         matrix-synapse)",
        path.display()
    );
    path
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

impl Synapse {
    /// Starts a homeserver and waits until it answers.
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        server.write_config();
        server.spawn().await;
        server
    }

    /// The homeserver's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn write_config(&self) {
        let dir = self.dir.path();
        let mut seed = [0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .expect("random bytes");
        let key = base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed);
        std::fs::write(dir.join("signing.key"), format!("ed25519 a_talon {key}\n"))
            .expect("write the signing key");
        std::fs::write(
            dir.join("log.yaml"),
            format!(
                "version: 1\nformatters:\n  precise:\n    format: '%(asctime)s %(name)s %(levelname)s %(message)s'\n\
                 handlers:\n  file:\n    class: logging.FileHandler\n    formatter: precise\n    filename: {}\n\
                 root:\n  level: WARNING\n  handlers: [file]\ndisable_existing_loggers: false\n",
                dir.join("homeserver.log").display()
            ),
        )
        .expect("write the log config");
        let unlimited = "{per_second: 100000, burst_count: 100000}";
        let config = format!(
            r#"server_name: "{SERVER_NAME}"
pid_file: "{dir}/homeserver.pid"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{dir}/homeserver.db"
media_store_path: "{dir}/media"
signing_key_path: "{dir}/signing.key"
log_config: "{dir}/log.yaml"
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
enable_registration: true
enable_registration_without_verification: true
registration_shared_secret: "talon-test-registration"
macaroon_secret_key: "talon-test-macaroon"
form_secret: "talon-test-form"
presence:
  enabled: false
url_preview_enabled: false
rc_message: {unlimited}
rc_registration: {unlimited}
rc_login:
  address: {unlimited}
  account: {unlimited}
  failed_attempts: {unlimited}
rc_joins:
  local: {unlimited}
  remote: {unlimited}
rc_joins_per_room: {unlimited}
rc_invites:
  per_room: {unlimited}
  per_user: {unlimited}
  per_issuer: {unlimited}
rc_3pid_validation: {unlimited}
rc_admin_redaction: {unlimited}
"#,
            dir = dir.display(),
            port = self.port,
        );
        std::fs::write(dir.join("homeserver.yaml"), config).expect("write homeserver.yaml");
    }

    async fn spawn(&mut self) {
        let child = Command::new(python())
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(self.dir.path().join("homeserver.yaml"))
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start Synapse");
        self.child = Some(child);
        // Readiness, not timing: poll until the client API answers.
        let versions = format!("{}/_matrix/client/versions", self.url());
        let client = http();
        let started = tokio::time::Instant::now();
        while started.elapsed() < START_GUARD {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("Synapse exited ({status}); log: {}", self.log());
            }
            if let Ok(r) = client.get(&versions).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "Synapse did not answer on port {}; log: {}",
            self.port,
            self.log()
        );
    }

    /// The homeserver's log so far (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("homeserver.log")).unwrap_or_default()
    }

    /// Kills the server (every connection drops) and starts it again on
    /// the same port with the same database.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Kills the server without starting it again.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Registers `name` with `password` (the dummy flow); the person,
    /// logged in.
    pub async fn register(&self, name: &str, password: &str) -> Person {
        let client = http();
        let url = format!("{}/_matrix/client/v3/register", self.url());
        let mut body = json!({ "username": name, "password": password });
        // The first call opens a user-interactive session; the dummy stage
        // completes it.
        let first: Value = client
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("register answers JSON");
        if first.get("access_token").is_none() {
            let session = first["session"].as_str().unwrap_or_default().to_string();
            body["auth"] = json!({ "type": "m.login.dummy", "session": session });
            let done: Value = client
                .post(&url)
                .json(&body)
                .send()
                .await
                .expect("register")
                .json()
                .await
                .expect("register answers JSON");
            return Person::from_login(self.url(), &done);
        }
        Person::from_login(self.url(), &first)
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Someone on the homeserver, speaking plain client-server HTTP.
pub struct Person {
    pub user_id: String,
    pub token: String,
    base: String,
    client: reqwest::Client,
    txn: AtomicU64,
}

/// Percent-encodes a path segment.
fn seg(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Person {
    fn from_login(base: String, answer: &Value) -> Self {
        let (Some(user_id), Some(token)) =
            (answer["user_id"].as_str(), answer["access_token"].as_str())
        else {
            panic!("registration failed: {answer}");
        };
        Self {
            user_id: user_id.to_string(),
            token: token.to_string(),
            base,
            client: http(),
            txn: AtomicU64::new(0),
        }
    }

    /// One call to `/_matrix/client/v3{path}`; the answer's JSON (panics
    /// on an error status, with the homeserver's answer).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_matrix/client/v3{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.client.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the homeserver answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates a room and invites `invite`; its id. `direct` marks the
    /// invitations as a direct chat.
    pub async fn create_room(&self, invite: &[&str], direct: bool) -> String {
        let answer = self
            .call(
                "POST",
                "/createRoom",
                Some(json!({
                    "preset": if direct { "trusted_private_chat" } else { "private_chat" },
                    "invite": invite,
                    "is_direct": direct,
                })),
            )
            .await;
        answer["room_id"].as_str().expect("a room id").to_string()
    }

    /// Joins a room (after an invitation).
    pub async fn join(&self, room: &str) {
        self.call("POST", &format!("/join/{}", seg(room)), Some(json!({})))
            .await;
    }

    /// The room's joined members' user ids.
    pub async fn members(&self, room: &str) -> Vec<String> {
        let answer = self
            .call("GET", &format!("/rooms/{}/joined_members", seg(room)), None)
            .await;
        answer["joined"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Sends an event of `kind` with `content`; its event id.
    pub async fn send(&self, room: &str, kind: &str, content: Value) -> String {
        let txn = self.txn.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .call(
                "PUT",
                &format!("/rooms/{}/send/{kind}/t{txn}", seg(room)),
                Some(content),
            )
            .await;
        answer["event_id"]
            .as_str()
            .expect("an event id")
            .to_string()
    }

    /// Says `text` in a room; the event id.
    pub async fn say(&self, room: &str, text: &str) -> String {
        self.send(
            room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": text }),
        )
        .await
    }

    /// Says `text` in the thread rooted at `root`; the event id.
    pub async fn say_in_thread(&self, room: &str, root: &str, text: &str) -> String {
        self.send(
            room,
            "m.room.message",
            json!({
                "msgtype": "m.text",
                "body": text,
                "m.relates_to": {
                    "rel_type": "m.thread",
                    "event_id": root,
                    "is_falling_back": true,
                    "m.in_reply_to": { "event_id": root },
                },
            }),
        )
        .await
    }

    /// The room's latest events (up to 100), oldest first.
    pub async fn events(&self, room: &str) -> Vec<Value> {
        let answer = self
            .call(
                "GET",
                &format!("/rooms/{}/messages?dir=b&limit=100", seg(room)),
                None,
            )
            .await;
        let mut events = answer["chunk"].as_array().cloned().unwrap_or_default();
        events.reverse();
        events
    }

    /// Waits until the room has an event `pick` accepts; that event.
    /// Polls the room, with a hang guard.
    pub async fn wait_for(&self, room: &str, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        let started = tokio::time::Instant::now();
        loop {
            if let Some(found) = self.events(room).await.into_iter().find(|e| pick(e)) {
                return found;
            }
            assert!(
                started.elapsed() < WAIT_GUARD,
                "{what}: not in the room; events: {:#?}",
                self.events(room).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
