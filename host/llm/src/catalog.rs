//! Known providers and models.
//!
//! The built-in lists are deliberately modest: a handful of current models
//! per major provider with their published limits and list prices, enough
//! to price usage and to pick sensible limits. Anything else can be added at
//! runtime ([`ModelCatalog::add`]), and a model that is not in the catalog
//! can still be called: the provider is the authority on what it serves.

use serde::{Deserialize, Serialize};

use crate::error::LlmError;
use crate::types::Usage;

/// Which wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    /// OpenAI Chat Completions (and the many servers compatible with it).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini generateContent.
    Gemini,
}

/// How an OpenAI-compatible provider wants the token limit spelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens`: what every compatible server understands.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: OpenAI itself, whose reasoning models
    /// reject `max_tokens`.
    MaxCompletionTokens,
}

/// A provider Talon can talk to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// Name used in configuration (`openai`, `groq`...), lowercase.
    pub name: String,
    /// Wire format.
    pub kind: DriverKind,
    /// Default base URL (overridable per call). For OpenAI-compatible
    /// providers it includes the version path (`.../v1`); for Anthropic and
    /// Gemini it is the bare origin.
    pub base_url: String,
    /// Environment variable holding the API key.
    pub api_key_env: String,
    /// Whether calls need a key (local servers do not).
    pub key_required: bool,
    /// Token-limit field, for OpenAI-compatible providers.
    #[serde(default)]
    pub max_tokens_field: MaxTokensField,
}

impl ProviderInfo {
    /// A provider description.
    pub fn new(
        name: impl Into<String>,
        kind: DriverKind,
        base_url: impl Into<String>,
        api_key_env: impl Into<String>,
        key_required: bool,
    ) -> Self {
        ProviderInfo {
            name: name.into().to_ascii_lowercase(),
            kind,
            base_url: base_url.into(),
            api_key_env: api_key_env.into(),
            key_required,
            max_tokens_field: MaxTokensField::MaxTokens,
        }
    }
}

/// The providers Talon knows out of the box.
pub fn builtin_providers() -> Vec<ProviderInfo> {
    use DriverKind::*;
    let mut openai = ProviderInfo::new(
        "openai",
        OpenAi,
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        true,
    );
    openai.max_tokens_field = MaxTokensField::MaxCompletionTokens;
    vec![
        openai,
        ProviderInfo::new(
            "anthropic",
            Anthropic,
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
            true,
        ),
        ProviderInfo::new(
            "gemini",
            Gemini,
            "https://generativelanguage.googleapis.com",
            "GEMINI_API_KEY",
            true,
        ),
        ProviderInfo::new(
            "groq",
            OpenAi,
            "https://api.groq.com/openai/v1",
            "GROQ_API_KEY",
            true,
        ),
        ProviderInfo::new(
            "openrouter",
            OpenAi,
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            true,
        ),
        ProviderInfo::new(
            "together",
            OpenAi,
            "https://api.together.xyz/v1",
            "TOGETHER_API_KEY",
            true,
        ),
        ProviderInfo::new(
            "deepseek",
            OpenAi,
            "https://api.deepseek.com/v1",
            "DEEPSEEK_API_KEY",
            true,
        ),
        ProviderInfo::new(
            "ollama",
            OpenAi,
            "http://localhost:11434/v1",
            "OLLAMA_API_KEY",
            false,
        ),
        ProviderInfo::new(
            "vllm",
            OpenAi,
            "http://localhost:8000/v1",
            "VLLM_API_KEY",
            false,
        ),
        ProviderInfo::new(
            "lmstudio",
            OpenAi,
            "http://localhost:1234/v1",
            "LMSTUDIO_API_KEY",
            false,
        ),
        // Any server speaking OpenAI's chat completions: it has no address of
        // its own, so an agent names one (`base_url`) or the operator sets
        // it (`PUT /api/providers/openai-compatible/url`); a key is optional.
        ProviderInfo::new(
            OPENAI_COMPATIBLE,
            OpenAi,
            "",
            "OPENAI_COMPATIBLE_API_KEY",
            false,
        ),
    ]
}

/// The provider for any OpenAI-compatible server, named as LibreFang names it.
pub const OPENAI_COMPATIBLE: &str = "openai-compatible";

/// What Talon knows about a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The id the provider expects (may contain slashes, e.g.
    /// `meta-llama/llama-3.3-70b-instruct` on OpenRouter).
    pub id: String,
    /// The provider serving it under this id.
    pub provider: String,
    /// Other names accepted for it (case-insensitive).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Context window, in tokens.
    pub context_window: u32,
    /// Largest output, in tokens.
    pub max_output_tokens: u32,
    /// USD per million input tokens.
    pub input_price_per_mtok: f64,
    /// USD per million output tokens.
    pub output_price_per_mtok: f64,
    /// Whether it can call tools.
    pub supports_tools: bool,
    /// Whether it accepts images.
    pub supports_vision: bool,
}

