//! Agent registry operations beyond spawn/get/kill: bulk, state, clone,
//! workspace files, uploads, memory export/import.

use crate::harness::{Daemon, assert_error, json};

fn manifest(name: &str) -> serde_json::Value {
    serde_json::json!({ "manifest_toml": format!("name = \"{name}\"\n[model]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n[capabilities]\ntools = [\"notify_owner\"]\n") })
}

#[tokio::test]
async fn bulk_create_start_stop_delete() {
    let daemon = Daemon::start().await;
    let body = json(
        daemon
            .post(
                "/api/agents/bulk",
                serde_json::json!({ "agents": [manifest("b1"), manifest("b2"), { "manifest_toml": "name = 3" }] }),
            )
            .await,
    )
    .await;
    assert_eq!(body["created"], 2);
    assert_eq!(body["failed"], 1);
    assert!(
        body["results"][2]["error"]
            .as_str()
            .unwrap()
            .contains("line 1")
    );
    let ids: Vec<String> = (0..2)
        .map(|i| body["results"][i]["agent_id"].as_str().unwrap().to_string())
        .collect();

    let stopped = json(
        daemon
            .post(
                "/api/agents/bulk/stop",
                serde_json::json!({ "agent_ids": ids }),
            )
            .await,
    )
    .await;
    assert_eq!(stopped["results"][0]["status"], "stopped");
    let listed = json(daemon.get("/api/agents?status=stopped").await).await;
    assert_eq!(listed["total"], 2);
    let started = json(
        daemon
            .post(
                "/api/agents/bulk/start",
                serde_json::json!({ "agent_ids": [ids[0], "nope"] }),
            )
            .await,
    )
    .await;
    assert_eq!(started["results"][0]["status"], "running");
    assert_eq!(started["results"][1]["error"], "not a UUID");

    let deleted = daemon
        .request(reqwest::Method::DELETE, "/api/agents/bulk")
        .json(&serde_json::json!({ "agent_ids": ids }))
        .send()
        .await
        .unwrap();
    assert_eq!(json(deleted).await["results"][1]["status"], "killed");
    assert_eq!(json(daemon.get("/api/agents").await).await["total"], 0);

    let too_many: Vec<_> = (0..101).map(|i| manifest(&format!("m{i}"))).collect();
    let response = daemon
        .post(
            "/api/agents/bulk",
            serde_json::json!({ "agents": too_many }),
        )
        .await;
    assert_error(response, 400, "at most 100").await;
}

