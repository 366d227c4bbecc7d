//! `daemon.json` in the data directory: the running daemon's pid and
//! address, written when it binds and removed when it stops. The one place
//! that knows its format: `talon start` writes it and checks for a daemon
//! already running; the client commands find their daemon through it.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use talon_kernel::home::Home;

/// What a daemon records about itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DaemonFile {
    /// Its process id.
    pub pid: u32,
    /// Where its API listens.
    pub listen: SocketAddr,
}

impl DaemonFile {
    /// The file of `home`'s daemon, if there is a readable one (it may be
    /// left over from a crash: see [`DaemonFile::is_alive`]).
    pub(crate) fn read(home: &Home) -> Option<Self> {
        let text = std::fs::read_to_string(home.daemon_file()).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(Self {
            pid: u32::try_from(value.get("pid")?.as_u64()?).ok()?,
            listen: value.get("listen")?.as_str()?.parse().ok()?,
        })
    }

    /// Records this process as the daemon listening on `listen`.
    pub(crate) fn write(path: &Path, listen: SocketAddr) -> anyhow::Result<()> {
        let body = serde_json::json!({
            "pid": std::process::id(),
            "listen": listen.to_string(),
        });
        std::fs::write(path, body.to_string())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Whether the process still exists and its address accepts connections.
    pub(crate) fn is_alive(&self) -> bool {
        let exists = i32::try_from(self.pid)
            // SAFETY: kill(2) with signal 0 only checks that the process exists.
            .is_ok_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        exists
            && std::net::TcpStream::connect_timeout(&self.listen, std::time::Duration::from_secs(1))
                .is_ok()
    }
}
