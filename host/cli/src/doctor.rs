//! `talon doctor`: what stands between this machine and a working Talon.
//! Each check is one line, `ok`, `warn` or `fail`, with a hint when there is
//! something to do; any `fail` makes the exit code non-zero.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde::Serialize;
use serde_json::Value;
use talon_kernel::config::Config;
use talon_kernel::home::Home;

use crate::client::{Client, ClientArgs};
use crate::daemon_file::DaemonFile;
use crate::output::{self, DIM, FAIL, OK, WARN};

/// Flags of `talon doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    status: Status,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

impl Check {
    fn ok(check: &'static str, message: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Ok,
            message: message.into(),
            hint: None,
        }
    }

    fn warn(check: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Warn,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    fn fail(check: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            ..Self::warn(check, message, hint)
        }
    }
}

/// Below this much free space in the home, a warning; below a tenth of it, a failure.
const LOW_DISK_BYTES: u64 = 1 << 30;

/// Runs every check and prints the report.
pub fn run(home: &Home, config_path: Option<&Path>, args: DoctorArgs) -> anyhow::Result<()> {
    let mut checks = Vec::new();
    let config = check_config(home, config_path, &mut checks);
    checks.push(check_disk(home));
    // A home without a daemon has nothing more to ask it.
    let daemon = check_daemon(
        home,
        config_path,
        &args.client,
        config.as_ref(),
        &mut checks,
    );
    match &daemon {
        Some(client) => {
            checks.push(check_plugins(client));
            checks.push(check_keys_of_daemon(client));
        }
        None => checks.push(check_keys_here()),
    }
    checks.push(check_rust_target());
    checks.push(check_componentize_py());
    checks.push(check_node());

    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if args.json {
        output::print_json(&serde_json::json!({ "ok": failed == 0, "checks": checks }))?;
    } else {
        for c in &checks {
            let status = match c.status {
                Status::Ok => format!("{OK}ok  {OK:#}"),
                Status::Warn => format!("{WARN}warn{WARN:#}"),
                Status::Fail => format!("{FAIL}fail{FAIL:#}"),
            };
            anstream::println!("{status} {:<10} {}", c.check, c.message);
            if let Some(hint) = &c.hint {
                anstream::println!("     {DIM}{:<10} hint: {hint}{DIM:#}", "");
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => anyhow::bail!("{n} check(s) failed"),
    }
}

fn check_config(
    home: &Home,
    config_path: Option<&Path>,
    checks: &mut Vec<Check>,
) -> Option<Config> {
    let path = config_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home.config_file());
    if !path.exists() {
        checks.push(Check::ok(
            "config",
            format!("no {} (the defaults apply)", path.display()),
        ));
        return Some(Config::default());
    }
    match Config::load(&path) {
        Ok(config) => {
            checks.push(Check::ok("config", format!("{} is valid", path.display())));
            Some(config)
        }
        Err(e) => {
            checks.push(Check::fail(
                "config",
                format!("{}: {e}", path.display()),
                "fix the file: `talon start` refuses to start with it",
            ));
            None
        }
    }
}

fn check_disk(home: &Home) -> Check {
    // The home may not exist yet: measure the nearest directory that does.
    let dir = home.root().ancestors().find(|d| d.is_dir());
    let Some(free) = dir.and_then(free_bytes) else {
        return Check::warn(
            "disk",
            format!("cannot measure free space for {}", home.root().display()),
            "check that the home's parent directory exists and is readable",
        );
    };
    let message = format!(
        "{:.1} GiB free for {}",
        free as f64 / (1u64 << 30) as f64,
        home.root().display()
    );
    if free < LOW_DISK_BYTES / 10 {
        Check::fail(
            "disk",
            message,
            "free some space: the database and plugins live there",
        )
    } else if free < LOW_DISK_BYTES {
        Check::warn(
            "disk",
            message,
            "little space left: the database and plugins live there",
        )
    } else {
        Check::ok("disk", message)
    }
}

#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs the call fills in.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// Reports on this home's daemon; answers a client when one is reachable.
fn check_daemon(
    home: &Home,
    config_path: Option<&Path>,
    args: &ClientArgs,
    config: Option<&Config>,
    checks: &mut Vec<Check>,
) -> Option<Client> {
    let client = match Client::new(home, config_path, args) {
        Ok(client) => client,
        Err(e) => {
            checks.push(Check::fail(
                "daemon",
                format!("{e:#}"),
                "fix the configuration first",
            ));
            return None;
        }
    };
    if client.daemon_is_running() {
        let pid = DaemonFile::read(home)
            .map(|d| format!(" (pid {})", d.pid))
            .unwrap_or_default();
        checks.push(Check::ok(
            "daemon",
            format!("running at {}{pid}", client.base()),
        ));
        return Some(client);
    }
    match DaemonFile::read(home) {
        Some(file) if file.is_alive() => checks.push(Check::fail(
            "daemon",
            format!(
                "pid {} listens on {} but does not answer /api/health",
                file.pid, file.listen
            ),
            "its log says why; stop it and start it again",
        )),
        Some(file) => checks.push(Check::warn(
            "daemon",
            format!(
                "not running (daemon.json names pid {}, which is gone)",
                file.pid
            ),
            "`talon start` starts it and replaces the stale file",
        )),
        None => checks.push(Check::warn(
            "daemon",
            format!("not running for {}", home.root().display()),
            "start it with `talon start`",
        )),
    }
    if let Some(config) = config {
        checks.push(check_port(&config.api_listen));
    }
    None
}

/// Whether `talon start` could listen where the config says.
fn check_port(listen: &str) -> Check {
    let addr: std::net::SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        Err(_) => {
            return Check::fail(
                "port",
                format!("api_listen `{listen}` is not an address"),
                "use host:port, such as 127.0.0.1:4545",
            );
        }
    };
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Check::ok("port", format!("{addr} is free for `talon start`")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Check::fail(
            "port",
            format!("{addr} is in use by another process"),
            "stop it, set api_listen in config.toml, or pass `talon start --listen <addr>`",
        ),
        Err(e) => Check::fail(
            "port",
            format!("cannot listen on {addr}: {e}"),
            "choose another api_listen",
        ),
    }
}

