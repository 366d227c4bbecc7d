//! Loopback ports for the real servers the tests start, and readiness that
//! proves a port is the server's own.
//!
//! A port from [`free_port`] is free when it is chosen, not when the server
//! binds it: a test running in parallel may bind port 0 in between and be
//! given the same number. The server then fails to bind (ngircd logs it and
//! carries on with its other ports), and a readiness check that only
//! connects would find the other test's listener instead. So readiness here
//! asks the kernel which process listens on the port, and a server that lost
//! its port is started again on new ones.

use std::net::TcpListener;
use std::process::Child;
use std::time::{Duration, Instant};

/// How often a server is started on new ports before the test gives up.
pub const ATTEMPTS: usize = 5;

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Waits until `child` listens on every port in `ports`. False when it
/// exited, when another process holds one of the ports (the server cannot
/// bind it), or when it does not listen within a generous bound.
pub async fn listening(child: &mut Child, ports: &[u16]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        let holders: Vec<Holder> = ports.iter().map(|&port| holder(child.id(), port)).collect();
        if holders.contains(&Holder::Other) {
            return false;
        }
        if holders.iter().all(|h| *h == Holder::Child) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Who listens on a loopback TCP port.
#[derive(PartialEq)]
enum Holder {
    Nobody,
    Child,
    Other,
}

/// Who listens on `port`: process `pid`, another, or nobody. Where `pid`'s
/// descriptors cannot be read (another user's process, without root), any
/// listener counts as `pid`'s.
fn holder(pid: u32, port: u16) -> Holder {
    let inodes = listeners(port);
    if inodes.is_empty() {
        return Holder::Nobody;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Holder::Child;
    };
    let sockets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let owned = fds.filter_map(Result::ok).any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| sockets.iter().any(|s| target.as_os_str() == s.as_str()))
    });
    if owned { Holder::Child } else { Holder::Other }
}

/// The socket inodes listening on TCP `port`, from `/proc/net/tcp{,6}`.
fn listeners(port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    let local_port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
                    (local.ends_with(&local_port) && *state == LISTEN).then(|| inode.to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