impl ModelInfo {
    /// What `usage` costs on this model, in USD.
    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        (usage.input_tokens as f64 * self.input_price_per_mtok
            + usage.output_tokens as f64 * self.output_price_per_mtok)
            / 1_000_000.0
    }

    fn answers_to(&self, name: &str) -> bool {
        self.id == name
            || self
                .aliases
                .iter()
                .any(|alias| alias.eq_ignore_ascii_case(name))
    }
}

/// The models Talon knows, built-in and added at runtime.
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    models: Vec<ModelInfo>,
}

#[allow(clippy::too_many_arguments)]
fn model(
    provider: &str,
    id: &str,
    aliases: &[&str],
    context_window: u32,
    max_output_tokens: u32,
    input_price_per_mtok: f64,
    output_price_per_mtok: f64,
    supports_tools: bool,
    supports_vision: bool,
) -> ModelInfo {
    ModelInfo {
        id: id.to_string(),
        provider: provider.to_string(),
        aliases: aliases.iter().map(|alias| alias.to_string()).collect(),
        context_window,
        max_output_tokens,
        input_price_per_mtok,
        output_price_per_mtok,
        supports_tools,
        supports_vision,
    }
}

impl ModelCatalog {
    /// An empty catalog.
    pub fn empty() -> Self {
        ModelCatalog::default()
    }

    /// The built-in models (list prices in USD per million tokens, standard
    /// tier, shortest-context price where a provider has tiers).
    pub fn builtin() -> Self {
        const M: u32 = 1_048_576;
        let models = vec![
            // OpenAI
            model(
                "openai",
                "gpt-5",
                &[],
                400_000,
                128_000,
                1.25,
                10.0,
                true,
                true,
            ),
            model(
                "openai",
                "gpt-5-mini",
                &[],
                400_000,
                128_000,
                0.25,
                2.0,
                true,
                true,
            ),
            model(
                "openai",
                "gpt-4.1",
                &[],
                1_047_576,
                32_768,
                2.0,
                8.0,
                true,
                true,
            ),
            model(
                "openai",
                "gpt-4.1-mini",
                &[],
                1_047_576,
                32_768,
                0.40,
                1.60,
                true,
                true,
            ),
            model(
                "openai",
                "gpt-4o",
                &[],
                128_000,
                16_384,
                2.50,
                10.0,
                true,
                true,
            ),
            model(
                "openai",
                "gpt-4o-mini",
                &[],
                128_000,
                16_384,
                0.15,
                0.60,
                true,
                true,
            ),
            model(
                "openai",
                "o4-mini",
                &[],
                200_000,
                100_000,
                1.10,
                4.40,
                true,
                true,
            ),
            // Anthropic
            model(
                "anthropic",
                "claude-opus-4-1-20250805",
                &["claude-opus-4-1", "opus"],
                200_000,
                32_000,
                15.0,
                75.0,
                true,
                true,
            ),
            model(
                "anthropic",
                "claude-sonnet-4-5-20250929",
                &["claude-sonnet-4-5", "sonnet"],
                200_000,
                64_000,
                3.0,
                15.0,
                true,
                true,
            ),
            model(
                "anthropic",
                "claude-sonnet-4-20250514",
                &["claude-sonnet-4-0", "claude-sonnet-4"],
                200_000,
                64_000,
                3.0,
                15.0,
                true,
                true,
            ),
            model(
                "anthropic",
                "claude-haiku-4-5-20251001",
                &["claude-haiku-4-5", "haiku"],
                200_000,
                64_000,
                1.0,
                5.0,
                true,
                true,
            ),
            model(
                "anthropic",
                "claude-3-5-haiku-20241022",
                &["claude-3-5-haiku-latest"],
                200_000,
                8_192,
                0.80,
                4.0,
                true,
                true,
            ),
            // Google Gemini
            model(
                "gemini",
                "gemini-2.5-pro",
                &[],
                M,
                65_536,
                1.25,
                10.0,
                true,
                true,
            ),
            model(
                "gemini",
                "gemini-2.5-flash",
                &["gemini-flash"],
                M,
                65_536,
                0.30,
                2.50,
                true,
                true,
            ),
            model(
                "gemini",
                "gemini-2.5-flash-lite",
                &[],
                M,
                65_536,
                0.10,
                0.40,
                true,
                true,
            ),
            model(
                "gemini",
                "gemini-2.0-flash",
                &[],
                M,
                8_192,
                0.10,
                0.40,
                true,
                true,
            ),
            // Groq
            model(
                "groq",
                "llama-3.3-70b-versatile",
                &[],
                131_072,
                32_768,
                0.59,
                0.79,
                true,
                false,
            ),
            model(
                "groq",
                "llama-3.1-8b-instant",
                &[],
                131_072,
                131_072,
                0.05,
                0.08,
                true,
                false,
            ),
            model(
                "groq",
                "openai/gpt-oss-120b",
                &[],
                131_072,
                65_536,
                0.15,
                0.75,
                true,
                false,
            ),
            // OpenRouter (ids are "vendor/model")
            model(
                "openrouter",
                "meta-llama/llama-3.3-70b-instruct",
                &[],
                131_072,
                16_384,
                0.13,
                0.39,
                true,
                false,
            ),
            model(
                "openrouter",
                "anthropic/claude-sonnet-4.5",
                &[],
                1_000_000,
                64_000,
                3.0,
                15.0,
                true,
                true,
            ),
            model(
                "openrouter",
                "openai/gpt-4o-mini",
                &[],
                128_000,
                16_384,
                0.15,
                0.60,
                true,
                true,
            ),
            // Together
            model(
                "together",
                "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                &[],
                131_072,
                8_192,
                0.88,
                0.88,
                true,
                false,
            ),
            model(
                "together",
                "deepseek-ai/DeepSeek-V3",
                &[],
                131_072,
                8_192,
                1.25,
                1.25,
                true,
                false,
            ),
            // DeepSeek
            model(
                "deepseek",
                "deepseek-chat",
                &[],
                128_000,
                8_192,
                0.28,
                0.42,
                true,
                false,
            ),
            model(
                "deepseek",
                "deepseek-reasoner",
                &[],
                128_000,
                64_000,
                0.28,
                0.42,
                false,
                false,
            ),
            // Local servers: free, and any model the server has can be used.
            model(
                "ollama",
                "llama3.2",
                &[],
                131_072,
                8_192,
                0.0,
                0.0,
                true,
                false,
            ),
            model("ollama", "qwen3", &[], 40_960, 8_192, 0.0, 0.0, true, false),
        ];
        ModelCatalog { models }
    }

