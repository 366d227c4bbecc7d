//! Providers, models, aliases, `provider/model` addressing and prices.

mod common;

use common::{KEY, client};
use talon_llm::{
    CompletionRequest, DriverKind, LlmError, Message, ModelCatalog, ModelInfo, ProviderInfo,
    Target, Usage,
};
use talon_test_llm::TestLlm;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn lookup_by_id_alias_and_slashes() {
    let catalog = ModelCatalog::builtin();
    let find = |name: &str| {
        catalog
            .find(name)
            .map(|m| (m.provider.as_str(), m.id.as_str()))
    };

    assert_eq!(find("gpt-4o"), Some(("openai", "gpt-4o")));
    assert_eq!(
        find("sonnet"),
        Some(("anthropic", "claude-sonnet-4-5-20250929"))
    );
    assert_eq!(
        find("SONNET"),
        Some(("anthropic", "claude-sonnet-4-5-20250929"))
    );
    assert_eq!(
        find("claude-haiku-4-5"),
        Some(("anthropic", "claude-haiku-4-5-20251001"))
    );
    // Ids with slashes.
    assert_eq!(
        find("meta-llama/llama-3.3-70b-instruct"),
        Some(("openrouter", "meta-llama/llama-3.3-70b-instruct"))
    );
    assert_eq!(
        find("openai/gpt-oss-120b"),
        Some(("groq", "openai/gpt-oss-120b"))
    );
    // provider/model addressing, also when the model id has slashes itself.
    assert_eq!(
        find("openrouter/meta-llama/llama-3.3-70b-instruct"),
        Some(("openrouter", "meta-llama/llama-3.3-70b-instruct"))
    );
    assert_eq!(
        find("groq/openai/gpt-oss-120b"),
        Some(("groq", "openai/gpt-oss-120b"))
    );
    assert_eq!(
        find("anthropic/sonnet"),
        Some(("anthropic", "claude-sonnet-4-5-20250929"))
    );
    assert_eq!(
        find("gemini/gemini-2.5-pro"),
        Some(("gemini", "gemini-2.5-pro"))
    );
    // An exact id wins over provider/model: this is OpenRouter's model.
    assert_eq!(
        find("openai/gpt-4o-mini"),
        Some(("openrouter", "openai/gpt-4o-mini"))
    );
    assert_eq!(
        catalog
            .find_for_provider("openai", "gpt-4o-mini")
            .map(|m| m.provider.as_str()),
        Some("openai")
    );
    assert_eq!(
        catalog
            .find_for_provider("openai", "openai/gpt-4o-mini")
            .map(|m| m.provider.as_str()),
        Some("openai")
    );

    assert_eq!(find("no-such-model"), None);
    assert_eq!(find("nope/gpt-4o"), None);
    assert!(matches!(
        catalog.get("no-such-model"),
        Err(LlmError::UnknownModel { model }) if model == "no-such-model"
    ));
}

#[test]
fn cost_computation() {
    let catalog = ModelCatalog::builtin();
    let million = Usage::new(1_000_000, 1_000_000);
    // gpt-4o: $2.50 in, $10 out per million.
    assert!(close(
        catalog.cost_usd("gpt-4o", &million).expect("known"),
        12.5
    ));
    // sonnet: $3 / $15 per million: 1000 in + 500 out.
    let cost = catalog
        .cost_usd("sonnet", &Usage::new(1000, 500))
        .expect("known");
    assert!(close(cost, 0.003 + 0.0075), "{cost}");
    assert!(close(
        catalog
            .cost_usd("ollama/llama3.2", &million)
            .expect("known"),
        0.0
    ));
    assert!(close(
        catalog
            .cost_usd("gpt-4o", &Usage::default())
            .expect("known"),
        0.0
    ));
    assert!(matches!(
        catalog.cost_usd("mystery", &million),
        Err(LlmError::UnknownModel { .. })
    ));
}

fn custom_model() -> ModelInfo {
    ModelInfo {
        id: "acme/custom-7b".into(),
        provider: "vllm".into(),
        aliases: vec!["custom".into()],
        context_window: 32_768,
        max_output_tokens: 4096,
        input_price_per_mtok: 0.5,
        output_price_per_mtok: 1.0,
        supports_tools: true,
        supports_vision: false,
    }
}

#[test]
fn models_can_be_added_and_replaced_at_runtime() {
    let llm = client();
    let before = llm.models().len();
    assert!(llm.find_model("custom").is_none());
    llm.add_model(custom_model());
    assert_eq!(llm.models().len(), before + 1);
    assert_eq!(
        llm.find_model("custom").map(|m| m.id),
        Some("acme/custom-7b".into())
    );
    assert_eq!(
        llm.find_model("vllm/acme/custom-7b").map(|m| m.provider),
        Some("vllm".into())
    );
    let cost = llm
        .cost_usd("acme/custom-7b", &Usage::new(2_000_000, 1_000_000))
        .expect("known");
    assert!(close(cost, 2.0));

    let mut cheaper = custom_model();
    cheaper.input_price_per_mtok = 0.0;
    llm.add_model(cheaper);
    assert_eq!(
        llm.models().len(),
        before + 1,
        "same provider and id replaces"
    );
    assert!(close(
        llm.cost_usd("custom", &Usage::new(1_000_000, 0))
            .expect("known"),
        0.0
    ));
}

