//! The checks a manifest passes at the door (spawn, clone, template, edit):
//! every key is one Talon or LibreFang defines, `[model]` names a known
//! provider and a model, and every tool and skill is installed or built in.
//!
//! Each mistake is an [`Issue`] naming its line, its key and the valid
//! choices, with a did-you-mean when a choice is close. Keys LibreFang
//! defines but Talon does not implement are accepted and ignored, so
//! LibreFang's manifests keep loading; only keys neither defines are refused.

use std::collections::BTreeSet;

use toml_edit::{Document, Item, Table};

use super::manifest::{AgentManifest, BUILTIN_TOOLS};
use crate::KernelError;

/// Top-level keys Talon reads.
const TALON_TOP: &[&str] = &[
    "name",
    "version",
    "description",
    "author",
    "module",
    "system_prompt",
    "tags",
    "skills",
    "mcp_servers",
    "model",
    "capabilities",
    "identity",
    "approvals",
];

/// Top-level keys LibreFang's `AgentManifest` defines that Talon accepts and
/// ignores (librefang-types `agent.rs`).
const LIBREFANG_TOP: &[&str] = &[
    "schedule",
    "session_mode",
    "fallback_models",
    "resources",
    "priority",
    "profile",
    "tools",
    "skills_disabled",
    "mcp_disabled",
    "channels",
    "metadata",
    "routing",
    "autonomous",
    "pinned_model",
    "workspace",
    "generate_identity_files",
    "workspaces",
    "exec_policy",
    "tool_allowlist",
    "tool_blocklist",
    "tools_disabled",
    "response_format",
    "enabled",
    "allowed_plugins",
    "inherit_parent_context",
    "thinking",
    "context_injection",
    "is_hand",
    "web_search_augmentation",
    "auto_dream_enabled",
    "auto_dream_min_hours",
    "auto_dream_min_sessions",
    "show_progress",
    "auto_evolve",
    "channel_overrides",
    "max_history_messages",
    "max_concurrent_invocations",
    "assignee_wake",
    "cache_context",
    "tool_exec_backend",
    "skill_workshop",
    "proactive_memory",
    "compaction",
    "context_engine",
    "rl_export",
    "triggers",
    "reconcile_orphans",
    "async_tasks",
    "i18n",
];

/// `[model]` keys Talon reads, and LibreFang's `name` (an alias of `model`),
/// `context_window` and `max_output_tokens`.
const MODEL_KEYS: &[&str] = &[
    "provider",
    "model",
    "name",
    "api_key_env",
    "base_url",
    "max_tokens",
    "temperature",
    "max_context_tokens",
    "system_prompt",
    "call_deadline_secs",
    "context_window",
    "max_output_tokens",
];

/// `[capabilities]` keys: Talon's four, then LibreFang's others.
const CAPABILITY_KEYS: &[&str] = &[
    "tools",
    "memory_read",
    "memory_write",
    "network",
    "agent_spawn",
    "agent_message",
    "shell",
    "ofp_discover",
    "ofp_connect",
];

/// `[identity]` keys.
const IDENTITY_KEYS: &[&str] = &[
    "emoji",
    "avatar_url",
    "color",
    "archetype",
    "vibe",
    "greeting_style",
];

/// What a manifest may name, as installed right now.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// Known model providers.
    pub providers: BTreeSet<String>,
    /// Tools of installed plugins (built-in tools are added by the check).
    pub tools: BTreeSet<String>,
    /// Installed skills.
    pub skills: BTreeSet<String>,
}

/// One mistake in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// 1-based line, when the mistake is at a place in the text.
    pub line: Option<usize>,
    /// The dotted key concerned (`model.provider`, `capabilities.tools`).
    pub key: String,
    /// What is wrong and what would be right, without the line.
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// Turns issues into the 400 the API answers.
pub fn refuse(issues: &[Issue]) -> KernelError {
    let list: Vec<String> = issues.iter().map(Issue::to_string).collect();
    KernelError::Invalid(format!("invalid manifest: {}", list.join("; ")))
}

/// The closest of `choices` to `word`, when it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, choices: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    closest(word, choices, 0.6)
}

/// The closest of `choices` to `word` with a similarity of at least `min` (0-1).
fn closest<'a>(
    word: &str,
    choices: impl IntoIterator<Item = &'a str>,
    min: f64,
) -> Option<&'a str> {
    choices
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(word, c), c))
        .filter(|(score, _)| *score >= min)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `; did you mean `x`? <label>: <choices>`, or `; <label>: <choices>`
/// when none is close.
fn choices_of<'a>(
    word: &str,
    label: &str,
    choices: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    let list = listed(choices.clone());
    match did_you_mean(word, choices) {
        Some(close) => format!("; did you mean `{close}`? {label}: {list}"),
        None => format!("; {label}: {list}"),
    }
}

