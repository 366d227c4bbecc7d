//! Agent templates (ready-made manifests) and tool profiles (named tool sets).
//!
//! Templates ship with the daemon (`host/kernel/templates/`) and can be added
//! by the operator as `<home>/templates/<name>.toml`; an operator's file
//! replaces a built-in one of the same name.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::KernelError;
use crate::agents::AgentManifest;

const BUILTIN: &[(&str, &str)] = &[
    ("assistant", include_str!("../../templates/assistant.toml")),
    ("coder", include_str!("../../templates/coder.toml")),
    (
        "researcher",
        include_str!("../../templates/researcher.toml"),
    ),
];

/// A template: a manifest to spawn agents from.
#[derive(Debug, Clone, Serialize)]
pub struct Template {
    /// Its name.
    pub name: String,
    /// `builtin` or `home`.
    pub source: &'static str,
    /// The manifest text.
    pub toml: String,
    /// The manifest, parsed.
    pub manifest: AgentManifest,
}

/// A named set of tools for `capabilities.tools`.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// Its name.
    pub name: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// The tools it grants (`*`: every installed tool).
    pub tools: Vec<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl super::Agents {
    /// Every template, built-in and the operator's, by name.
    pub async fn templates(&self) -> Result<Vec<Template>, KernelError> {
        let mut out: BTreeMap<String, Template> = BTreeMap::new();
        for (name, text) in BUILTIN {
            let manifest = AgentManifest::parse(text)?;
            out.insert(
                name.to_string(),
                Template {
                    name: name.to_string(),
                    source: "builtin",
                    toml: text.to_string(),
                    manifest,
                },
            );
        }
        let dir = self.shared.home().root().join("templates");
        if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                let path = entry.path();
                let Some(name) = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .filter(|n| valid_name(n))
                    .map(str::to_string)
                else {
                    continue;
                };
                if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                    continue;
                }
                let Ok(text) = tokio::fs::read_to_string(&path).await else {
                    continue;
                };
                match AgentManifest::parse(&text) {
                    Ok(manifest) => {
                        out.insert(
                            name.clone(),
                            Template {
                                name,
                                source: "home",
                                toml: text,
                                manifest,
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(template = %path.display(), error = %e, "template skipped")
                    }
                }
            }
        }
        Ok(out.into_values().collect())
    }

    /// One template.
    pub async fn template(&self, name: &str) -> Result<Template, KernelError> {
        self.templates()
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| KernelError::NotFound(format!("no template named `{name}`")))
    }

    /// The tool profiles; `full` holds the `installed` tools and the built-in ones.
    pub(crate) fn profiles(&self, installed: Vec<String>) -> Vec<Profile> {
        let owned = |tools: &[&str]| tools.iter().map(|t| t.to_string()).collect();
        vec![
            Profile {
                name: "minimal",
                description: "No tools but notices to the owner",
                tools: owned(&["notify_owner"]),
            },
            Profile {
                name: "coding",
                description: "Read, list and write files in the agent's workspace",
                tools: owned(&["file_read", "file_list", "file_write"]),
            },
            Profile {
                name: "research",
                description: "Fetch web pages and keep notes",
                tools: owned(&["web_fetch", "file_read", "file_write"]),
            },
            Profile {
                name: "full",
                description: "Every installed tool",
                tools: installed
                    .into_iter()
                    .chain(super::BUILTIN_TOOLS.iter().map(|t| t.to_string()))
                    .collect(),
            },
        ]
    }
}
