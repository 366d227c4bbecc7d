//! New plugin projects: what `talon plugin scaffold` and
//! `POST /api/plugins/scaffold` write.
//!
//! The Rust template is `sdk/rust/template/`, compiled into the binary so an
//! installed `talon` can scaffold without the repository.

use std::path::{Path, PathBuf};

use crate::manifest::{Kind, valid_name};

/// The languages a project can be scaffolded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust with `talon-sdk`.
    Rust,
    /// Python with `talon_sdk` and componentize-py.
    Python,
}

impl Language {
    /// Parses `rust` or `python`.
    pub fn parse(text: &str) -> Result<Self, ScaffoldError> {
        match text.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Self::Rust),
            "python" | "py" => Ok(Self::Python),
            "javascript" | "js" => Err(ScaffoldError::Invalid(
                "there is no JavaScript template yet: copy examples/plugins/js and follow sdk/js/GUIDE.md".into(),
            )),
            other => Err(ScaffoldError::Invalid(format!("unknown language {other:?}: use rust or python"))),
        }
    }
}

/// Why a project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name, language or kind is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The directory exists and is not empty.
    #[error("{0} already exists and is not empty")]
    Exists(String),
    /// Writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct Scaffold {
    /// The plugin's name (also its first tool's).
    pub name: String,
    /// One line about it.
    pub description: String,
    /// Rust or Python.
    pub language: Language,
    /// Tool or skill.
    pub kind: Kind,
    /// Where `talon-sdk` (Rust) or `talon_sdk` (Python) lives; written into
    /// the project's build files.
    pub sdk_dir: PathBuf,
}

const RUST_FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../sdk/rust/template/Cargo.toml"),
    ),
    (
        "talon.toml",
        include_str!("../../../sdk/rust/template/talon.toml"),
    ),
    (
        "README.md",
        include_str!("../../../sdk/rust/template/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../sdk/rust/template/.gitignore"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../sdk/rust/template/src/lib.rs"),
    ),
];

const PYTHON_APP: &str = r#""""{{description}}"""

from typing import Annotated

from talon_sdk import Plugin, ToolError, log

plugin = Plugin()


@plugin.tool
def {{name}}(
    name: Annotated[str, "Who or what to greet."],
    excitement: Annotated[int, "How many exclamation marks to add (0 to 5)."] = 1,
) -> dict:
    """{{description}}"""
    if not name.strip():
        raise ToolError.invalid_arguments("name must not be empty")
    if not 0 <= excitement <= 5:
        raise ToolError.invalid_arguments("excitement must be between 0 and 5")
    log.info(f"greeting {name}")
    return {"message": f"Hello, {name}" + "!" * excitement}


# componentize-py instantiates the class named after the exported interface.
Tools = plugin.tools_export()
"#;

const PYTHON_MANIFEST: &str = r#"# The plugin's manifest. `talon plugin pack` puts it in the package beside the
# component and signs both; the tools and their schemas come from the component.
name = "{{name}}"
version = "0.1.0"
kind = "tool"
wit = "0.1.0"
description = "{{description}}"

# What the plugin may use, granted (or not) by the operator at install.
[permissions]

# Ceilings for one call; the host's own ceilings apply too. CPython needs more
# fuel and memory than a Rust plugin.
[limits]
fuel = 5_000_000_000
memory_mb = 128
timeout_ms = 5_000
"#;

const PYTHON_README: &str = r#"# {{name}}

{{description}}

A Talon tool plugin written in Python with `talon_sdk` and componentize-py.

```sh
pip install componentize-py==0.25.1
componentize-py -d {{wit_dir}} -w tool componentize app -p . -p {{sdk_dir}} -o {{name}}.wasm
talon plugin pack talon.toml {{name}}.wasm
talon plugin run {{name}}-0.1.0.talon {{name}} '{"name": "world"}'
```

The guide is `sdk/python/GUIDE.md` in the Talon repository.
"#;