/// Choices as a short list for a message: at most 40 names.
fn listed<'a>(choices: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = choices.into_iter().collect();
    if all.is_empty() {
        return "none".into();
    }
    let mut text = all.iter().take(40).copied().collect::<Vec<_>>().join(", ");
    if all.len() > 40 {
        text.push_str(&format!(", and {} more", all.len() - 40));
    }
    text
}

struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn of(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        let start = span?.start.min(self.0.len());
        Some(
            self.0.as_bytes()[..start]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1,
        )
    }
}

/// Every mistake in `text`, whose structure `manifest` already passed.
pub fn issues(text: &str, manifest: &AgentManifest, choices: &Choices) -> Vec<Issue> {
    // `AgentManifest::parse` read it, so it is TOML; a failure here would
    // be a parser disagreement, reported rather than unwrapped.
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            return vec![Issue {
                line: None,
                key: String::new(),
                message: e.to_string().trim_end().to_string(),
            }];
        }
    };
    let lines = Lines(text);
    let root = doc.as_table();
    let mut out = Vec::new();
    let top: Vec<&str> = TALON_TOP.iter().chain(LIBREFANG_TOP).copied().collect();
    unknown_keys(root, "", &top, &lines, &mut out);
    if let Some(item) = root.get("tools")
        && !item.is_table_like()
    {
        out.push(Issue {
            line: lines.of(root.key("tools").and_then(|k| k.span())),
            key: "tools".into(),
            message: "top-level `tools` is LibreFang's table of per-tool settings; the tools an agent may call go in `[capabilities]` as `tools = [...]`".into(),
        });
    }
    for (section, keys) in [
        ("capabilities", CAPABILITY_KEYS),
        ("identity", IDENTITY_KEYS),
    ] {
        if let Some(table) = root.get(section).and_then(as_table) {
            unknown_keys(&table, section, keys, &lines, &mut out);
        }
    }
    model_issues(root, manifest, choices, &lines, &mut out);
    name_issues(root, manifest, choices, &lines, &mut out);
    out
}

/// A table or an inline table, as a table.
fn as_table(item: &Item) -> Option<Table> {
    match item {
        Item::Table(t) => Some(t.clone()),
        Item::Value(toml_edit::Value::InlineTable(t)) => Some(t.clone().into_table()),
        _ => None,
    }
}

fn unknown_keys(table: &Table, section: &str, valid: &[&str], lines: &Lines, out: &mut Vec<Issue>) {
    for (key, _) in table.iter() {
        if valid.contains(&key) {
            continue;
        }
        let place = if section.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in [{section}]")
        };
        out.push(Issue {
            line: lines.of(table.key(key).and_then(|k| k.span())),
            key: dotted(section, key),
            message: format!(
                "unknown key `{key}` {place}{}",
                choices_of(key, "valid keys", valid.iter().copied())
            ),
        });
    }
}

