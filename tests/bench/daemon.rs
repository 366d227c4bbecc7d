//! What the benchmark programs share: starting and stopping the release
//! daemon, timing its first answer, reading its resident memory, percentiles.

// Each benchmark program compiles this module and uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon to measure: this build's release binary, or the one
/// `TALON_BENCH_BIN` names, so that an earlier release can be measured by
/// the same client in the same run (docs/BENCHMARKS.md, side by side).
pub fn binary() -> std::ffi::OsString {
    std::env::var_os("TALON_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_talon").into())
}

/// Starts `talon start` (see [`binary`]) of `home` listening on `listen`,
/// its first line (`talon listening on ...`) to be read from its stdout.
fn start(home: &Path, listen: &str) -> Child {
    Command::new(binary())
        .arg("--home")
        .arg(home)
        .args(["start", "--listen", listen])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn talon")
}

/// Starts `talon start` on a free port of `home`; the child and its base URL.
pub fn spawn(home: &Path) -> (Child, String) {
    let mut child = start(home, "127.0.0.1:0");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read address");
    let url = line
        .trim()
        .strip_prefix("talon listening on ")
        .expect("address line")
        .to_string();
    (child, url)
}

/// A daemon started by [`time_to_first_health`], and how long it took.
pub struct Started {
    /// Exec to the first `200` on `/api/health`: the API answers from the
    /// moment it binds, while installed plugins are still loading.
    pub first_health: Duration,
    /// Exec to its `talon listening on ...` line: everything installed is
    /// loaded and running (what scripts and tests wait for).
    pub ready: Duration,
    pub child: Child,
    pub url: String,
}

/// Starts the daemon on `home` on a free port and polls `/api/health` from
/// the moment of exec, with a raw HTTP/1.1 request so the client adds
/// nothing to the figure; returns once the daemon is also ready.
pub fn time_to_first_health(home: &Path) -> Started {
    // The port is chosen here, not by the daemon, so polling can start
    // before the daemon says where it listens.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let started = Instant::now();
    let mut child = start(home, &addr);
    let stdout = child.stdout.take().expect("stdout");
    let ready = std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read address");
        assert!(line.starts_with("talon listening on "), "{line}");
        started.elapsed()
    });
    let request = format!("GET /api/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let first_health = loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(&addr)
            && stream.write_all(request.as_bytes()).is_ok()
        {
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 200") {
                break started.elapsed();
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let ready = ready.join().expect("the daemon's first line");
    Started {
        first_health,
        ready,
        child,
        url: format!("http://{addr}"),
    }
}

/// Kills the daemon and reaps it.
pub fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Resident memory of a process, in KiB (0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user and system) a process has used so far, from `/proc`:
/// what a request costs the daemon whatever else the machine runs.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in brackets.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / per_second)
}

/// Waits until the process has used less than 2 % of a core for a whole
/// half-second (its start-up work, such as the retention sweep over a large
/// store, is over); how long that took.
pub fn wait_idle(pid: u32) -> Duration {
    let started = Instant::now();
    let window = Duration::from_millis(500);
    loop {
        let before = cpu_time(pid);
        std::thread::sleep(window);
        if cpu_time(pid) - before < window / 50 || started.elapsed() > Duration::from_secs(600) {
            return started.elapsed();
        }
    }
}

/// The `p` quantile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
