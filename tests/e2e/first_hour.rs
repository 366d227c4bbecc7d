//! The README's first hour, as a new user meets it: a fresh home with the
//! bundled tools, `talon start`, `talon agent new` with the README's own
//! manifest, `talon agent chat` calling `file_read`, and a misspelt manifest
//! refused at the door with its line, key and the valid choices.

use std::process::Output;

use talon_test_llm::{Reply, TestLlm};

use crate::harness::{Daemon, json};
use crate::plugins::repo;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_ok(daemon: &Daemon, args: &[&str]) -> String {
    let out: Output = daemon.cli(args);
    assert!(
        out.status.success(),
        "talon {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The README's `helper.toml`: the first TOML block of "Agents in five minutes".
fn readme_manifest() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme
        .split("## Agents in five minutes")
        .nth(1)
        .expect("the README has an 'Agents in five minutes' section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a TOML block in that section");
    block.to_string()
}

#[tokio::test]
async fn the_readme_agent_is_spawned_and_chats_from_the_command_line() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_bundled("", &[("OPENAI_API_KEY", "sk-test")]).await;
    // The README's provider, pointed at the local test server.
    let set = daemon
        .put(
            "/api/providers/openai/url",
            serde_json::json!({ "base_url": llm.openai_url() }),
        )
        .await;
    assert_eq!(set.status(), 200);

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("helper.toml");
    std::fs::write(&manifest, readme_manifest()).unwrap();
    let spawned = run_ok(&daemon, &["agent", "new", manifest.to_str().unwrap()]);
    assert!(spawned.contains("helper"), "{spawned}");

    // The README's way to put a file in the agent's workspace.
    let shown: serde_json::Value =
        serde_json::from_str(&run_ok(&daemon, &["agent", "show", "helper", "--json"])).unwrap();
    let id = shown["id"].as_str().expect("an id").to_string();
    let workspace = daemon.home().join("workspaces").join(&id);
    assert!(
        workspace.is_dir(),
        "{} exists after spawn",
        workspace.display()
    );
    std::fs::write(workspace.join("notes.txt"), "buy milk\n").unwrap();

    llm.push_all([
        Reply::tool_call("file_read", r#"{"path": "notes.txt"}"#),
        Reply::text("notes.txt says: buy milk."),
    ]);
    let said = run_ok(
        &daemon,
        &["agent", "chat", "helper", "-m", "What does notes.txt say?"],
    );
    let tool = said
        .lines()
        .position(|l| l.starts_with("[tool] file_read"))
        .unwrap_or_else(|| panic!("a file_read call in {said}"));
    let lines: Vec<&str> = said.lines().collect();
    assert!(lines[tool + 1].contains("buy milk"), "{said}");
    assert!(said.contains("notes.txt says: buy milk."), "{said}");
    // The bundled tool really ran: its call is in the agent's log.
    let logs = json(daemon.get(&format!("/api/agents/{id}/logs")).await).await;
    assert!(logs.to_string().contains("file_read"), "{logs}");
}

#[tokio::test]
async fn a_misspelt_manifest_is_refused_at_the_door_with_the_fix() {
    let daemon = Daemon::start_bundled("", &[("OPENAI_API_KEY", "sk-test")]).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("helper.toml");
    let misspelt = readme_manifest().replace("provider =", "provder =");
    std::fs::write(&manifest, &misspelt).unwrap();
    let out = daemon.cli(&["agent", "new", manifest.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("provder"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("provider"), "{err}");
    assert!(err.contains("HTTP 400"), "{err}");

    // A tool that is not installed names the installed ones.
    let unknown = readme_manifest().replace("file_read", "file_raed");
    std::fs::write(&manifest, &unknown).unwrap();
    let out = daemon.cli(&["agent", "new", manifest.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("file_raed") && err.contains("file_read"),
        "{err}"
    );
    // Nothing was spawned by either.
    let agents = run_ok(&daemon, &["agent", "list", "--json"]);
    let agents: serde_json::Value = serde_json::from_str(&agents).unwrap();
    assert_eq!(
        agents["items"].as_array().map(Vec::len),
        Some(0),
        "{agents}"
    );
}