fn check_plugins(client: &Client) -> Check {
    let report = match client.get("/api/plugins/doctor") {
        Ok(report) => report,
        Err(e) => return Check::fail("plugins", format!("{e:#}"), "the daemon's log says more"),
    };
    let plugins = report["plugins"].as_array().cloned().unwrap_or_default();
    let named = |status: &str| -> Vec<String> {
        plugins
            .iter()
            .filter(|p| p["status"].as_str() == Some(status))
            .map(|p| output::text(&p["name"]))
            .collect()
    };
    let failed = named("error");
    if !failed.is_empty() {
        return Check::fail(
            "plugins",
            format!("failed to load: {}", failed.join(", ")),
            "`talon plugin list` and GET /api/plugins/{name} tell why; reinstall, disable or remove them",
        );
    }
    let loading = named("loading");
    if !loading.is_empty() {
        return Check::warn(
            "plugins",
            format!("still compiling: {}", loading.join(", ")),
            "wait for them; a first compile of a large component takes a while",
        );
    }
    let problems: Vec<String> = plugins
        .iter()
        .flat_map(|p| {
            let name = output::text(&p["name"]);
            p["problems"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |problem| format!("{name}: {}", output::text(&problem)))
        })
        .collect();
    if !problems.is_empty() {
        return Check::warn(
            "plugins",
            problems.join("; "),
            "GET /api/plugins/doctor lists each plugin's problems",
        );
    }
    Check::ok(
        "plugins",
        format!(
            "{} installed, {} disabled, none failing",
            plugins.len(),
            named("disabled").len()
        ),
    )
}

