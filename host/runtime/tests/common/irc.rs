//! A real IRC server for the channel tests (ngircd on a free loopback
//! port, with a generated configuration in a temporary directory) and a
//! person on it: a few lines of raw IRC over a TCP stream.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

#[path = "ports.rs"]
mod ports;

/// An ngircd process; killed on drop.
pub struct Ngircd {
    pub port: u16,
    /// The implicit-TLS port, when started with a certificate.
    pub tls_port: Option<u16>,
    /// The certificate and key files (PEM) of the TLS port.
    tls: Option<(PathBuf, PathBuf)>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn ngircd_binary() -> PathBuf {
    ["/usr/sbin/ngircd", "/usr/bin/ngircd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("ngircd is not installed: apt-get install -y ngircd (scripts/test installs it)")
}

impl Ngircd {
    /// Starts a server and waits until it accepts connections.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a server that also speaks implicit TLS on `tls_port` with the
    /// PEM files `cert` and `key` (people still join on the plain `port`).
    pub async fn start_tls(cert: PathBuf, key: PathBuf) -> Self {
        Self::start_with(Some((cert, key))).await
    }

    async fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Self {
        let mut server = Self {
            port: 0,
            tls_port: None,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            tls,
        };
        for _ in 0..ports::ATTEMPTS {
            server.port = ports::free_port();
            server.tls_port = server.tls.as_ref().map(|_| ports::free_port());
            if server.spawn().await {
                return server;
            }
            server.kill();
        }
        panic!("ngircd did not start listening on free ports");
    }

    /// Starts ngircd on the chosen ports; false when it does not come to
    /// listen on them all.
    async fn spawn(&mut self) -> bool {
        let config = self.dir.path().join("ngircd.conf");
        let motd = self.dir.path().join("motd");
        std::fs::write(&motd, "Talon test server\n").expect("write motd");
        std::fs::write(
            &config,
            format!(
                "[Global]\nName = irc.talon.test\nInfo = Talon test server\n\
                 Listen = 127.0.0.1\nPorts = {port}\nMotdFile = {motd}\n\
                 PidFile = {pid}\nServerUID = {uid}\nServerGID = {gid}\n\
                 [Limits]\nPingTimeout = 120\nPongTimeout = 20\nMaxConnectionsIP = 0\n\
                 [Options]\nPAM = no\nIdent = no\nDNS = no\n{ssl}",
                port = self.port,
                ssl = match (&self.tls, self.tls_port) {
                    (Some((cert, key)), Some(port)) => format!(
                        "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {port}\n",
                        cert.display(),
                        key.display()
                    ),
                    _ => String::new(),
                },
                motd = motd.display(),
                pid = self.dir.path().join("ngircd.pid").display(),
                uid = uid(),
                gid = gid(),
            ),
        )
        .expect("write ngircd.conf");
        let child = Command::new(ngircd_binary())
            .arg("-n")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start ngircd");
        // Readiness, not timing: wait until ngircd itself listens.
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        ports::listening(self.child.insert(child), &ports).await
    }

    /// Kills the server (every client is dropped) and starts it again on
    /// the same port.
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn().await,
            "ngircd did not listen again on port {}",
            self.port
        );
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        self.kill();
    }
}

// ngircd refuses to run as root without a user to switch to; run it as
// whoever runs the tests.
fn uid() -> String {
    id_of("-u").unwrap_or_else(|| "0".into())
}

fn gid() -> String {
    id_of("-g").unwrap_or_else(|| "0".into())
}

fn id_of(flag: &str) -> Option<String> {
    let out = Command::new("id").arg(flag).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A person on the server.
pub struct Person {
    pub nick: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// A PRIVMSG a person received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    pub from: String,
    pub to: String,
    pub text: String,
    /// The whole line as it came, without CR LF.
    pub raw: String,
}

impl Person {
    /// Connects, registers and joins `channel`.
    pub async fn join(port: u16, nick: &str, channel: &str) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to ngircd");
        stream.set_nodelay(true).expect("nodelay");
        let (read, writer) = stream.into_split();
        let mut person = Self {
            nick: nick.to_string(),
            reader: BufReader::new(read),
            writer,
        };
        person.send(&format!("NICK {nick}")).await;
        person.send(&format!("USER {nick} 0 * :{nick}")).await;
        person
            .wait_for(|l| l.split(' ').nth(1) == Some("001"))
            .await;
        person.send(&format!("JOIN {channel}")).await;
        person
            .wait_for(|l| l.split(' ').nth(1) == Some("366"))
            .await;
        person
    }

    /// Sends one raw line.
    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write to ngircd");
    }

    /// Says `text` to a channel or a nick.
    pub async fn say(&mut self, to: &str, text: &str) {
        self.send(&format!("PRIVMSG {to} :{text}")).await;
    }

    /// Reads lines (answering PINGs) until one matches; returns it.
    pub async fn wait_for(&mut self, matches: impl Fn(&str) -> bool) -> String {
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .await
                .expect("read from ngircd");
            assert!(n > 0, "ngircd closed the connection of {}", self.nick);
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            if let Some(token) = line.strip_prefix("PING ") {
                let token = token.to_string();
                self.send(&format!("PONG {token}")).await;
                continue;
            }
            if matches(&line) {
                return line;
            }
        }
    }

    /// The next PRIVMSG that reaches this person.
    pub async fn next_privmsg(&mut self) -> Said {
        let raw = self
            .wait_for(|l| l.split(' ').nth(1) == Some("PRIVMSG"))
            .await;
        let mut parts = raw.splitn(4, ' ');
        let prefix = parts.next().unwrap_or_default();
        let _command = parts.next();
        let to = parts.next().unwrap_or_default().to_string();
        let text = parts
            .next()
            .unwrap_or_default()
            .trim_start_matches(':')
            .to_string();
        let from = prefix
            .trim_start_matches(':')
            .split('!')
            .next()
            .unwrap_or_default()
            .to_string();
        Said {
            from,
            to,
            text,
            raw,
        }
    }
}