impl Scaffold {
    /// Writes the project into `dir` (created; it must not hold files yet)
    /// and returns the files written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
        if !valid_name(&self.name) || self.name.contains('-') {
            return Err(ScaffoldError::Invalid(format!(
                "name {:?}: use lowercase letters, digits and '_' (it is also the tool's name)",
                self.name
            )));
        }
        if self.description.contains(['"', '\\', '\n']) {
            return Err(ScaffoldError::Invalid(
                "description must be one line without quotes or backslashes".into(),
            ));
        }
        match (self.kind, self.language) {
            (Kind::Tool, _) | (Kind::Skill, Language::Rust) => {}
            (Kind::Skill, Language::Python) => {
                return Err(ScaffoldError::Invalid(
                    "the Python template is a tool; for a skill add the `instructions` export as sdk/python/GUIDE.md shows"
                        .into(),
                ));
            }
            _ => return Err(ScaffoldError::Invalid("kind must be tool or skill".into())),
        }
        if dir.exists()
            && std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(ScaffoldError::Exists(dir.display().to_string()));
        }
        let wit_dir = self.sdk_dir.join("../../wit/talon-plugin-0.1.0");
        let fill = |text: &str| {
            text.replace("{{name}}", &self.name)
                .replace("{{description}}", &self.description)
                .replace("{{sdk_path}}", &self.sdk_dir.display().to_string())
                .replace("{{sdk_dir}}", &self.sdk_dir.display().to_string())
                .replace("{{wit_dir}}", &wit_dir.display().to_string())
        };
        let files: Vec<(&str, String)> = match self.language {
            Language::Rust => RUST_FILES
                .iter()
                .map(|(path, text)| (*path, fill(text)))
                .collect(),
            Language::Python => vec![
                ("app.py", fill(PYTHON_APP)),
                ("talon.toml", fill(PYTHON_MANIFEST)),
                ("README.md", fill(PYTHON_README)),
            ],
        };
        let mut written = Vec::new();
        for (relative, mut text) in files {
            if self.kind == Kind::Skill {
                text = make_skill(relative, text);
            }
            let path = dir.join(relative);
            let io = |source| ScaffoldError::Io {
                path: path.display().to_string(),
                source,
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&path, text).map_err(io)?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Turns the tool template into a skill: the manifest's kind and, in Rust,
/// the export macro with instructions.
fn make_skill(relative: &str, text: String) -> String {
    match relative {
        "talon.toml" => text.replace("kind = \"tool\"", "kind = \"skill\""),
        "src/lib.rs" => text.replace(
            "talon_sdk::export_plugin!(tools);",
            "talon_sdk::export_skill!(tools, \"Describe here when an agent with this skill should use its tools.\");",
        ),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_rust_project_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("hello_tool");
        let scaffold = Scaffold {
            name: "hello_tool".into(),
            description: "Says hello.".into(),
            language: Language::Rust,
            kind: Kind::Skill,
            sdk_dir: PathBuf::from("/opt/talon/sdk/rust"),
        };
        let files = scaffold.write(&target).unwrap();
        assert_eq!(files.len(), RUST_FILES.len());
        let manifest = std::fs::read_to_string(target.join("talon.toml")).unwrap();
        let parsed = crate::Manifest::from_toml(&manifest).unwrap();
        assert_eq!(
            (parsed.name.as_str(), parsed.kind),
            ("hello_tool", Kind::Skill)
        );
        let lib = std::fs::read_to_string(target.join("src/lib.rs")).unwrap();
        assert!(lib.contains("export_skill!") && !lib.contains("{{"));
        let cargo = std::fs::read_to_string(target.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("/opt/talon/sdk/rust"));
        assert!(matches!(
            scaffold.write(&target),
            Err(ScaffoldError::Exists(_))
        ));
    }

    #[test]
    fn refuses_bad_names_and_languages() {
        let scaffold = |name: &str| Scaffold {
            name: name.into(),
            description: "x".into(),
            language: Language::Python,
            kind: Kind::Tool,
            sdk_dir: PathBuf::from("sdk/python"),
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(scaffold("Bad Name").write(&dir.path().join("a")).is_err());
        assert!(scaffold("../escape").write(&dir.path().join("b")).is_err());
        assert!(scaffold("ok_name").write(&dir.path().join("c")).is_ok());
        assert!(
            Language::parse("js")
                .unwrap_err()
                .to_string()
                .contains("sdk/js/GUIDE.md")
        );
        assert!(Language::parse("cobol").is_err());
    }
}
