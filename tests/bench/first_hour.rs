//! The first hour, timed: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-cli --bench first_hour` measures, on the release
//! build and a fresh home each run, what a new user waits for after the
//! build: exec of `talon start` to the first 200 on `/api/health`; to the
//! bundled tools listed by `GET /api/tools` (the five first-party components
//! compiled into the home's cache); `talon agent new helper.toml`; and
//! `talon agent chat helper -m ...` answered after a `file_read` call (the
//! model is talon-test-llm, so the model's own time is near zero).

mod daemon;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use talon_test_llm::{Reply, TestLlm};

const RUNS: usize = 5;

fn cli(home: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_talon"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("TALON_URL")
        .output()
        .expect("run talon");
    assert!(
        out.status.success(),
        "talon {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let llm = TestLlm::start_blocking();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let http = reqwest::Client::new();
    println!("a fresh home, release build ({RUNS} runs; ms from exec of `talon start`)");
    println!("  run  health  tools-ready  agent-new  chat-with-tool  total");
    let mut totals = Vec::new();
    for run in 1..=RUNS {
        let home = tempfile::tempdir().expect("home");
        let started = Instant::now();
        let daemon::Started {
            first_health: health,
            child,
            url,
            ..
        } = daemon::time_to_first_health(home.path());
        loop {
            let tools: serde_json::Value = tokio
                .block_on(async {
                    http.get(format!("{url}/api/tools"))
                        .send()
                        .await?
                        .json()
                        .await
                })
                .expect("tools");
            if tools.to_string().contains("\"file_read\"") {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let tools_ready = started.elapsed();

        let manifest = home.path().join("helper.toml");
        std::fs::write(
            &manifest,
            format!(
                "name = \"helper\"\n[model]\nprovider = \"ollama\"\nmodel = \"gpt-4o-mini\"\n\
                 base_url = \"{}\"\n[capabilities]\ntools = [\"file_read\"]\n",
                llm.openai_url()
            ),
        )
        .expect("manifest");
        let before = Instant::now();
        cli(
            home.path(),
            &["agent", "new", manifest.to_str().expect("utf-8")],
        );
        let agent_new = before.elapsed();
        let shown: serde_json::Value =
            serde_json::from_str(&cli(home.path(), &["agent", "show", "helper", "--json"]))
                .expect("agent json");
        let id = shown["id"].as_str().expect("id");
        std::fs::write(
            home.path().join("workspaces").join(id).join("notes.txt"),
            "buy milk\n",
        )
        .expect("notes");

        llm.push_all([
            Reply::tool_call("file_read", r#"{"path": "notes.txt"}"#),
            Reply::text("notes.txt says: buy milk."),
        ]);
        let before = Instant::now();
        let said = cli(
            home.path(),
            &["agent", "chat", "helper", "-m", "What does notes.txt say?"],
        );
        let chat = before.elapsed();
        assert!(said.contains("[tool] file_read"), "{said}");
        let total = started.elapsed();
        totals.push(total);
        println!(
            "  {run:>3}  {:>6.0}  {:>11.0}  {:>9.0}  {:>14.0}  {:>5.0}",
            ms(health),
            ms(tools_ready),
            ms(agent_new),
            ms(chat),
            ms(total)
        );
        daemon::stop(child);
    }
    totals.sort();
    println!(
        "exec to the first answered tool call: p50 {:.0} ms, max {:.0} ms",
        ms(daemon::percentile(&totals, 0.5)),
        ms(*totals.last().expect("runs"))
    );
}