fn dotted(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

/// `[model]`: present, with a known provider and a model. LibreFang merges
/// any other key of `[model]` into the provider's request (`extra_params`),
/// so an unknown key is refused only when it looks like a misspelt one.
fn model_issues(
    root: &Table,
    manifest: &AgentManifest,
    choices: &Choices,
    lines: &Lines,
    out: &mut Vec<Issue>,
) {
    let Some(model) = root.get("model").and_then(as_table) else {
        out.push(Issue {
            line: None,
            key: "model".into(),
            message: format!(
                "missing [model] section: add `[model]` with `provider` (one of: {}) and `model`",
                listed(choices.providers.iter().map(String::as_str))
            ),
        });
        return;
    };
    let section_line = lines.of(root
        .key("model")
        .and_then(|k| k.span())
        .or_else(|| root.get("model").and_then(Item::span)));
    for (key, _) in model.iter() {
        if MODEL_KEYS.contains(&key) {
            continue;
        }
        // Close enough to be a slip of the keyboard (`provder`, `modle`),
        // not a real provider parameter such as `max_completion_tokens`.
        if let Some(close) = closest(key, MODEL_KEYS.iter().copied(), 0.8) {
            out.push(Issue {
                line: lines.of(model.key(key).and_then(|k| k.span())),
                key: format!("model.{key}"),
                message: format!(
                    "unknown key `{key}` in [model]; did you mean `{close}`? valid keys: {}",
                    listed(MODEL_KEYS.iter().copied())
                ),
            });
        }
    }
    let provider = manifest.model.provider.trim();
    if provider.is_empty() {
        out.push(Issue {
            line: section_line,
            key: "model.provider".into(),
            message: format!(
                "[model] has no `provider`; valid providers: {}",
                listed(choices.providers.iter().map(String::as_str))
            ),
        });
    } else if !choices.providers.contains(&provider.to_ascii_lowercase()) {
        out.push(Issue {
            line: lines.of(model.get("provider").and_then(Item::span)),
            key: "model.provider".into(),
            message: format!(
                "unknown provider `{provider}`{}",
                choices_of(
                    provider,
                    "valid providers",
                    choices.providers.iter().map(String::as_str)
                )
            ),
        });
    }
    if let Some(secs) = manifest.model.call_deadline_secs
        && !(1..=86_400).contains(&secs)
    {
        out.push(Issue {
            line: lines.of(model.get("call_deadline_secs").and_then(Item::span)),
            key: "model.call_deadline_secs".into(),
            message: format!("call_deadline_secs must be between 1 and 86400 seconds, not {secs}"),
        });
    }
    if manifest.model.model.trim().is_empty() {
        out.push(Issue {
            line: section_line,
            key: "model.model".into(),
            message:
                "[model] has no `model`: name the model id at the provider (or a catalog alias)"
                    .into(),
        });
    }
}

/// `capabilities.tools` and `skills`: each installed or built in.
fn name_issues(
    root: &Table,
    manifest: &AgentManifest,
    choices: &Choices,
    lines: &Lines,
    out: &mut Vec<Issue>,
) {
    let tools: BTreeSet<&str> = choices
        .tools
        .iter()
        .map(String::as_str)
        .chain(BUILTIN_TOOLS.iter().copied())
        .collect();
    let tools_line = root
        .get("capabilities")
        .and_then(as_table)
        .and_then(|c| c.get("tools").and_then(Item::span))
        .and_then(|s| lines.of(Some(s)));
    for tool in &manifest.capabilities.tools {
        if !tools.contains(tool.as_str()) {
            out.push(Issue {
                line: tools_line,
                key: "capabilities.tools".into(),
                message: format!(
                    "tool `{tool}` is not installed{}",
                    choices_of(tool, "installed and built-in tools", tools.iter().copied())
                ),
            });
        }
    }
    let skills_line = lines.of(root.get("skills").and_then(Item::span));
    for skill in &manifest.skills {
        if !choices.skills.contains(skill) {
            out.push(Issue {
                line: skills_line,
                key: "skills".into(),
                message: format!(
                    "skill `{skill}` is not installed{}",
                    choices_of(
                        skill,
                        "installed skills",
                        choices.skills.iter().map(String::as_str)
                    )
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> Choices {
        Choices {
            providers: ["openai", "ollama", "openai-compatible"]
                .map(String::from)
                .into(),
            tools: ["file_read"].map(String::from).into(),
            skills: ["greeter"].map(String::from).into(),
        }
    }

    fn check(text: &str) -> Vec<String> {
        let manifest = AgentManifest::parse(text).unwrap();
        issues(text, &manifest, &choices())
            .iter()
            .map(Issue::to_string)
            .collect()
    }

    const GOOD: &str = "name = \"a\"\n[model]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n";

    #[test]
    fn a_good_manifest_has_no_issue() {
        assert!(check(GOOD).is_empty());
        let full = format!(
            "{GOOD}top_p = 0.9\nmax_completion_tokens = 5\n[capabilities]\ntools = [\"file_read\", \"notify_owner\"]\nshell = [\"ls\"]\n\
             [resources]\nmax_cpu_time_ms = 1\n[tools.file_read]\nx = 1\n"
        );
        assert!(check(&full).is_empty(), "{:?}", check(&full));
    }

    #[test]
    fn a_misspelt_key_names_line_key_and_choice() {
        let text =
            "name = \"a\"\ndescrption = \"x\"\n[model]\nprovder = \"openai\"\nmodel = \"m\"\n";
        let found = check(text);
        assert!(
            found[0].starts_with(
                "line 2: unknown key `descrption` at the top level; did you mean `description`?"
            ),
            "{found:?}"
        );
        assert!(
            found.iter().any(|i| i
                .starts_with("line 4: unknown key `provder` in [model]; did you mean `provider`?")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|i| i.contains("[model] has no `provider`")),
            "{found:?}"
        );
    }

    #[test]
    fn names_must_be_installed() {
        let text =
            format!("skills = [\"greter\"]\n{GOOD}[capabilities]\ntools = [\"file_raed\"]\n");
        let found = check(&text);
        assert!(found.iter().any(|i| i.contains("tool `file_raed` is not installed; did you mean `file_read`?")), "{found:?}");
        assert!(
            found
                .iter()
                .any(|i| i.contains("skill `greter` is not installed; did you mean `greeter`?")),
            "{found:?}"
        );
    }

    #[test]
    fn top_level_tools_as_a_list_is_refused() {
        let found = check(&format!("tools = [\"file_read\"]\n{GOOD}"));
        assert!(
            found[0].starts_with("line 1: top-level `tools`"),
            "{found:?}"
        );
    }
}
