//! Custom models and provider settings over the API, end to end: custom
//! models priced and persisted, provider keys and base URLs set, used by real
//! calls to `talon-test-llm`, kept private and persisted, and connectivity
//! tests in each wire format.

use serde_json::json;
use talon_test_llm::{LISTED_MODELS, Reply, TestLlm};

use crate::harness::{Daemon, assert_error, json};

async fn model_total(daemon: &Daemon) -> u64 {
    json(daemon.get("/api/models").await).await["total"]
        .as_u64()
        .unwrap()
}

async fn delete(daemon: &Daemon, path: &str) -> reqwest::Response {
    daemon
        .request(reqwest::Method::DELETE, path)
        .send()
        .await
        .expect("DELETE")
}

#[tokio::test]
async fn custom_models_are_validated_priced_and_survive_a_restart() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    let builtin = model_total(&daemon).await;

    // LibreFang's field names for prices are accepted.
    let added = daemon
        .post(
            "/api/models/custom",
            json!({
                "id": "acme-large",
                "provider": "ollama",
                "aliases": ["acme"],
                "context_window": 32000,
                "max_output_tokens": 4000,
                "input_cost_per_m": 10.0,
                "output_cost_per_m": 20.0,
                "display_name": "ACME Large",
            }),
        )
        .await;
    assert_eq!(added.status(), 201);
    let added = json(added).await;
    assert_eq!(added["status"], "added");
    assert_eq!(added["id"], "acme-large");
    assert_eq!(added["model"]["input_price_per_mtok"], 10.0);

    // Bad input is refused with a clear message and changes nothing.
    let bad = [
        (json!({"provider": "ollama"}), 400, "id"),
        (
            json!({"id": "", "provider": "ollama"}),
            400,
            "non-empty `id`",
        ),
        (
            json!({"id": "gpt-4o", "provider": "openrouter"}),
            400,
            "built-in",
        ),
        (json!({"id": "x1", "aliases": ["sonnet"]}), 400, "built-in"),
        (
            json!({"id": "x2", "provider": "nope"}),
            400,
            "unknown LLM provider",
        ),
        (
            json!({"id": "x3", "context_window": "big"}),
            400,
            "context_window",
        ),
        (
            json!({"id": "x4", "context_window": 0}),
            400,
            "context_window",
        ),
        (
            json!({"id": "x5", "context_window": 1000, "max_output_tokens": 2000}),
            400,
            "max_output_tokens",
        ),
        (
            json!({"id": "x6", "input_cost_per_m": -1}),
            400,
            "input_price_per_mtok",
        ),
        (
            json!({"id": "x7", "contxt_window": 1000}),
            400,
            "contxt_window",
        ),
        (
            json!({"id": "acme-large", "provider": "ollama"}),
            409,
            "custom model",
        ),
        (
            json!({"id": "acme-2", "aliases": ["ACME"]}),
            409,
            "custom model",
        ),
    ];
    for (body, status, needle) in bad {
        let response = daemon.post("/api/models/custom", body.clone()).await;
        assert_error(response, status, needle).await;
    }
    assert_eq!(
        model_total(&daemon).await,
        builtin + 1,
        "nothing half-written"
    );

    // Listed, found by id and alias.
    let models = json(daemon.get("/api/models").await).await;
    assert!(
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "acme-large")
    );
    let found = json(daemon.get("/api/models/acme").await).await;
    assert_eq!(found["id"], "acme-large");
    assert_eq!(found["context_window"], 32000);

    // An agent using it is priced at its prices: 1000 in at $10/M plus
    // 500 out at $20/M is $0.02.
    let agent = daemon.spawn_manifest(format!(
            "name = \"acme-user\"\n[model]\nprovider = \"ollama\"\nmodel = \"acme\"\nbase_url = \"{}\"\n",
            llm.openai_url()
        ),
    )
    .await;
    llm.push(Reply::text("priced").with_usage(1000, 500));
    let reply = daemon.message(&agent, "hi").await;
    assert_eq!(reply.status(), 200);
    let reply = json(reply).await;
    assert_eq!(reply["response"], "priced");
    let cost = reply["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.02).abs() < 1e-9, "cost {cost}");
    assert_eq!(
        llm.last_request().unwrap().model.as_deref(),
        Some("acme-large"),
        "the alias resolves to the id sent to the provider"
    );

    // Ids with slashes are removed by their whole id.
    let slashed = daemon
        .post(
            "/api/models/custom",
            json!({"id": "acme/vendor-model", "provider": "openrouter"}),
        )
        .await;
    assert_eq!(slashed.status(), 201);
    assert_eq!(
        json(daemon.get("/api/models/acme/vendor-model").await).await["provider"],
        "openrouter"
    );
    let removed = delete(&daemon, "/api/models/custom/acme/vendor-model").await;
    assert_eq!(removed.status(), 200);
    assert_eq!(json(removed).await["status"], "removed");
    assert_eq!(
        daemon.get("/api/models/acme/vendor-model").await.status(),
        404
    );

    // Built-in models stay; unknown ids are 404.
    assert_error(
        delete(&daemon, "/api/models/custom/gpt-4o").await,
        400,
        "built-in",
    )
    .await;
    assert_error(
        delete(&daemon, "/api/models/custom/no-such-model").await,
        404,
        "no custom model",
    )
    .await;

    // Persisted: still there after a restart, gone after removal and another.
    daemon.terminate();
    daemon.restart();
    assert_eq!(model_total(&daemon).await, builtin + 1);
    assert_eq!(
        json(daemon.get("/api/models/acme-large").await).await["output_price_per_mtok"],
        20.0
    );
    let removed = delete(&daemon, "/api/models/custom/acme-large").await;
    assert_eq!(removed.status(), 200);
    assert_eq!(daemon.get("/api/models/acme-large").await.status(), 404);
    daemon.terminate();
    daemon.restart();
    assert_eq!(daemon.get("/api/models/acme-large").await.status(), 404);
    assert_eq!(model_total(&daemon).await, builtin);
}

