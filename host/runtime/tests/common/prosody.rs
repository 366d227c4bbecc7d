//! A real XMPP server for the channel tests (Prosody on a free loopback
//! port, with a generated configuration, accounts and a multi-user chat
//! component in a temporary directory) and a person on it: a few lines of
//! raw XMPP over a TCP stream. Written to be reused by the daemon-level
//! tests as well: nothing here depends on the runtime.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "ports.rs"]
mod ports;

/// The server's domain; rooms live on `conference.localhost`.
pub const DOMAIN: &str = "localhost";
pub const MUC: &str = "conference.localhost";

/// A Prosody process; killed on drop.
pub struct Prosody {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Prosody {
    /// Starts a server with these `(user, password)` accounts and waits
    /// until it accepts connections.
    pub async fn start(accounts: &[(&str, &str)]) -> Self {
        assert!(
            std::path::Path::new("/usr/bin/prosody").exists(),
            "prosody is not installed: apt-get install -y prosody (scripts/test installs it)"
        );
        let server = Self {
            port: 0,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        let accounts_dir = server.dir.path().join("data/localhost/accounts");
        std::fs::create_dir_all(&accounts_dir).expect("accounts dir");
        for (user, password) in accounts {
            // The `internal_plain` store's format: a Lua table per account.
            std::fs::write(
                accounts_dir.join(format!("{user}.dat")),
                format!("return {{\n\t[\"password\"] = {password:?};\n}};\n"),
            )
            .expect("write account");
        }
        let mut server = server;
        for _ in 0..ports::ATTEMPTS {
            server.port = ports::free_port();
            if server.spawn().await {
                return server;
            }
            server.kill();
        }
        panic!(
            "prosody did not start listening on a free port: {}",
            std::fs::read_to_string(server.dir.path().join("prosody.log")).unwrap_or_default()
        );
    }

    /// Starts Prosody on the chosen port; false when it does not come to
    /// listen on it.
    async fn spawn(&mut self) -> bool {
        let dir = self.dir.path();
        let config = dir.join("prosody.cfg.lua");
        std::fs::write(
            &config,
            format!(
                "run_as_root = true\n\
                 pidfile = {pid:?}\n\
                 data_path = {data:?}\n\
                 interfaces = {{ \"127.0.0.1\" }}\n\
                 c2s_ports = {{ {port} }}\n\
                 s2s_ports = {{}}\n\
                 c2s_direct_tls_ports = {{}}\n\
                 legacy_ssl_ports = {{}}\n\
                 c2s_require_encryption = false\n\
                 allow_unencrypted_plain_auth = true\n\
                 authentication = \"internal_plain\"\n\
                 storage = \"internal\"\n\
                 log = {{ {{ levels = {{ min = \"info\" }}, to = \"file\", filename = {log:?} }} }}\n\
                 modules_enabled = {{ \"roster\", \"saslauth\", \"disco\", \"ping\", \"offline\" }}\n\
                 modules_disabled = {{ \"s2s\", \"tls\" }}\n\
                 VirtualHost \"{DOMAIN}\"\n\
                 Component \"{MUC}\" \"muc\"\n",
                pid = dir.join("prosody.pid").display().to_string(),
                data = dir.join("data").display().to_string(),
                log = dir.join("prosody.log").display().to_string(),
                port = self.port,
            ),
        )
        .expect("write prosody.cfg.lua");
        let child = Command::new("/usr/bin/prosody")
            .arg("--config")
            .arg(&config)
            .arg("-F")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start prosody");
        // Readiness, not timing: wait until Prosody itself listens.
        ports::listening(self.child.insert(child), &[self.port]).await
    }

    /// Kills the server (every client is dropped) and starts it again on
    /// the same port.
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn().await,
            "prosody did not listen again on port {}: {}",
            self.port,
            std::fs::read_to_string(self.dir.path().join("prosody.log")).unwrap_or_default()
        );
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A message a person received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    pub from: String,
    pub kind: String,
    pub id: String,
    pub body: String,
    /// The whole stanza as it came.
    pub raw: String,
}

/// A person on the server, speaking raw XMPP.
pub struct Person {
    pub jid: String,
    stream: TcpStream,
    buf: String,
}

impl Person {
    /// Connects, logs in, binds a resource and says it is available.
    pub async fn login(port: u16, user: &str, password: &str) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to prosody");
        stream.set_nodelay(true).expect("nodelay");
        let mut person = Self {
            jid: format!("{user}@{DOMAIN}"),
            stream,
            buf: String::new(),
        };
        person.open().await;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        person
            .send(&format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>"
            ))
            .await;
        let answer = person.next_stanza().await;
        assert!(answer.starts_with("<success"), "login of {user}: {answer}");
        person.buf.clear();
        person.open().await;
        person
            .send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>test</resource></bind></iq>")
            .await;
        person.wait_for(|s| s.contains("id='bind'")).await;
        person.send("<presence/>").await;
        person
    }

    async fn open(&mut self) {
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' \
             xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        ))
        .await;
        self.wait_for(|s| s.starts_with("<stream:features")).await;
    }

    /// Enters a room as `nick` and waits until the room confirms it.
    pub async fn join(&mut self, room: &str, nick: &str) {
        self.send(&format!(
            "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'>\
             <history maxstanzas='0'/></x></presence>"
        ))
        .await;
        self.wait_for(|s| s.starts_with("<presence") && s.contains("code='110'"))
            .await;
    }

    /// Sends raw XML.
    pub async fn send(&mut self, xml: &str) {
        self.stream
            .write_all(xml.as_bytes())
            .await
            .expect("write to prosody");
    }

    /// Sends a message with a body and an id (`kind`: `chat` or `groupchat`).
    pub async fn say(&mut self, to: &str, kind: &str, id: &str, body: &str) {
        self.send(&format!(
            "<message to='{to}' type='{kind}' id='{id}'><body>{}</body></message>",
            escape(body)
        ))
        .await;
    }

    /// The next message with a body that reaches this person.
    pub async fn next_message(&mut self) -> Said {
        let raw = self
            .wait_for(|s| s.starts_with("<message") && s.contains("<body"))
            .await;
        Said {
            from: attr(&raw, "from").unwrap_or_default(),
            kind: attr(&raw, "type").unwrap_or_default(),
            id: attr(&raw, "id").unwrap_or_default(),
            body: between(&raw, "<body>", "</body>")
                .map(unescape)
                .unwrap_or_default(),
            raw,
        }
    }

    /// Reads stanzas until one matches; returns it.
    pub async fn wait_for(&mut self, matches: impl Fn(&str) -> bool) -> String {
        loop {
            let stanza = self.next_stanza().await;
            if matches(&stanza) {
                return stanza;
            }
        }
    }

    /// The next top-level element (the stream header's start is skipped).
    async fn next_stanza(&mut self) -> String {
        loop {
            if let Some(stanza) = self.take_stanza() {
                return stanza;
            }
            let mut chunk = [0u8; 16 * 1024];
            // A guard, not a timing: a broken build fails instead of hanging.
            let n = tokio::time::timeout(Duration::from_secs(120), self.stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("nothing reached {} for 120 s", self.jid))
                .expect("read from prosody");
            assert!(n > 0, "prosody closed the connection of {}", self.jid);
            self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }

    /// Cuts one complete stanza off the buffer. Prosody never nests an
    /// element inside one of the same name within the stanzas used here.
    fn take_stanza(&mut self) -> Option<String> {
        loop {
            let start = self.buf.find('<')?;
            self.buf.drain(..start);
            if self.buf.starts_with("<?") {
                let end = self.buf.find("?>")?;
                self.buf.drain(..end + 2);
                continue;
            }
            if self.buf.starts_with("<stream:stream") {
                let end = self.buf.find('>')?;
                self.buf.drain(..=end);
                continue;
            }
            let name_end = self.buf[1..].find([' ', '>', '/'])? + 1;
            let name = self.buf[1..name_end].to_string();
            let tag_end = self.buf.find('>')?;
            let end = if self.buf[..tag_end].ends_with('/') {
                tag_end + 1
            } else {
                let close = format!("</{name}>");
                self.buf.find(&close)? + close.len()
            };
            return Some(self.buf.drain(..end).collect());
        }
    }
}