    /// Adds a model, replacing one with the same provider and id.
    pub fn add(&mut self, info: ModelInfo) {
        match self
            .models
            .iter_mut()
            .find(|known| known.provider == info.provider && known.id == info.id)
        {
            Some(known) => *known = info,
            None => self.models.push(info),
        }
    }

    /// Removes the model with this exact id (of any provider) and returns it.
    pub fn remove(&mut self, id: &str) -> Option<ModelInfo> {
        let index = self.models.iter().position(|known| known.id == id)?;
        Some(self.models.remove(index))
    }

    /// All models.
    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// The models of one provider.
    pub fn for_provider<'a>(
        &'a self,
        provider: &str,
    ) -> impl Iterator<Item = &'a ModelInfo> + use<'a> {
        let provider = provider.to_ascii_lowercase();
        self.models
            .iter()
            .filter(move |info| info.provider == provider)
    }

    /// Finds a model by name, in this order: exact id; alias; then
    /// `provider/model` addressing (`openrouter/meta-llama/llama-3.3-70b-instruct`,
    /// `anthropic/sonnet`). Exact ids win because ids themselves contain
    /// slashes (OpenRouter's `openai/gpt-4o-mini` is an OpenRouter model,
    /// not OpenAI's).
    pub fn find(&self, name: &str) -> Option<&ModelInfo> {
        if let Some(info) = self.models.iter().find(|info| info.id == name) {
            return Some(info);
        }
        if let Some(info) = self.models.iter().find(|info| info.answers_to(name)) {
            return Some(info);
        }
        let (provider, rest) = name.split_once('/')?;
        self.find_for_provider(provider, rest)
    }

    /// Finds a model of one provider by id or alias; a `provider/` prefix
    /// naming that same provider is accepted too.
    pub fn find_for_provider(&self, provider: &str, name: &str) -> Option<&ModelInfo> {
        let provider = provider.to_ascii_lowercase();
        let found = self
            .for_provider(&provider)
            .find(|info| info.id == name)
            .or_else(|| {
                self.for_provider(&provider)
                    .find(|info| info.answers_to(name))
            });
        if found.is_some() {
            return found;
        }
        let rest = name.strip_prefix(provider.as_str())?.strip_prefix('/')?;
        self.for_provider(&provider)
            .find(|info| info.answers_to(rest))
    }

    /// Like [`ModelCatalog::find`], with a typed error.
    pub fn get(&self, name: &str) -> Result<&ModelInfo, LlmError> {
        self.find(name).ok_or_else(|| LlmError::UnknownModel {
            model: name.to_string(),
        })
    }

    /// What `usage` costs on `model` (any name [`ModelCatalog::find`] accepts), in USD.
    pub fn cost_usd(&self, model: &str, usage: &Usage) -> Result<f64, LlmError> {
        Ok(self.get(model)?.cost_usd(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_entries_are_consistent() {
        let providers = builtin_providers();
        let catalog = ModelCatalog::builtin();
        for info in catalog.models() {
            assert!(
                providers.iter().any(|p| p.name == info.provider),
                "{} has unknown provider {}",
                info.id,
                info.provider
            );
            assert!(info.max_output_tokens <= info.context_window, "{}", info.id);
        }
        let mut names: Vec<_> = providers.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), providers.len(), "duplicate provider names");
    }
}