const API_KEY: &str = "api-groq-key-000111222333";
const ENV_KEY: &str = "env-groq-key-444555666777";

async fn provider(daemon: &Daemon, name: &str) -> serde_json::Value {
    let response = daemon.get(&format!("/api/providers/{name}")).await;
    assert_eq!(response.status(), 200);
    json(response).await
}

#[tokio::test]
async fn provider_keys_and_urls_are_used_private_and_persisted() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start_with_env("", &[("GROQ_API_KEY", ENV_KEY)]).await;

    // Unknown providers are 404 on every route; bad input is 400 and
    // changes nothing.
    assert_error(
        daemon
            .post("/api/providers/nope/key", json!({"key": "k"}))
            .await,
        404,
        "unknown LLM provider",
    )
    .await;
    assert_error(
        delete(&daemon, "/api/providers/nope/key").await,
        404,
        "nope",
    )
    .await;
    assert_error(
        daemon.post("/api/providers/nope/test", json!({})).await,
        404,
        "nope",
    )
    .await;
    assert_error(
        daemon
            .put("/api/providers/nope/url", json!({"base_url": "http://x"}))
            .await,
        404,
        "nope",
    )
    .await;
    for (body, needle) in [
        (json!({}), "key"),
        (json!({"key": ""}), "empty"),
        (json!({"key": "   "}), "empty"),
        (json!({"key": "has space"}), "spaces"),
        (json!({"key": 5}), "key"),
    ] {
        assert_error(
            daemon.post("/api/providers/groq/key", body).await,
            400,
            needle,
        )
        .await;
    }
    for (body, needle) in [
        (json!({}), "missing `base_url`"),
        (json!({"base_url": ""}), "not a valid URL"),
        (json!({"base_url": "not a url"}), "not a valid URL"),
        (json!({"base_url": "ftp://host/v1"}), "http://"),
        (json!({"base_url": "http://user:pw@host/v1"}), "credentials"),
        (json!({"base_url": 7}), "string or null"),
        (json!({"base_url": "http://h", "extra": 1}), "unknown field"),
    ] {
        assert_error(
            daemon.put("/api/providers/groq/url", body).await,
            400,
            needle,
        )
        .await;
    }
    let groq = provider(&daemon, "groq").await;
    assert_eq!(groq["base_url"], "https://api.groq.com/openai/v1");
    assert_eq!(groq["base_url_overridden"], false);
    assert_eq!(groq["auth_status"], "configured");
    assert_eq!(groq["key_source"], "env");

    // Point groq at the test server; an agent without its own base_url
    // follows, with the environment's key.
    llm.require_api_key(Some(ENV_KEY));
    let set = daemon
        .put(
            "/api/providers/groq/url",
            json!({"base_url": llm.openai_url()}),
        )
        .await;
    assert_eq!(set.status(), 200);
    assert_eq!(json(set).await["base_url"], llm.openai_url());
    let agent = daemon
        .spawn_manifest(
            "name = \"grok\"\n[model]\nprovider = \"groq\"\nmodel = \"llama-3.1-8b-instant\"\n"
                .into(),
        )
        .await;
    llm.push(Reply::text("with the env key"));
    let reply = daemon.message(&agent, "one").await;
    assert_eq!(reply.status(), 200);
    assert_eq!(json(reply).await["response"], "with the env key");

    // A key set over the API wins over the environment's, for calls and tests.
    llm.require_api_key(Some(API_KEY));
    let set = daemon
        .post("/api/providers/groq/key", json!({"key": API_KEY}))
        .await;
    assert_eq!(set.status(), 200);
    let set = set.text().await.unwrap();
    assert!(!set.contains(API_KEY), "the key is never returned: {set}");
    let set: serde_json::Value = serde_json::from_str(&set).unwrap();
    assert_eq!(set["status"], "saved");
    assert_eq!(set["key_source"], "api");
    llm.push(Reply::text("with the api key"));
    let reply = daemon.message(&agent, "two").await;
    assert_eq!(reply.status(), 200);
    assert_eq!(json(reply).await["response"], "with the api key");
    let sent = llm.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    let tested = json(daemon.post("/api/providers/groq/test", json!({})).await).await;
    assert_eq!(tested["status"], "ok", "{tested}");
    assert_eq!(tested["model_count"], LISTED_MODELS.len());
    assert!(tested["latency_ms"].is_u64());
    assert_eq!(llm.last_request().unwrap().path, "/v1/models");

    // Never shown, logged or audited; stored privately, not in config.toml.
    for path in [
        "/api/providers",
        "/api/providers/groq",
        "/api/config",
        "/api/audit/recent",
    ] {
        let text = daemon.get(path).await.text().await.unwrap();
        assert!(!text.contains(API_KEY), "{path} shows the key");
    }
    assert!(!daemon.log().contains(API_KEY), "the log shows the key");
    let config = std::fs::read_to_string(daemon.config_file()).unwrap_or_default();
    assert!(!config.contains(API_KEY));
    let secrets = daemon.home().join("secrets.toml");
    assert!(std::fs::read_to_string(&secrets).unwrap().contains(API_KEY));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "secrets file mode {mode:o}");
    }

    // A wrong key is what the test reports, not a failure of the endpoint.
    let wrong = daemon
        .post("/api/providers/groq/key", json!({"key": "wrong-key-0000"}))
        .await;
    assert_eq!(wrong.status(), 200);
    let tested = json(daemon.post("/api/providers/groq/test", json!({})).await).await;
    assert_eq!(tested["status"], "error");
    assert!(
        tested["error"].as_str().unwrap().contains("401"),
        "{tested}"
    );
    let set = daemon
        .post("/api/providers/groq/key", json!({"api_key": API_KEY}))
        .await;
    assert_eq!(set.status(), 200);

    // Both survive a restart.
    daemon.terminate();
    daemon.restart();
    let groq = provider(&daemon, "groq").await;
    assert_eq!(groq["key_source"], "api");
    assert_eq!(groq["base_url"], llm.openai_url());
    assert_eq!(groq["base_url_overridden"], true);
    llm.push(Reply::text("after the restart"));
    let reply = daemon.message(&agent, "three").await;
    assert_eq!(reply.status(), 200);
    assert_eq!(json(reply).await["response"], "after the restart");

    // Removing the key falls back to the environment's, durably.
    let removed = json(delete(&daemon, "/api/providers/groq/key").await).await;
    assert_eq!(removed["removed"], true);
    assert_eq!(removed["key_source"], "env");
    let removed = json(delete(&daemon, "/api/providers/groq/key").await).await;
    assert_eq!(removed["removed"], false);
    llm.require_api_key(Some(ENV_KEY));
    daemon.terminate();
    daemon.restart();
    assert_eq!(provider(&daemon, "groq").await["key_source"], "env");
    llm.push(Reply::text("env again"));
    let reply = daemon.message(&agent, "four").await;
    assert_eq!(reply.status(), 200);
    assert_eq!(json(reply).await["response"], "env again");
    assert!(
        !std::fs::read_to_string(&secrets).unwrap().contains(API_KEY),
        "the removed key is gone from disk"
    );

    // Without any key, a provider that needs one is reported missing: by the
    // test (which makes no request) and by the agent's call (412).
    let openai = provider(&daemon, "openai").await;
    assert_eq!(openai["auth_status"], "missing");
    assert!(openai["key_source"].is_null());
    let tested = json(daemon.post("/api/providers/openai/test", json!({})).await).await;
    assert_eq!(tested["status"], "error");
    assert!(tested["error"].as_str().unwrap().contains("OPENAI_API_KEY"));

    // `null` goes back to the default URL.
    let reset = json(
        daemon
            .put("/api/providers/groq/url", json!({"base_url": null}))
            .await,
    )
    .await;
    assert_eq!(reset["base_url"], "https://api.groq.com/openai/v1");
    daemon.terminate();
    daemon.restart();
    assert_eq!(
        provider(&daemon, "groq").await["base_url"],
        "https://api.groq.com/openai/v1"
    );
}