/// The value of `name='...'` (or `"..."`) in a stanza's first tag.
pub fn attr(stanza: &str, name: &str) -> Option<String> {
    let tag = &stanza[..stanza.find('>')?];
    for quote in ['\'', '"'] {
        let key = format!(" {name}={quote}");
        if let Some(start) = tag.find(&key) {
            let rest = &tag[start + key.len()..];
            return Some(unescape(&rest[..rest.find(quote)?]));
        }
    }
    None
}

/// The text between the first `open` and the next `close`.
pub fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

pub fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Reads from `stream` until `buf` holds `marker`.
async fn read_until(stream: &mut TcpStream, buf: &mut String, marker: &str) -> bool {
    while !buf.contains(marker) {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
        }
    }
    buf.clear();
    true
}

/// A hostile XMPP server: it logs the client in, then sends what `payload(n)` gives
/// for its n-th connection, and keeps the connection open.
pub async fn hostile_server(payload: fn(usize) -> Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let header = "<?xml version='1.0'?><stream:stream from='localhost' id='s' \
                    version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
                let mut buf = String::new();
                let steps: [(&str, String); 4] = [
                    ("<stream:stream", format!("{header}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>")),
                    ("</auth>", "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>".into()),
                    ("<stream:stream", format!("{header}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")),
                    ("</iq>", "<iq type='result' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>bot@localhost/talon</jid></bind></iq>".into()),
                ];
                for (marker, answer) in steps {
                    if !read_until(&mut stream, &mut buf, marker).await {
                        return;
                    }
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
                if !read_until(&mut stream, &mut buf, "<presence/>").await {
                    return;
                }
                let _ = stream.write_all(&payload(n)).await;
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    (port, count)
}
