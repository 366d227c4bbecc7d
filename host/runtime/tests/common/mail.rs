//! Real mail servers for the email channel tests, each on a free loopback
//! port with its files in a temporary directory: Dovecot (IMAP, a
//! passwd-file user, Maildir storage the test delivers into by writing
//! files) and aiosmtpd (SMTP, storing what it receives in a Maildir the
//! test reads). Written to be reused by the daemon-level tests as well:
//! nothing here depends on the runtime.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[path = "ports.rs"]
mod ports;

/// Starts a server with `spawn(port)` on a free port until it listens
/// there (readiness, not timing: the server itself holds the port).
async fn start_listening(what: &str, log: &Path, spawn: impl Fn(u16) -> Child) -> (u16, Child) {
    for _ in 0..ports::ATTEMPTS {
        let port = ports::free_port();
        let mut child = spawn(port);
        if ports::listening(&mut child, &[port]).await {
            return (port, child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!(
        "{what} did not start listening on a free port: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn id_of(flag: &str) -> String {
    Command::new("id")
        .arg(flag)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// A Dovecot IMAP server with one user; killed on drop.
pub struct Dovecot {
    pub port: u16,
    pub user: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The uid and gid mail is stored as.
    owner: (u32, u32),
}

impl Dovecot {
    /// Starts a server with the account `user`/`password`.
    pub async fn start(user: &str, password: &str) -> Self {
        assert!(
            Path::new("/usr/sbin/dovecot").exists(),
            "dovecot is not installed: apt-get install -y dovecot-imapd (scripts/test installs it)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        // Dovecot never stores mail as root: as root, mail belongs to nobody.
        let root = id_of("-u") == "0";
        let (internal_user, internal_group, owner) = if root {
            ("nobody".to_string(), "nogroup".to_string(), (65534, 65534))
        } else {
            let uid = id_of("-u").parse().unwrap_or(1000);
            let gid = id_of("-g").parse().unwrap_or(1000);
            (id_of("-un"), id_of("-gn"), (uid, gid))
        };
        let mut server = Self {
            port: 0,
            user: user.to_string(),
            dir,
            child: None,
            owner,
        };
        let base = server.dir.path().to_path_buf();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(base.join(sub)).expect("dovecot dirs");
        }
        std::fs::write(
            base.join("passwd"),
            format!("{user}:{{PLAIN}}{password}::::::\n"),
        )
        .expect("passwd");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(server.maildir().join(sub)).expect("Maildir");
        }
        server.chown(&base.join("home"));
        // The temp dir itself must be traversable by the mail user.
        set_mode(&base, 0o755);
        let config = |port: u16| {
            format!(
                "base_dir = {base}/run\n\
                 state_dir = {base}/state\n\
                 log_path = {base}/dovecot.log\n\
                 protocols = imap\n\
                 listen = 127.0.0.1\n\
                 ssl = no\n\
                 disable_plaintext_auth = no\n\
                 auth_mechanisms = plain login\n\
                 first_valid_uid = 1\n\
                 default_internal_user = {internal_user}\n\
                 default_internal_group = {internal_group}\n\
                 default_login_user = {internal_user}\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {base}/passwd\n}}\n\
                 userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={base}/home/%u\n}}\n\
                 mail_location = maildir:~/Maildir\n\
                 service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
                 inet_listener imaps {{\n    port = 0\n  }}\n  chroot =\n}}\n\
                 service anvil {{\n  chroot =\n}}\n",
                base = base.display(),
                uid = owner.0,
                gid = owner.1,
            )
        };
        let (port, child) = start_listening("dovecot", &base.join("dovecot.log"), |port| {
            std::fs::write(base.join("dovecot.conf"), config(port)).expect("dovecot.conf");
            Command::new("/usr/sbin/dovecot")
                .arg("-F")
                .arg("-c")
                .arg(base.join("dovecot.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start dovecot")
        })
        .await;
        server.port = port;
        server.child = Some(child);
        server
    }

    /// The user's Maildir.
    pub fn maildir(&self) -> PathBuf {
        self.dir
            .path()
            .join("home")
            .join(&self.user)
            .join("Maildir")
    }

    fn chown(&self, path: &Path) {
        let _ = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.owner.0, self.owner.1))
            .arg(path)
            .status();
    }

    /// Delivers a raw message into the user's INBOX, as a local delivery
    /// agent does: written in `tmp/`, then moved into `new/`.
    pub fn deliver(&self, name: &str, raw: &[u8]) {
        let tmp = self.maildir().join("tmp").join(name);
        std::fs::write(&tmp, raw).expect("write message");
        self.chown(&tmp);
        std::fs::rename(&tmp, self.maildir().join("new").join(name)).expect("deliver message");
    }

    /// How many of the user's messages carry the `\Seen` flag.
    pub fn seen(&self) -> usize {
        std::fs::read_dir(self.maildir().join("cur"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.rsplit_once(":2,")
                            .is_some_and(|(_, f)| f.contains('S'))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.kill();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// The Python with aiosmtpd: `TALON_SMTP_PYTHON`, else the virtualenv
/// `scripts/test` makes.
fn smtp_python() -> PathBuf {
    if let Some(python) = std::env::var_os("TALON_SMTP_PYTHON") {
        return PathBuf::from(python);
    }
    let venv =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-tools/smtp-venv/bin/python");
    assert!(
        venv.exists(),
        "aiosmtpd is not installed: run scripts/test once, or set TALON_SMTP_PYTHON"
    );
    venv
}

/// An aiosmtpd SMTP server storing what it receives; killed on drop.
pub struct Smtpd {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Smtpd {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("smtpd.log");
        let (port, child) = start_listening("aiosmtpd", &log, |port| {
            Command::new(smtp_python())
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(dir.path().join("Maildir"))
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(&log)
                        .map(Stdio::from)
                        .unwrap_or(Stdio::null()),
                )
                .spawn()
                .expect("cannot start aiosmtpd")
        })
        .await;
        Self {
            port,
            dir,
            child: Some(child),
        }
    }

    /// Every message received so far, as stored.
    pub fn received(&self) -> Vec<String> {
        let mut messages: Vec<(std::time::SystemTime, String)> =
            std::fs::read_dir(self.dir.path().join("Maildir/new"))
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter_map(|e| {
                            let modified = e.metadata().ok()?.modified().ok()?;
                            Some((modified, std::fs::read_to_string(e.path()).ok()?))
                        })
                        .collect()
                })
                .unwrap_or_default();
        messages.sort();
        messages.into_iter().map(|(_, m)| m).collect()
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of header `name` in a raw message (first occurrence, folded
/// lines joined).
pub fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\n\n").next()?.replace("\r\n", "\n");
    let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
    unfolded.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// The body of a raw message, quoted-printable decoded, with LF line ends.
pub fn qp_body(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let body = raw.split_once("\n\n").map(|(_, b)| b).unwrap_or_default();
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(b) = joined
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A plain-text message from Alice to bot@localhost, as a mail client
/// writes it (`extra_headers`: whole lines, each ending in CRLF).
pub fn mail(id: &str, subject: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice Example <alice@example.org>\r\nTo: bot@localhost\r\n\
         Subject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Tue, 10 Sep 2002 23:08:25 +0000\r\n\
         {extra_headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
    .into_bytes()
}