#[tokio::test]
async fn connectivity_tests_speak_each_format() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    llm.require_api_key(Some("sk-format-test-0123456789"));
    for (provider, url, path, header) in [
        ("openai", llm.openai_url(), "/v1/models", "authorization"),
        ("anthropic", llm.anthropic_url(), "/v1/models", "x-api-key"),
        (
            "gemini",
            llm.gemini_url(),
            "/v1beta/models",
            "x-goog-api-key",
        ),
    ] {
        let set = daemon
            .put(
                &format!("/api/providers/{provider}/url"),
                json!({"base_url": url}),
            )
            .await;
        assert_eq!(set.status(), 200, "{provider}");
        let set = daemon
            .post(
                &format!("/api/providers/{provider}/key"),
                json!({"key": "sk-format-test-0123456789"}),
            )
            .await;
        assert_eq!(set.status(), 200, "{provider}");
        let tested = json(
            daemon
                .post(&format!("/api/providers/{provider}/test"), json!({}))
                .await,
        )
        .await;
        assert_eq!(tested["status"], "ok", "{provider}: {tested}");
        assert_eq!(tested["model_count"], LISTED_MODELS.len(), "{provider}");
        let sent = llm.last_request().unwrap();
        assert_eq!(sent.path, path, "{provider}");
        assert!(
            sent.header(header)
                .is_some_and(|v| v.ends_with("sk-format-test-0123456789")),
            "{provider} sends its key in {header}"
        );
    }

    // An unreachable server is an error with what the connection said.
    let set = daemon
        .put(
            "/api/providers/ollama/url",
            json!({"base_url": "http://127.0.0.1:1/v1"}),
        )
        .await;
    assert_eq!(set.status(), 200);
    let tested = json(daemon.post("/api/providers/ollama/test", json!({})).await).await;
    assert_eq!(tested["status"], "error");
    assert!(
        tested["error"].as_str().unwrap().contains("connection"),
        "{tested}"
    );
}