#[tokio::test]
async fn workspace_files_round_trip_and_refuse_escapes() {
    let daemon = Daemon::start().await;
    let id = daemon.spawn_agent("files").await;
    let base = format!("/api/agents/{id}/files");
    let saved = json(
        daemon
            .put(
                &format!("{base}/notes.md"),
                serde_json::json!({ "content": "# hi" }),
            )
            .await,
    )
    .await;
    assert_eq!(saved["status"], "saved");
    let file = json(daemon.get(&format!("{base}/notes.md")).await).await;
    assert_eq!(file["content"], "# hi");
    let list = json(daemon.get(&base).await).await;
    assert_eq!(list["files"][0]["name"], "notes.md");
    assert_eq!(list["files"][0]["size"], 4);
    let on_disk = daemon.home().join("workspaces").join(&id).join("notes.md");
    assert_eq!(std::fs::read_to_string(on_disk).unwrap(), "# hi");

    for hostile in ["..", "%2e%2e", "..%2Fconfig.toml", "a%2Fb"] {
        let response = daemon.get(&format!("{base}/{hostile}")).await;
        assert!(
            response.status() == 400 || response.status() == 404,
            "{hostile}: {}",
            response.status()
        );
    }
    // A symlink planted in the workspace that points outside is refused.
    std::os::unix::fs::symlink(
        daemon.config_file(),
        daemon.home().join("workspaces").join(&id).join("leak"),
    )
    .unwrap();
    assert_error(
        daemon.get(&format!("{base}/leak")).await,
        400,
        "outside the workspace",
    )
    .await;

    let gone = daemon
        .request(reqwest::Method::DELETE, &format!("{base}/notes.md"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 200);
    assert_error(
        daemon.get(&format!("{base}/notes.md")).await,
        404,
        "not found",
    )
    .await;
}

#[tokio::test]
async fn uploads_raw_and_multipart() {
    let daemon = Daemon::start().await;
    let id = daemon.spawn_agent("uploader").await;
    let raw = daemon
        .request(reqwest::Method::POST, &format!("/api/agents/{id}/upload"))
        .header("content-type", "text/plain")
        .header("x-filename", "hello.txt")
        .body("hello upload")
        .send()
        .await
        .unwrap();
    let uploaded = json(raw).await;
    assert_eq!(uploaded["size"], 12);
    let file_id = uploaded["file_id"].as_str().unwrap();
    let fetched = daemon.get(&format!("/api/uploads/{file_id}")).await;
    assert_eq!(fetched.headers()["content-disposition"], "attachment");
    assert_eq!(fetched.text().await.unwrap(), "hello upload");

    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![0x89, b'P', b'N', b'G'])
            .file_name("pic.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let multi = daemon
        .request(reqwest::Method::POST, &format!("/api/agents/{id}/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let uploaded = json(multi).await;
    assert_eq!(uploaded["content_type"], "image/png");
    let image = daemon
        .get(&format!(
            "/api/uploads/{}",
            uploaded["file_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(image.headers()["content-type"], "image/png");

    // Without X-Filename the file is called `upload`, as in LibreFang.
    let nameless = daemon
        .request(reqwest::Method::POST, &format!("/api/agents/{id}/upload"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(nameless.status(), 201);
    assert_eq!(json(nameless).await["filename"], "upload");
    let sneaky = daemon
        .request(reqwest::Method::POST, &format!("/api/agents/{id}/upload"))
        .header("x-filename", "../../config.toml")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(sneaky, 400, "invalid file name").await;
    assert_error(
        daemon.get(&format!("/api/uploads/{id}")).await,
        404,
        "not found",
    )
    .await;
}

#[tokio::test]
async fn clone_copies_manifest_and_files() {
    let daemon = Daemon::start().await;
    let id = daemon.spawn_agent("original").await;
    daemon
        .put(
            &format!("/api/agents/{id}/files/soul.md"),
            serde_json::json!({ "content": "kind" }),
        )
        .await;
    let response = daemon
        .post(
            &format!("/api/agents/{id}/clone"),
            serde_json::json!({ "new_name": "copy", "include_tools": false }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let copy = json(response).await["agent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = json(
        daemon
            .get(&format!("/api/agents/{copy}/files/soul.md"))
            .await,
    )
    .await;
    assert_eq!(file["content"], "kind");
    let detail = json(daemon.get(&format!("/api/agents/{copy}")).await).await;
    assert_eq!(detail["name"], "copy");
    let taken = daemon
        .post(
            &format!("/api/agents/{id}/clone"),
            serde_json::json!({ "new_name": "copy" }),
        )
        .await;
    assert_error(taken, 409, "already exists").await;
}

#[tokio::test]
async fn memory_export_and_atomic_import() {
    let daemon = Daemon::start().await;
    let id = daemon.spawn_agent("memo").await;
    daemon
        .put(
            &format!("/api/memory/agents/{id}/kv/old"),
            serde_json::json!({ "value": 1 }),
        )
        .await;
    let imported = json(
        daemon
            .post(
                &format!("/api/agents/{id}/memory/import"),
                serde_json::json!({ "kv": { "a": "x", "b": { "n": 2 } }, "clear_existing": true }),
            )
            .await,
    )
    .await;
    assert_eq!(imported["keys_imported"], 2);
    let exported = json(daemon.get(&format!("/api/agents/{id}/memory/export")).await).await;
    assert_eq!(
        exported["kv"],
        serde_json::json!({ "a": "x", "b": { "n": 2 } })
    );

    // One bad key refuses the whole import.
    let long = "k".repeat(2000);
    let response = daemon
        .post(
            &format!("/api/agents/{id}/memory/import"),
            serde_json::json!({ "kv": { "c": 3, long: 4 } }),
        )
        .await;
    assert_error(response, 400, "key must be").await;
    let exported = json(daemon.get(&format!("/api/agents/{id}/memory/export")).await).await;
    assert!(exported["kv"].get("c").is_none(), "nothing half-written");
}
