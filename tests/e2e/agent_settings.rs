//! Templates, profiles, identity, hot config and modes of agents, end to end.

use serde_json::json;
use talon_test_llm::TestLlm;

use crate::conversations::manifest;
use crate::harness::{Daemon, assert_error, json};

#[tokio::test]
async fn templates_profiles_identity_config_and_modes() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;

    let templates = json(daemon.get("/api/templates").await).await;
    assert!(templates["total"].as_u64().unwrap() >= 3);
    let toml = daemon.get("/api/templates/coder/toml").await;
    assert_eq!(toml.status(), 200);
    assert!(toml.text().await.unwrap().contains("file_write"));
    assert_eq!(daemon.get("/api/templates/nope").await.status(), 404);
    let spawned = daemon
        .post(
            "/api/agents",
            json!({ "template": "assistant", "name": "my-assistant" }),
        )
        .await;
    assert_eq!(spawned.status(), 201);
    assert_eq!(json(spawned).await["name"], "my-assistant");
    let both = daemon
        .post(
            "/api/agents",
            json!({ "template": "coder", "manifest_toml": "name = \"x\"" }),
        )
        .await;
    assert_eq!(both.status(), 400);
    let profiles = json(daemon.get("/api/profiles").await).await;
    assert!(
        profiles
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "coding")
    );
    assert_eq!(daemon.get("/api/profiles/coding").await.status(), 200);

    let agent = daemon
        .spawn_manifest(manifest("shape", &llm, "test-model", &[]))
        .await;
    let identity = daemon
        .request(
            reqwest::Method::PATCH,
            &format!("/api/agents/{agent}/identity"),
        )
        .json(&json!({ "emoji": "🦅", "color": "#334455" }))
        .send()
        .await
        .unwrap();
    assert_eq!(identity.status(), 200);
    let config = daemon
        .request(
            reqwest::Method::PATCH,
            &format!("/api/agents/{agent}/config"),
        )
        .json(&json!({ "description": "patched", "temperature": 0.3, "vibe": "calm" }))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 200);
    let detail = json(daemon.get(&format!("/api/agents/{agent}")).await).await;
    assert_eq!(detail["identity"]["emoji"], "🦅");
    assert_eq!(detail["identity"]["vibe"], "calm");
    assert_eq!(detail["description"], "patched");
    let hot = daemon
        .request(
            reqwest::Method::PATCH,
            &format!("/api/agents/{agent}/config"),
        )
        .json(&json!({ "temperature": 9 }))
        .send()
        .await
        .unwrap();
    assert_eq!(hot.status(), 400);

    // Stable mode pins the model and freezes skills.
    let mode = daemon
        .put(
            &format!("/api/agents/{agent}/mode"),
            json!({ "mode": "Stable" }),
        )
        .await;
    assert_eq!(mode.status(), 200);
    let switch = daemon
        .put(
            &format!("/api/agents/{agent}/model"),
            json!({ "model": "gpt-4o" }),
        )
        .await;
    assert_error(switch, 409, "Stable").await;
    let skills = daemon
        .put(
            &format!("/api/agents/{agent}/skills"),
            json!({ "skills": ["greeter"] }),
        )
        .await;
    assert_eq!(skills.status(), 409);
    daemon
        .put(
            &format!("/api/agents/{agent}/mode"),
            json!({ "mode": "Normal" }),
        )
        .await;
    let switch = daemon
        .put(
            &format!("/api/agents/{agent}/model"),
            json!({ "model": "gpt-4o" }),
        )
        .await;
    assert_eq!(json(switch).await["model"], "gpt-4o");
    let tools = daemon
        .put(
            &format!("/api/agents/{agent}/tools"),
            json!({ "tools": ["notify_owner"] }),
        )
        .await;
    assert_eq!(json(tools).await["tools"][0], "notify_owner");
    let bad_mode = daemon
        .put(
            &format!("/api/agents/{agent}/mode"),
            json!({ "mode": "Turbo" }),
        )
        .await;
    assert_eq!(bad_mode.status(), 400);
}