/// The keys the daemon's agents need, as the daemon sees them (it reads
/// them from its own environment, not the shell's).
fn check_keys_of_daemon(client: &Client) -> Check {
    let (agents, providers) = match (client.get("/api/agents"), client.get("/api/providers")) {
        (Ok(a), Ok(p)) => (a, p),
        (Err(e), _) | (_, Err(e)) => {
            return Check::fail("keys", format!("{e:#}"), "the daemon's log says more");
        }
    };
    let used: BTreeSet<&str> = agents["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["model_provider"].as_str())
        .collect();
    let providers: Vec<&Value> = providers["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let missing: Vec<String> = providers
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| used.contains(n)))
        .filter(|p| p["auth_status"].as_str() == Some("missing"))
        .map(|p| {
            format!(
                "{} ({})",
                output::text(&p["name"]),
                output::text(&p["api_key_env"])
            )
        })
        .collect();
    if !missing.is_empty() {
        return Check::fail(
            "keys",
            format!("agents use providers without a key: {}", missing.join(", ")),
            "set the variable where the daemon runs and restart it, or POST /api/providers/{name}/key",
        );
    }
    let configured: Vec<String> = providers
        .iter()
        .filter(|p| p["auth_status"].as_str() == Some("configured"))
        .map(|p| output::text(&p["name"]))
        .collect();
    match (configured.is_empty(), used.is_empty()) {
        (true, true) => Check::warn(
            "keys",
            "the daemon has no provider key",
            "export OPENAI_API_KEY (or another provider's key) before `talon start`; \
             local servers (ollama, vllm, lmstudio) need none",
        ),
        _ => Check::ok(
            "keys",
            format!(
                "every agent's provider is usable; keys set: {}",
                list_or_none(&configured)
            ),
        ),
    }
}

/// Without a daemon: the keys in this shell, which a daemon started from it inherits.
fn check_keys_here() -> Check {
    let set: Vec<String> = talon_llm::builtin_providers()
        .into_iter()
        .filter(|p| p.key_required)
        .filter(|p| std::env::var_os(&p.api_key_env).is_some_and(|v| !v.is_empty()))
        .map(|p| format!("{} ({})", p.name, p.api_key_env))
        .collect();
    match set.is_empty() {
        true => Check::warn(
            "keys",
            "no provider key in this shell's environment",
            "export OPENAI_API_KEY (or another provider's key) before `talon start`; \
             local servers (ollama, vllm, lmstudio) need none",
        ),
        false => Check::ok("keys", format!("in this shell: {}", set.join(", "))),
    }
}

fn list_or_none(items: &[String]) -> String {
    match items.is_empty() {
        true => "none".to_string(),
        false => items.join(", "),
    }
}

/// The first line a tool prints for `args`, if it runs and succeeds.
fn tool_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    })
}

fn check_rust_target() -> Check {
    const WHY: &str = "to build Rust plugins";
    match Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    {
        Ok(out) if out.status.success() => {
            let listed = String::from_utf8_lossy(&out.stdout);
            match listed.lines().any(|l| l.trim() == "wasm32-wasip2") {
                true => Check::ok("rust", "target wasm32-wasip2 installed"),
                false => Check::warn(
                    "rust",
                    format!("target wasm32-wasip2 missing ({WHY})"),
                    "rustup target add wasm32-wasip2",
                ),
            }
        }
        _ => Check::warn(
            "rust",
            format!("rustup not found ({WHY})"),
            "install Rust from https://rustup.rs, then `rustup target add wasm32-wasip2`",
        ),
    }
}

fn check_componentize_py() -> Check {
    match tool_output("componentize-py", &["--version"]) {
        Some(version) => Check::ok("python", version),
        None => Check::warn(
            "python",
            "componentize-py not found (to build Python plugins)",
            "pip install componentize-py",
        ),
    }
}

fn check_node() -> Check {
    let node = tool_output("node", &["--version"]);
    let npm = tool_output("npm", &["--version"]);
    let jco = tool_output("jco", &["--version"]);
    match (node, npm) {
        (Some(node), Some(npm)) => Check::ok(
            "js",
            format!(
                "node {node}, npm {npm}, jco {}",
                jco.unwrap_or_else(|| "per project (npm installs it)".to_string())
            ),
        ),
        _ => Check::warn(
            "js",
            "node and npm not found (to build JavaScript plugins with jco)",
            "install Node.js 20 or later (https://nodejs.org); jco comes with each project's npm packages",
        ),
    }
}
