//! The command line for daily work, driven as a user drives it: agents
//! spawned from a manifest file and talked to (a tool call shown as it
//! happens), cron jobs, logs, doctor, completions, a closed pipe, and the
//! question `talon plugin install` asks on a terminal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::manifest;
use crate::harness::{Daemon, talon_bin};
use crate::plugins::{Publisher, run_ok, trust};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must fail, and returns what it said on stderr:
/// the daemon's message, never a panic or a debug dump.
fn run_err(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.cli(args);
    assert!(
        !out.status.success(),
        "talon {} should fail: {}",
        args.join(" "),
        stdout(&out)
    );
    let said = stderr(&out);
    assert!(
        !said.contains("panicked") && !said.contains("DaemonError {"),
        "{said}"
    );
    said
}

fn run_json(daemon: &Daemon, args: &[&str]) -> Value {
    let out = run_ok(daemon, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test]
async fn an_agent_from_a_manifest_file_chats_and_calls_a_tool() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    // The operator's way in: a signed package installed with the CLI.
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "plugins/file_read", "file_read");
    run_ok(&daemon, &["plugin", "install", &package, "--grant-all"]);
    let plugins = run_json(&daemon, &["plugin", "list", "--json"]);
    assert_eq!(plugins["plugins"][0]["name"], "file_read", "{plugins}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reader.toml");
    std::fs::write(
        &file,
        manifest("reader", &llm, "gpt-4o-mini", &["file_read"]),
    )
    .unwrap();
    let spawned = run_ok(&daemon, &["agent", "new", file.to_str().unwrap()]);
    assert!(spawned.contains("spawned reader"), "{spawned}");

    let listed = run_json(&daemon, &["agent", "list", "--json"]);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["name"], "reader");
    let id = items[0]["id"].as_str().unwrap().to_string();
    let table = run_ok(&daemon, &["agent", "list"]);
    assert!(
        table.contains("reader") && table.contains(&id) && table.contains("ollama/gpt-4o-mini"),
        "{table}"
    );
    // Off a terminal: no escape codes.
    assert!(!table.contains('\x1b'), "{table:?}");
    let shown = run_json(&daemon, &["agent", "show", "reader", "--json"]);
    assert_eq!(shown["id"], id.as_str());
    let shown = run_ok(&daemon, &["agent", "show", &id]);
    assert!(shown.contains("file_read"), "{shown}");

    let saved = daemon
        .put(
            &format!("/api/agents/{id}/files/note.txt"),
            json!({ "content": "remember the milk" }),
        )
        .await;
    assert_eq!(saved.status(), 200);
    llm.push_all([
        Reply::tool_call("file_read", r#"{"path": "note.txt"}"#),
        Reply::text("The note says: remember the milk.").in_chunks(4),
    ]);
    let chat = daemon.cli(&["agent", "chat", "reader", "-m", "read my note"]);
    let said = stdout(&chat);
    assert!(chat.status.success(), "{said}{}", stderr(&chat));
    let tool_line = said
        .lines()
        .position(|l| l.starts_with("[tool] file_read"))
        .unwrap_or_else(|| panic!("a tool line in {said}"));
    let lines: Vec<&str> = said.lines().collect();
    assert!(lines[tool_line].contains(r#""path":"note.txt""#), "{said}");
    assert!(
        lines[tool_line + 1].contains("=> ") && lines[tool_line + 1].contains("remember the milk"),
        "{said}"
    );
    assert!(
        said.trim_end()
            .ends_with("The note says: remember the milk."),
        "{said}"
    );
    assert!(stderr(&chat).contains("iterations"), "{}", stderr(&chat));

    // The same turn as JSON lines, for scripts.
    llm.push_all([
        Reply::tool_call("file_read", r#"{"path": "missing.txt"}"#),
        Reply::text("No such note."),
    ]);
    let events = run_ok(&daemon, &["agent", "chat", &id, "-m", "again", "--json"]);
    let events: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let result = events
        .iter()
        .find(|e| e["event"] == "tool_result")
        .expect("a tool_result event");
    assert_eq!(result["data"]["is_error"], true, "{result}");
    assert_eq!(events.last().unwrap()["event"], "done");

    // A failing model is an error exit with the reason.
    llm.push(Reply::error(400, "model exploded"));
    let failed = run_err(&daemon, &["agent", "chat", "reader", "-m", "boom"]);
    assert!(failed.contains("model exploded"), "{failed}");

    // Messages read from stdin, one per line.
    llm.push_all([Reply::text("one"), Reply::text("two")]);
    let mut piped = daemon
        .cli_command(&["agent", "chat", "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = piped.stdin.take().unwrap();
        stdin.write_all(b"first\n\nsecond\n").unwrap();
    }
    let out = piped.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "one\ntwo\n");

    let removed = run_ok(&daemon, &["agent", "rm", "reader"]);
    assert!(removed.contains("removed reader"), "{removed}");
    let listed = run_json(&daemon, &["agent", "list", "--json"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn agent_mistakes_are_the_daemons_words_with_a_hint() {
    let daemon = Daemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "name = \"t\"\n[model\nprovider = \"openai\"\n").unwrap();
    let said = run_err(&daemon, &["agent", "new", broken.to_str().unwrap()]);
    assert!(
        said.contains("HTTP 400") && said.contains("line 2"),
        "{said}"
    );

    // Larger than the daemon takes: refused whole, nothing spawned.
    let huge = dir.path().join("huge.toml");
    let padding = "x".repeat(3 * 1024 * 1024);
    std::fs::write(
        &huge,
        format!("name = \"huge\"\ndescription = \"{padding}\"\n[model]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n"),
    )
    .unwrap();
    let said = run_err(&daemon, &["agent", "new", huge.to_str().unwrap()]);
    // The daemon answers 413 as soon as the headers announce the size and
    // closes; a CLI still writing the body may see the reset first, and
    // then says so, naming the same limit.
    assert!(
        (said.contains("HTTP 413") || said.contains("closed the connection"))
            && said.contains("max_body_bytes"),
        "{said}"
    );
    let listed = run_json(&daemon, &["agent", "list", "--json"]);
    assert_eq!(listed["total"], 0, "{listed}");

    let missing = dir.path().join("missing.toml");
    let said = run_err(&daemon, &["agent", "new", missing.to_str().unwrap()]);
    assert!(said.contains("cannot read the manifest"), "{said}");
    let said = run_err(&daemon, &["agent", "new", "no-such-template"]);
    assert!(
        said.contains("HTTP 404") && said.contains("hint:"),
        "{said}"
    );
    let said = run_err(&daemon, &["agent", "show", "nobody"]);
    assert!(said.contains("no agent named `nobody`"), "{said}");
    let said = run_err(
        &daemon,
        &["agent", "show", "6f1c0d7e-1111-4222-8333-944455556666"],
    );
    assert!(said.contains("HTTP 404"), "{said}");

    // From a template, renamed.
    let templates = run_json(&daemon, &["agent", "templates", "--json"]);
    let template = templates["templates"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let spawned = run_ok(
        &daemon,
        &[
            "agent",
            "new",
            &template,
            "--name",
            "from-template",
            "--json",
        ],
    );
    let spawned: Value = serde_json::from_str(&spawned).unwrap();
    assert_eq!(spawned["name"], "from-template");
}

#[tokio::test]
async fn a_wrong_key_is_explained() {
    let daemon = Daemon::start_with_config("api_key = \"right\"\n").await;
    let out = Command::new(talon_bin())
        .args(["--home", daemon.home().to_str().unwrap(), "agent", "list"])
        .env_remove("TALON_URL")
        .env("TALON_API_KEY", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("HTTP 401") && said.contains("hint:") && said.contains("--api-key"),
        "{said}"
    );
}

#[tokio::test]
async fn cron_jobs_are_added_listed_and_removed() {
    let daemon = Daemon::start().await;
    daemon.spawn_agent("digest").await;
    let added = run_ok(
        &daemon,
        &[
            "cron",
            "add",
            "--agent",
            "digest",
            "--schedule",
            "@hourly",
            "--prompt",
            "Prepare the digest.",
            "--name",
            "hourly-digest",
        ],
    );
    assert!(added.contains("added hourly-digest"), "{added}");
    let listed = run_json(&daemon, &["cron", "list", "--json"]);
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["jobs"][0]["name"], "hourly-digest");
    let by_agent = run_json(&daemon, &["cron", "list", "--agent", "digest", "--json"]);
    assert_eq!(by_agent["total"], 1);
    let table = run_ok(&daemon, &["cron", "list"]);
    assert!(
        table.contains("hourly-digest") && table.contains("@hourly"),
        "{table}"
    );

    let said = run_err(
        &daemon,
        &[
            "cron",
            "add",
            "--agent",
            "digest",
            "--schedule",
            "61 * * * *",
            "--prompt",
            "x",
        ],
    );
    assert!(said.contains("HTTP 400"), "{said}");
    let said = run_err(
        &daemon,
        &[
            "cron",
            "add",
            "--agent",
            "nobody",
            "--schedule",
            "@hourly",
            "--prompt",
            "x",
        ],
    );
    assert!(said.contains("no agent named"), "{said}");

    let removed = run_ok(&daemon, &["cron", "rm", "hourly-digest"]);
    assert!(removed.contains("deleted hourly-digest"), "{removed}");
    let listed = run_json(&daemon, &["cron", "list", "--json"]);
    assert_eq!(listed["total"], 0);
    let said = run_err(&daemon, &["cron", "rm", "hourly-digest"]);
    assert!(said.contains("no cron job"), "{said}");
}

#[tokio::test]
async fn logs_print_follow_and_filter() {
    let daemon = Daemon::start().await;
    daemon.spawn_agent("logged").await;
    let other = daemon.spawn_agent("other").await;
    let printed = run_ok(&daemon, &["logs", "-n", "10"]);
    assert!(printed.contains("agent_spawned"), "{printed}");
    let one = run_ok(&daemon, &["logs", "--agent", "logged", "--json"]);
    let lines: Vec<Value> = one
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{one}");
    assert_eq!(lines[0]["action"], "agent_spawned");
    let said = run_err(
        &daemon,
        &["logs", "--agent", "logged", "--level", "verbose"],
    );
    assert!(said.contains("HTTP 400"), "{said}");
    let said = run_err(&daemon, &["logs", "--level", "error"]);
    assert!(said.contains("--agent"), "{said}");

    // --follow: the backlog, then what happens next, filtered by agent.
    let mut follower = daemon
        .cli_command(&["logs", "--follow", "--agent", "other", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a log line");
        serde_json::from_str::<Value>(&line).unwrap()
    };
    let first = next();
    assert_eq!(first["event_type"], "agent_spawned");
    assert_eq!(first["agent_id"], other.as_str(), "{first}");
    let killed = daemon
        .request(reqwest::Method::DELETE, &format!("/api/agents/{other}"))
        .send()
        .await
        .unwrap();
    assert_eq!(killed.status(), 200);
    let second = next();
    assert_eq!(second["agent_id"], other.as_str(), "{second}");
    assert_ne!(second["event_type"], "agent_spawned", "{second}");
    follower.kill().unwrap();
    follower.wait().unwrap();
}

#[tokio::test]
async fn doctor_reports_each_check_and_fails_on_a_broken_config() {
    let daemon = Daemon::start().await;
    let report = daemon.cli(&["doctor", "--json"]);
    let text = stdout(&report);
    let report_json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let checks = report_json["checks"].as_array().unwrap();
    let status_of = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {report_json}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status_of("config"), "ok");
    assert_eq!(status_of("daemon"), "ok");
    assert_eq!(status_of("plugins"), "ok");
    for name in ["disk", "keys", "rust", "python", "js"] {
        assert!(
            ["ok", "warn"].contains(&status_of(name).as_str()),
            "{report_json}"
        );
    }
    // No key in the test daemon's environment: a warning with a hint, not a failure.
    assert!(
        checks
            .iter()
            .all(|c| c["status"] != "warn" || c["hint"].is_string())
    );
    assert_eq!(report_json["ok"], true);
    assert!(report.status.success(), "{}", stderr(&report));
    let plain = run_ok(&daemon, &["doctor"]);
    assert!(
        plain.lines().any(|l| l.starts_with("ok   daemon")),
        "{plain}"
    );

    // A home with a broken config and no daemon.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), "api_listen = 5\n").unwrap();
    let out = Command::new(talon_bin())
        .args(["--home", home.path().to_str().unwrap(), "doctor", "--json"])
        .env_remove("TALON_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false);
    let config = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "config")
        .unwrap();
    assert_eq!(config["status"], "fail", "{report}");
    assert!(stderr(&out).contains("check(s) failed"), "{}", stderr(&out));
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(talon_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = stdout(&out);
        assert!(
            script.contains("talon") && script.contains("agent") && script.contains("cron"),
            "{shell}"
        );
    }
    let out = Command::new(talon_bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_closed_pipe_ends_the_cli_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let daemon = Daemon::start().await;
    for i in 0..20 {
        daemon.spawn_agent(&format!("agent-{i}")).await;
    }
    for args in [
        &["agent", "list", "--json"][..],
        &["status"][..],
        &["logs", "-n", "100"][..],
    ] {
        let mut child = Command::new(talon_bin())
            .arg("--home")
            .arg(daemon.home())
            .args(args)
            .env_remove("TALON_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the answer is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let said = stderr(&out);
        assert!(!said.contains("panicked"), "{args:?}: {said}");
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {said}",
            out.status
        );
    }
    // The daemon is untouched by its clients' pipes, and its log, written to
    // a file, has no colour codes.
    assert!(daemon.cli(&["status"]).status.success());
    assert!(!daemon.log().contains('\x1b'), "{}", daemon.log());
}

/// Runs `talon args...` with a pseudo-terminal as its stdin, stdout and
/// stderr, as in an interactive shell; types `answer` once `prompt` shows.
/// Returns what it printed (line ends as `\n`) and whether it succeeded.
fn run_on_terminal(daemon: &Daemon, args: &[&str], prompt: &str, answer: &str) -> (String, bool) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use std::io::{Read, Write};

    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .expect("open a pseudo-terminal");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().expect("a UTF-8 terminal path"))
        .expect("open the terminal side");
    let mut command = daemon.cli_command(args);
    command
        .stdin(terminal.try_clone().expect("dup"))
        .stdout(terminal.try_clone().expect("dup"))
        .stderr(terminal);
    let mut child = command.spawn().expect("run talon");
    // The command holds the terminal side open: without dropping it, the
    // end of the child's output never shows as the end of the master's.
    drop(command);
    let mut master = std::fs::File::from(master);
    let mut output = Vec::new();
    let mut answered = false;
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => output.extend_from_slice(&buf[..n]),
            // Linux reports the terminal side closed as EIO.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => break,
            Err(e) => panic!("reading the terminal: {e}"),
        }
        if !answered && String::from_utf8_lossy(&output).contains(prompt) {
            master
                .write_all(answer.as_bytes())
                .expect("type the answer");
            answered = true;
        }
    }
    let status = child.wait().expect("wait for talon");
    let text = String::from_utf8_lossy(&output).replace("\r\n", "\n");
    assert!(answered, "no {prompt:?} on the terminal: {text}");
    (text, status.success())
}

#[tokio::test]
async fn install_asks_on_a_terminal_and_grants_what_is_answered() {
    let daemon = Daemon::start().await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "plugins/file_read", "file_read");
    let install = ["plugin", "install", package.as_str()];
    let prompt = "Grant all of this?";
    let granted = || async {
        let plugin = crate::harness::json(daemon.get("/api/plugins/file_read").await).await;
        plugin["permissions"].clone()
    };

    // Anything but yes or no cancels, and nothing is installed.
    let (said, ok) = run_on_terminal(&daemon, &install, prompt, "maybe\n");
    assert!(!ok, "{said}");
    assert!(
        said.contains("file_read requests:\n  filesystem: the calling agent's workspace"),
        "{said}"
    );
    assert!(
        said.contains("install cancelled; nothing was installed"),
        "{said}"
    );
    assert_eq!(daemon.get("/api/plugins/file_read").await.status(), 404);

    // No: installed with nothing granted, and told how to grant later.
    let (said, ok) = run_on_terminal(&daemon, &install, prompt, "n\n");
    assert!(ok, "{said}");
    assert!(said.contains("granted:\n  nothing"), "{said}");
    assert!(said.contains("talon plugin grant file_read"), "{said}");
    let permissions = granted().await;
    assert_eq!(
        permissions["granted"]["filesystem"],
        Value::Null,
        "{permissions}"
    );
    run_ok(&daemon, &["plugin", "remove", "file_read"]);

    // Yes: everything it requests.
    let (said, ok) = run_on_terminal(&daemon, &install, prompt, "yes\n");
    assert!(ok, "{said}");
    assert!(
        said.contains("granted:\n  filesystem: the calling agent's workspace"),
        "{said}"
    );
    let permissions = granted().await;
    assert_eq!(
        permissions["granted"], permissions["requested"],
        "{permissions}"
    );
    assert_ne!(
        permissions["granted"]["filesystem"],
        Value::Null,
        "{permissions}"
    );
}
