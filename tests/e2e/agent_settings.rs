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

/// The tool names the last model request offered.
fn offered(llm: &TestLlm) -> Vec<String> {
    let request = llm.last_request().expect("a model request");
    let mut names: Vec<String> = request.body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["function"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn librefang_modes_decide_which_tools_are_offered_and_called() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_bundled("", &[]).await;
    let agent = daemon
        .spawn_manifest(manifest(
            "moded",
            &llm,
            "test-model",
            &["file_read", "file_write", "notify_owner"],
        ))
        .await;
    let set = |mode: &'static str| {
        let daemon = &daemon;
        let agent = agent.clone();
        async move {
            let response = daemon
                .put(
                    &format!("/api/agents/{agent}/mode"),
                    json!({ "mode": mode }),
                )
                .await;
            assert_eq!(response.status(), 200, "{mode}");
            json(response).await
        }
    };

    llm.push(talon_test_llm::Reply::text("hi"));
    crate::conversations::say_ok(&daemon, &agent, "hello").await;
    assert_eq!(offered(&llm), ["file_read", "file_write", "notify_owner"]);

    // assist: only the tools that read.
    assert_eq!(set("assist").await["mode"], "assist");
    let shown = json(daemon.get(&format!("/api/agents/{agent}")).await).await;
    assert_eq!(shown["tool_access"], "assist", "{shown}");
    llm.push_all([
        talon_test_llm::Reply::tool_call("file_write", r#"{"path": "x.txt", "content": "no"}"#),
        talon_test_llm::Reply::text("could not write"),
    ]);
    crate::conversations::say_ok(&daemon, &agent, "write x.txt").await;
    let requests = llm.requests();
    let first = &requests[requests.len() - 2];
    let names: Vec<&str> = first.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(names, ["file_read"]);
    // The model called a tool the mode leaves out: refused, nothing written.
    let answer = llm.last_request().unwrap().body["messages"].to_string();
    assert!(
        answer.contains("not allowed in this agent's Assist mode"),
        "{answer}"
    );
    let files = json(daemon.get(&format!("/api/agents/{agent}/files")).await).await;
    assert!(!files.to_string().contains("x.txt"), "{files}");

    // observe: no tools at all.
    set("OBSERVE").await;
    llm.push(talon_test_llm::Reply::text("just looking"));
    crate::conversations::say_ok(&daemon, &agent, "hello").await;
    assert!(offered(&llm).is_empty());

    // full again; Talon's Normal/Stable are a separate setting.
    set("full").await;
    set("Stable").await;
    let shown = json(daemon.get(&format!("/api/agents/{agent}")).await).await;
    assert_eq!(
        (shown["tool_access"].as_str(), shown["mode"].as_str()),
        (Some("full"), Some("Stable"))
    );
    llm.push(talon_test_llm::Reply::text("all back"));
    crate::conversations::say_ok(&daemon, &agent, "hello").await;
    assert_eq!(offered(&llm), ["file_read", "file_write", "notify_owner"]);

    assert_error(
        daemon
            .put(
                &format!("/api/agents/{agent}/mode"),
                json!({ "mode": "Turbo" }),
            )
            .await,
        400,
        "observe, assist or full",
    )
    .await;
}