#[test]
fn resolve_model_for_requests() {
    let llm = client();
    let resolved = llm
        .resolve_model(Some("anthropic"), "sonnet")
        .expect("alias");
    assert_eq!(resolved.provider, "anthropic");
    assert_eq!(resolved.model, "claude-sonnet-4-5-20250929");
    assert!(resolved.info.is_some());

    // Providers serve more than the catalog lists: passed through unchanged.
    let resolved = llm
        .resolve_model(Some("Ollama"), "mistral:7b")
        .expect("pass-through");
    assert_eq!(
        (resolved.provider.as_str(), resolved.model.as_str()),
        ("ollama", "mistral:7b")
    );
    assert!(resolved.info.is_none());

    let resolved = llm.resolve_model(None, "haiku").expect("catalog decides");
    assert_eq!(resolved.provider, "anthropic");
    let resolved = llm
        .resolve_model(None, "openrouter/qwen/qwen3-coder")
        .expect("provider prefix");
    assert_eq!(
        (resolved.provider.as_str(), resolved.model.as_str()),
        ("openrouter", "qwen/qwen3-coder")
    );
    assert!(matches!(
        llm.resolve_model(None, "mystery"),
        Err(LlmError::UnknownModel { .. })
    ));
    let error = llm
        .resolve_model(Some("nope"), "x")
        .expect_err("unknown provider");
    assert!(
        error
            .to_string()
            .contains("known: anthropic, deepseek, gemini"),
        "{error}"
    );
}

#[test]
fn builtin_providers_and_their_keys() {
    let llm = client();
    let names: Vec<String> = llm.providers().into_iter().map(|p| p.name).collect();
    for expected in [
        "openai",
        "anthropic",
        "gemini",
        "groq",
        "openrouter",
        "together",
        "deepseek",
        "ollama",
        "vllm",
        "lmstudio",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing");
    }
    let gemini = llm.provider("GEMINI").expect("case-insensitive");
    assert_eq!(gemini.kind, DriverKind::Gemini);
    assert_eq!(gemini.api_key_env, "GEMINI_API_KEY");
    assert!(gemini.key_required);
    let ollama = llm.provider("ollama").expect("ollama");
    assert_eq!(ollama.kind, DriverKind::OpenAi);
    assert!(!ollama.key_required);
    assert_eq!(ollama.base_url, "http://localhost:11434/v1");
}

#[tokio::test]
async fn aliases_are_resolved_before_sending() {
    let server = TestLlm::start().await;
    let target = Target::new("anthropic")
        .with_api_key(KEY)
        .with_base_url(server.anthropic_url());
    client()
        .complete(
            &target,
            CompletionRequest::new("sonnet").with_message(Message::user("hi")),
        )
        .await
        .expect("complete");
    assert_eq!(
        server.last_request().expect("recorded").body["model"],
        "claude-sonnet-4-5-20250929"
    );
}

#[tokio::test]
async fn slashed_model_ids_reach_openai_compatible_providers_unchanged() {
    let server = TestLlm::start().await;
    let target = Target::new("openrouter")
        .with_api_key(KEY)
        .with_base_url(format!("{}/", server.openai_url()));
    client()
        .complete(
            &target,
            CompletionRequest::new("openrouter/meta-llama/llama-3.3-70b-instruct")
                .with_message(Message::user("hi")),
        )
        .await
        .expect("complete");
    let sent = server.last_request().expect("recorded");
    // A trailing slash in the base URL does not double up.
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["model"], "meta-llama/llama-3.3-70b-instruct");
}

#[tokio::test]
async fn custom_providers_can_be_registered() {
    let server = TestLlm::start().await;
    let llm = client();
    llm.register_provider(ProviderInfo::new(
        "MyLLM",
        DriverKind::OpenAi,
        server.openai_url(),
        "MYLLM_API_KEY",
        false,
    ));
    let response = llm
        .complete(
            &Target::new("myllm"),
            CompletionRequest::new("anything").with_message(Message::user("hi")),
        )
        .await
        .expect("complete");
    assert_eq!(response.text, talon_test_llm::DEFAULT_REPLY);
    assert!(llm.status().iter().any(|s| s.provider == "myllm"));
    let error = llm
        .complete(&Target::new("unheard-of"), CompletionRequest::new("m"))
        .await
        .expect_err("unknown provider");
    assert!(matches!(error, LlmError::UnknownProvider { .. }));
}

#[test]
fn types_serialize_for_persistence() {
    let response = talon_llm::CompletionResponse {
        text: "hi".into(),
        tool_calls: vec![talon_llm::ToolCall::new("c", "f", "{bad")],
        usage: Usage::new(1, 2),
        stop_reason: talon_llm::StopReason::Other("content_filter".into()),
        model: "m".into(),
    };
    let json = serde_json::to_value(&response).expect("serialize");
    assert_eq!(json["stop_reason"], "content_filter");
    assert_eq!(json["tool_calls"][0]["arguments"], "{bad");
    let back: talon_llm::CompletionResponse = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, response);

    let request = CompletionRequest::new("m")
        .with_system("s")
        .with_message(Message::user("u"));
    let json = serde_json::to_string(&request).expect("serialize");
    let back: CompletionRequest = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, request);
}
