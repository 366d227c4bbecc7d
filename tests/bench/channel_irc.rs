//! Channel benchmark through the real daemon and a real IRC server
//! (ngircd on loopback): prints figures, asserts nothing but zero loss.
//!
//! `cargo bench --bench channel_irc` (release) or
//! `cargo bench --profile dev --bench channel_irc` measures, with the IRC
//! plugin bound to an agent answering from `talon-test-llm` at once:
//! - the round trip from a person's PRIVMSG to the agent's reply reaching
//!   them (two hops through ngircd, the plugin's receive, the durable
//!   inbox write, the turn, the outbox write and the send, which wakes the
//!   receive in progress), p50/p99, samples spaced apart;
//! - a sustained stream of messages from many senders at a fixed rate: how
//!   many were answered (zero loss is asserted) and how long the last
//!   answer took after the last message;
//! - resident memory per idle connected channel (50 channels to one server);
//! - the time from ngircd coming back after a restart to the channel being
//!   `connected` again.

mod daemon;

#[allow(dead_code)]
#[path = "../../host/runtime/tests/common/irc.rs"]
mod ngircd;

use std::time::{Duration, Instant};

use daemon::{percentile, rss_kib, spawn, stop};
use ngircd::{Ngircd, Person};
use talon_test_llm::TestLlm;

const ROUND_TRIPS: usize = 200;
/// The pause before each round trip, outside the measurement.
const SAMPLE_GAP: Duration = Duration::from_millis(250);
/// Messages of the sustained run, and the rate they are sent at.
const SUSTAINED: usize = 1_000;
const PER_MINUTE: u64 = 1_000;
/// Senders of the sustained run (IRC servers pace each client).
const SENDERS: usize = 50;
const IDLE_CHANNELS: usize = 50;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn talon(home: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_talon"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run talon");
    assert!(
        out.status.success(),
        "talon {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Bench {
    http: reqwest::Client,
    url: String,
}

impl Bench {
    async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn channel(&self, name: &str) -> serde_json::Value {
        self.http
            .get(format!("{}/api/channels/{name}", self.url))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .unwrap_or_default()
    }

    async fn until_connected(&self, name: &str) {
        while self.channel(name).await["connected"] != true {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn irc_config(port: u16, nick: &str) -> serde_json::Value {
    serde_json::json!({
        "plugin": "irc", "agent": "bencher",
        "server": "127.0.0.1", "port": port, "nick": nick, "channels": ["#bench"],
    })
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what} ({} samples): p50 {:.2} ms, p99 {:.2} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut server = Ngircd::start().await;
    let llm = TestLlm::start().await;
    llm.set_recording(false);
    llm.set_default_reply("ack");
    let home = tempfile::tempdir().expect("home");
    std::fs::write(
        home.path().join("config.toml"),
        "[rate_limit]\nexempt_loopback = true\n[plugins]\nbundled = false\ndev_mode = true\nmax_instances_per_plugin = 64\n",
    )
    .expect("config");
    let package = home.path().join("irc.talon");
    talon(
        home.path(),
        &[
            "plugin",
            "pack",
            &repo().join("plugins/irc/talon.toml").display().to_string(),
            &repo().join("target/plugins/irc.wasm").display().to_string(),
            "--unsigned",
            "--out",
            &package.display().to_string(),
        ],
    );
    let (child, url) = spawn(home.path());
    let bench = Bench {
        http: reqwest::Client::new(),
        url,
    };
    use base64::Engine as _;
    let bytes = std::fs::read(&package).expect("package");
    bench
        .post(
            "/api/plugins/install",
            serde_json::json!({
                "package": base64::engine::general_purpose::STANDARD.encode(bytes),
                "grant": { "sockets": [format!("127.0.0.1:{}", server.port)] },
            }),
        )
        .await;
    let manifest = format!(
        "name = \"bencher\"\n[model]\nprovider = \"ollama\"\nmodel = \"bench\"\nbase_url = \"{}\"\n",
        llm.openai_url()
    );
    bench
        .post(
            "/api/agents",
            serde_json::json!({ "manifest_toml": manifest }),
        )
        .await;
    bench
        .post(
            "/api/channels/irc/configure",
            irc_config(server.port, "talonbot"),
        )
        .await;
    bench.until_connected("irc").await;

    // Round trips, one at a time, spaced by SAMPLE_GAP (not measured) so
    // the channel's send rate limit (one send per 50 ms) and ngircd's
    // flood control do not delay the next sample: this is the path's
    // latency, not the limit's.
    let mut alice = Person::join(server.port, "alice", "#bench").await;
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS {
        tokio::time::sleep(SAMPLE_GAP).await;
        let started = Instant::now();
        alice.say("talonbot", &format!("ping {i}")).await;
        alice.next_privmsg().await;
        samples.push(started.elapsed());
    }
    report("PRIVMSG to the agent's reply, round trip", samples);

    // A sustained stream from many senders, at PER_MINUTE.
    let mut people = Vec::with_capacity(SENDERS);
    for i in 0..SENDERS {
        people.push(Person::join(server.port, &format!("p{i}"), "#bench").await);
    }
    let gap = Duration::from_secs(60) / PER_MINUTE as u32;
    let started = Instant::now();
    let mut writers = Vec::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, mut person) in people.into_iter().enumerate() {
        let done = done_tx.clone();
        let count = SUSTAINED / SENDERS;
        writers.push(tokio::spawn(async move {
            let offset = gap * i as u32;
            tokio::time::sleep(offset).await;
            for n in 0..count {
                person.say("talonbot", &format!("m{n}")).await;
                tokio::time::sleep(gap * SENDERS as u32).await;
            }
            for _ in 0..count {
                person.next_privmsg().await;
            }
            let _ = done.send(());
        }));
    }
    drop(done_tx);
    let sent_by = started + gap * SUSTAINED as u32;
    let mut finished = 0;
    while done_rx.recv().await.is_some() {
        finished += 1;
    }
    assert_eq!(finished, SENDERS, "every sender got every answer");
    let total = started.elapsed();
    println!(
        "{SUSTAINED} messages from {SENDERS} senders at {PER_MINUTE}/min: all answered \
         (zero loss), the last {:.1} s after the last was sent; {:.0} answers/min overall",
        Instant::now()
            .saturating_duration_since(sent_by)
            .as_secs_f64(),
        SUSTAINED as f64 / total.as_secs_f64() * 60.0
    );

    // Resident memory per idle connected channel.
    let before = rss_kib(child.id());
    for i in 0..IDLE_CHANNELS {
        let name = format!("idle{i}");
        bench
            .post(
                &format!("/api/channels/{name}/configure"),
                irc_config(server.port, &format!("idle{i}")),
            )
            .await;
    }
    for i in 0..IDLE_CHANNELS {
        bench.until_connected(&format!("idle{i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(child.id());
    println!(
        "RSS per idle connected channel ({IDLE_CHANNELS} channels): {:.0} KiB",
        after.saturating_sub(before) as f64 / IDLE_CHANNELS as f64
    );

    // Reconnection after the server restarts.
    server.restart().await;
    let back = Instant::now();
    while bench.channel("irc").await["last_error"].is_null() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bench.until_connected("irc").await;
    println!(
        "server back to channel connected: {:.0} ms (the supervisor's backoff starts at 250 ms)",
        back.elapsed().as_secs_f64() * 1e3
    );
    stop(child);
}