#[tokio::test]
async fn any_openai_compatible_server_under_openai_compatible() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    // A base URL of the agent's own and no key: LibreFang's provider name.
    let agent = daemon
        .spawn_manifest(format!(
            "name = \"compat\"\n[model]\nprovider = \"openai-compatible\"\nmodel = \"local-model\"\n\
             base_url = \"{}\"\n",
            llm.openai_url()
        ))
        .await;
    llm.push(Reply::text("from any server"));
    let reply = daemon.message(&agent, "hello").await;
    assert_eq!(reply.status(), 200);
    assert_eq!(json(reply).await["response"], "from any server");
    assert!(
        !llm.last_request()
            .unwrap()
            .headers
            .contains_key("authorization")
    );

    // Without a base URL anywhere, the message names what to set.
    let lost = daemon
        .spawn_manifest(
            "name = \"lost\"\n[model]\nprovider = \"openai-compatible\"\nmodel = \"m\"\n".into(),
        )
        .await;
    assert_error(daemon.message(&lost, "hello").await, 400, "base_url").await;
    // The operator's URL for the provider serves every such agent.
    let put = daemon
        .put(
            "/api/providers/openai-compatible/url",
            json!({ "base_url": llm.openai_url() }),
        )
        .await;
    assert_eq!(put.status(), 200);
    llm.push(Reply::text("found"));
    let reply = daemon.message(&lost, "hello").await;
    assert_eq!(reply.status(), 200);
}
