//! Bounding what the daemon keeps (issue 19): the audit chain's checkpoint
//! and prune, the retention sweep of turn records, and package uploads
//! refused while they stream.

use serde_json::json;

use crate::harness::{Daemon, json};

/// Flips one byte of a stored audit entry's details, as an attacker with
/// the file would (the daemon stopped).
fn tamper_audit_entry(daemon: &Daemon, id: u64, needle: &[u8]) {
    use redb::ReadableTable;
    let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit.v2");
    let db = redb::Database::create(daemon.home().join("data/talon.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(table).unwrap();
        let mut edited = t.get(id).unwrap().unwrap().value().to_vec();
        let at = edited
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("the entry holds the text");
        edited[at] ^= 0x20;
        t.insert(id, edited.as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

#[tokio::test]
async fn the_audit_chain_is_checkpointed_pruned_and_still_verifies_from_the_cut() {
    let mut daemon = Daemon::start().await;
    for name in ["one", "two", "three"] {
        daemon.spawn_agent(name).await;
    }
    let cut = json(daemon.post("/api/audit/checkpoint", json!({})).await).await;
    assert_eq!(cut["checkpoint"]["seq"], 3, "{cut}");
    assert_eq!(cut["checkpoint"]["entry_id"], 4);
    assert_eq!(cut["pruned"], 3);
    daemon.spawn_agent("four").await;
    daemon.spawn_agent("five").await;

    let verify = json(daemon.get("/api/audit/verify").await).await;
    assert_eq!(verify["status"], "valid", "{verify}");
    assert_eq!(
        verify["chain_length"], 3,
        "the checkpoint's entry and two spawns"
    );
    assert_eq!(verify["first_id"], 4);
    assert_eq!(verify["checkpoint"], cut["checkpoint"]);
    let recent = json(daemon.get("/api/audit/recent?limit=10").await).await;
    let types: Vec<&str> = recent["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["agent_spawned", "agent_spawned", "audit_checkpoint"]
    );
    assert_eq!(
        recent["entries"][2]["prev_hash"], cut["checkpoint"]["head_hash"],
        "the checkpoint's entry links to the head it cut at"
    );

    // Offline, the same.
    assert!(daemon.terminate().success());
    let offline = daemon.cli(&["audit", "verify"]);
    let out = String::from_utf8_lossy(&offline.stdout);
    assert!(
        offline.status.success() && out.contains("status: valid"),
        "{out}"
    );
    assert!(out.contains("checkpoint: after entry 3"), "{out}");

    // A kept entry edited: verification fails naming it, and prune refuses
    // to cut the evidence away.
    tamper_audit_entry(&daemon, 5, b"agent 'four'");
    let offline = daemon.cli(&["audit", "verify"]);
    assert!(!offline.status.success());
    assert!(String::from_utf8_lossy(&offline.stderr).contains("chain broken at entry 5"));
    let refused = daemon.cli(&["audit", "prune"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not pruning a broken audit chain"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    daemon.restart();
    let verify = json(daemon.get("/api/audit/verify").await).await;
    assert_eq!(verify["status"], "broken");
    assert_eq!(verify["first_broken"]["id"], 5);
    let refused = daemon.post("/api/audit/checkpoint", json!({})).await;
    assert_eq!(refused.status(), 409);
    let verify = json(daemon.get("/api/audit/verify").await).await;
    assert_eq!(verify["chain_length"], 3, "nothing was cut");
}

#[tokio::test]
async fn talon_audit_prune_cuts_offline() {
    let mut daemon = Daemon::start().await;
    daemon.spawn_agent("a").await;
    daemon.spawn_agent("b").await;
    assert!(daemon.terminate().success());
    let pruned = daemon.cli(&["audit", "prune"]);
    let out = String::from_utf8_lossy(&pruned.stdout);
    assert!(
        pruned.status.success(),
        "{}",
        String::from_utf8_lossy(&pruned.stderr)
    );
    assert!(out.contains("2 entries removed"), "{out}");
    daemon.restart();
    let verify = json(daemon.get("/api/audit/verify").await).await;
    assert_eq!(verify["status"], "valid", "{verify}");
    assert_eq!(
        (verify["chain_length"].as_u64(), verify["first_id"].as_u64()),
        (Some(1), Some(3))
    );
}

/// Polls `check` (every 50 ms, up to 60 s) until it holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..1200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

fn table_rows(stats: &serde_json::Value, name: &str) -> u64 {
    stats["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t["rows"].as_u64())
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
}

#[tokio::test]
async fn the_sweep_keeps_the_newest_turn_records_and_the_conversation() {
    use talon_test_llm::{Reply, TestLlm};
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start_with_config(
        "[retention]\nmax_turns_per_agent = 3\nmax_failed_turns_per_agent = 1\n\
         sweep_interval_secs = 1\n",
    )
    .await;
    let agent = daemon
        .spawn_manifest(crate::conversations::manifest(
            "kept",
            &llm,
            "test-model",
            &[],
        ))
        .await;
    // Oldest to newest: two failed turns, four answered, one failed.
    llm.push_all([
        Reply::error(400, "refused 1"),
        Reply::error(400, "refused 2"),
    ]);
    for i in 1..=4 {
        llm.push(Reply::text(format!("answer {i}")));
    }
    llm.push(Reply::error(400, "refused 3"));
    for i in 1..=7 {
        daemon.message(&agent, &format!("question {i}")).await;
    }
    let session = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
    let usage = json(daemon.get("/api/usage/summary").await).await;

    let traces_path = format!("/api/agents/{agent}/traces?limit=100");
    eventually("the sweep leaves three turn records", async || {
        json(daemon.get(&traces_path).await).await["traces"]
            .as_array()
            .is_some_and(|t| t.len() == 3)
    })
    .await;
    let traces = json(daemon.get(&traces_path).await).await;
    let kept: Vec<(&str, &str)> = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["status"].as_str().unwrap(),
                t["error"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        kept[0].0 == "failed" && kept[0].1.contains("refused 3"),
        "{kept:?}"
    );
    assert_eq!(&kept[1..], [("completed", ""), ("completed", "")]);

    // The conversation and the usage totals are as they were.
    let after = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
    assert_eq!(after["message_count"], session["message_count"]);
    assert_eq!(after["messages"], session["messages"]);
    assert!(after.to_string().contains("answer 4"), "{after}");
    assert_eq!(json(daemon.get("/api/usage/summary").await).await, usage);

    assert!(daemon.terminate().success());
    let stats = daemon.cli(&["db", "stats", "--json"]);
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(table_rows(&stats, "turns.v1"), 3);
    let prune = daemon.cli(&["db", "prune"]);
    let out = String::from_utf8_lossy(&prune.stdout);
    assert!(
        prune.status.success() && out.contains(" 0 turn records removed"),
        "{out}"
    );
}

#[tokio::test]
async fn talon_db_prune_applies_the_configured_retention_offline() {
    use talon_test_llm::{Reply, TestLlm};
    let llm = TestLlm::start().await;
    // No background sweep: only the command removes anything.
    let mut daemon = Daemon::start_with_config(
        "[retention]\nmax_failed_turns_per_agent = 2\nsweep_interval_secs = 0\n",
    )
    .await;
    let agent = daemon
        .spawn_manifest(crate::conversations::manifest(
            "pruned",
            &llm,
            "test-model",
            &[],
        ))
        .await;
    for i in 0..5 {
        llm.push(Reply::error(400, format!("refused {i}")));
        daemon.message(&agent, "hello").await;
    }
    assert!(daemon.terminate().success());
    let prune = daemon.cli(&["db", "prune"]);
    let out = String::from_utf8_lossy(&prune.stdout);
    assert!(
        prune.status.success() && out.contains("3 turn records removed (3 of them failed turns)"),
        "{out}{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    daemon.restart();
    let traces = json(
        daemon
            .get(&format!("/api/agents/{agent}/traces?limit=100"))
            .await,
    )
    .await;
    let errors: Vec<&str> = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["error"].as_str().unwrap())
        .collect();
    assert!(
        errors.len() == 2 && errors[0].contains("refused 4") && errors[1].contains("refused 3"),
        "{errors:?}"
    );
}

/// A field of the daemon's `/proc/<pid>/status`, in KiB.
fn proc_status_kib(daemon: &Daemon, field: &str) -> u64 {
    let file = std::fs::read_to_string(daemon.home().join("daemon.json")).unwrap();
    let pid = serde_json::from_str::<serde_json::Value>(&file).unwrap()["pid"]
        .as_u64()
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

fn spool_files(daemon: &Daemon) -> usize {
    std::fs::read_dir(daemon.home().join("data/spool"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_chunked_oversized_install_is_refused_as_it_streams_without_holding_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let daemon = Daemon::start().await;
    let plugins_before = json(daemon.get("/api/plugins").await).await;
    let peak_before = proc_status_kib(&daemon, "VmHWM");
    let addr = daemon.base_url().trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(
            b"POST /api/plugins/install HTTP/1.1\r\nHost: talon\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    // Up to 1 GiB of a JSON string, 1 MiB a chunk, until the daemon stops
    // taking it; how much was sent is counted.
    let sender = tokio::spawn(async move {
        let chunk = |payload: &[u8]| {
            let mut out = format!("{:x}\r\n", payload.len()).into_bytes();
            out.extend_from_slice(payload);
            out.extend_from_slice(b"\r\n");
            out
        };
        let mut payload = vec![b'A'; 1 << 20];
        payload[..12].copy_from_slice(b"{\"package\":\"");
        let first = chunk(&payload);
        let next = chunk(&vec![b'A'; 1 << 20]);
        let mut sent = 0u64;
        for i in 0..1024 {
            if writer
                .write_all(if i == 0 { &first } else { &next })
                .await
                .is_err()
            {
                break;
            }
            sent += 1 << 20;
        }
        sent
    });
    let mut head = vec![0u8; 12];
    reader.read_exact(&mut head).await.expect("an answer");
    assert_eq!(&head, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&head));
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        reader.read_to_end(&mut rest),
    )
    .await;
    assert!(
        String::from_utf8_lossy(&rest).contains("length limit exceeded"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    let sent = sender.await.unwrap();
    let limit = 128u64 / 3 * 4 << 20;
    assert!(
        sent > limit,
        "the daemon read past its limit: {sent} bytes sent"
    );
    let grew = proc_status_kib(&daemon, "VmHWM").saturating_sub(peak_before);
    println!(
        "chunked upload refused after {} MiB sent; daemon peak RSS grew {} MiB",
        sent >> 20,
        grew >> 10
    );
    assert!(
        grew < 48 << 10,
        "peak RSS grew {grew} KiB while {} MiB were read and refused",
        sent >> 20
    );
    // Nothing half-written: no spool file left, no plugin installed.
    assert_eq!(spool_files(&daemon), 0);
    assert_eq!(json(daemon.get("/api/plugins").await).await, plugins_before);
}

#[tokio::test]
async fn a_package_body_over_the_memory_threshold_installs_from_its_spool_file() {
    use base64::Engine as _;
    let daemon = Daemon::start_with_config("[plugins]\nbundled = false\n").await;
    let publisher = crate::plugins::Publisher::new(&daemon);
    crate::plugins::trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "tests/plugins/greeter", "greeter");
    let encoded = base64::engine::general_purpose::STANDARD.encode(std::fs::read(package).unwrap());
    // 2 MiB of whitespace makes the body go through the spool file.
    let body = format!(
        "{{\"package\": \"{encoded}\",{} \"grant\": \"none\"}}",
        " ".repeat(2 << 20)
    );
    let response = daemon
        .request(reqwest::Method::POST, "/api/plugins/install")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    assert_eq!(spool_files(&daemon), 0);
    // A malformed large body is a 400, and leaves nothing either.
    let response = daemon
        .request(reqwest::Method::POST, "/api/plugins/install")
        .header("content-type", "application/json")
        .body(format!("{{\"package\": {}", " ".repeat(2 << 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(spool_files(&daemon), 0);
    let wrong_type = daemon
        .request(reqwest::Method::POST, "/api/plugins/install")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    crate::harness::assert_error(wrong_type, 400, "Content-Type: application/json").await;
}
