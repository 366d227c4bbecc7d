//! A full disk: writes answer 507 naming the data directory, reads go on,
//! health says `degraded` with the reason, writes resume by themselves when
//! space returns, a restart on the full disk comes up read-only, and nothing
//! refused is half-written. The data directory is a small tmpfs, filled by a
//! file beside the database: mounting needs root, so without it (or without
//! `mount`) the test says so and does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use talon_test_llm::TestLlm;

use crate::conversations::manifest;
use crate::harness::{Daemon, json};

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs of `mib` MiB on `dir`, or says why it cannot.
    fn tmpfs(dir: &Path, mib: u32) -> Result<Mount, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".into());
        }
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Mount(dir.to_path_buf()))
    }

    /// Fills the filesystem with a file, to the last byte it takes.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.0.join("filler")).expect("filler");
        let chunk = vec![0xAAu8; 64 << 10];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let one = [0u8; 1];
        while file.write(&one).is_ok_and(|n| n == 1) {}
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).expect("remove filler");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn wait_for_health(daemon: &Daemon, want: &str) -> serde_json::Value {
    for _ in 0..300 {
        let body = json(daemon.get("/api/health").await).await;
        if body["status"] == want {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("health never became {want}; log:\n{}", daemon.log());
}

async fn message_count(daemon: &Daemon, agent: &str) -> u64 {
    let response = daemon.get(&format!("/api/agents/{agent}/session")).await;
    assert_eq!(response.status(), 200, "reads go on");
    json(response).await["message_count"].as_u64().unwrap()
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_507_serves_reads_and_recovers_by_itself() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let mount = match Mount::tmpfs(&data, 24) {
        Ok(mount) => mount,
        Err(why) => {
            eprintln!("SKIPPED disk-full test: it mounts a small tmpfs ({why})");
            return;
        }
    };
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start_in(
        home,
        "[storage]\ndisk_reserve_mib = 2\n[plugins]\nbundled = false\n",
        &[],
    )
    .await;
    assert!(
        data.join("talon.reserve").exists(),
        "the reserve is allocated at start"
    );
    let agent = daemon
        .spawn_manifest(manifest("filler", &llm, "test-model", &[]))
        .await;
    let mut acknowledged = 0u64;
    for i in 0..5 {
        let response = daemon.message(&agent, &format!("before {i}")).await;
        assert_eq!(response.status(), 200);
        acknowledged += 1;
    }

    mount.fill();
    // The file may still have free pages inside: write until a turn is refused.
    let big = "x".repeat(200_000);
    let refused = loop {
        let response = daemon.message(&agent, &big).await;
        match response.status().as_u16() {
            200 => acknowledged += 1,
            507 => break json(response).await,
            other => panic!(
                "a write on a full disk answered {other}: {}",
                response.text().await.unwrap()
            ),
        }
        assert!(acknowledged < 200, "the disk never filled");
    };
    let message = refused["error"].as_str().unwrap();
    assert!(message.contains("no space left"), "{message}");
    assert!(
        message.contains(&data.display().to_string()),
        "names the data directory: {message}"
    );

    // Every write route refuses; reads are served, the acknowledged turns intact.
    let spawn = daemon
        .post(
            "/api/agents",
            json!({ "manifest_toml": manifest("late", &llm, "test-model", &[]) }),
        )
        .await;
    assert_eq!(spawn.status(), 507);
    let again = daemon.message(&agent, "small").await;
    assert_eq!(again.status(), 507);
    assert_eq!(
        message_count(&daemon, &agent).await,
        acknowledged * 2,
        "nothing half-written"
    );
    assert_eq!(daemon.get("/api/agents").await.status(), 200);

    let health = wait_for_health(&daemon, "degraded").await;
    assert!(
        health["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "disk" && c["status"] == "error"),
        "{health}"
    );
    let detail = json(daemon.get("/api/health/detail").await).await;
    assert_eq!(detail["status"], "degraded");
    assert_eq!(detail["database"]["disk"]["status"], "full", "{detail}");
    assert!(
        detail["database"]["disk"]["reason"]
            .as_str()
            .unwrap()
            .contains("no space left")
    );

    // Space returns: writes resume without a restart.
    mount.free();
    wait_for_health(&daemon, "ok").await;
    assert_eq!(daemon.message(&agent, "after").await.status(), 200);
    acknowledged += 1;
    assert_eq!(message_count(&daemon, &agent).await, acknowledged * 2);

    // A restart on a full disk comes up read-only.
    mount.fill();
    assert_eq!(daemon.terminate().code(), Some(0));
    daemon.restart();
    assert_eq!(
        message_count(&daemon, &agent).await,
        acknowledged * 2,
        "reads after a full-disk start"
    );
    let health = wait_for_health(&daemon, "degraded").await;
    assert_eq!(
        health["checks"][0]["status"], "ok",
        "the database reads: {health}"
    );
    let refused = daemon.message(&agent, "while read-only").await;
    assert_eq!(refused.status(), 507);
    mount.free();
    wait_for_health(&daemon, "ok").await;
    assert_eq!(daemon.message(&agent, "writable again").await.status(), 200);
    acknowledged += 1;
    assert_eq!(message_count(&daemon, &agent).await, acknowledged * 2);
    drop(daemon);
    drop(mount);
}
