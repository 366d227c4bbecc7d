//! New plugin projects: what `talon plugin new` and
//! `POST /api/plugins/scaffold` write.
//!
//! The templates are `sdk/<language>/template/`, compiled into the binary so
//! an installed `talon` scaffolds without the repository. A project gets the
//! SDK either from a directory the author names (a checkout's `sdk/<language>`)
//! or from where it is published: the Talon git repository for Rust (cargo
//! fetches it), the `talon-sdk` package names of PyPI and npm for Python and
//! JavaScript. Python and JavaScript projects carry their own copy of the WIT
//! contract (`wit/`), which their build tools read.

use std::path::{Path, PathBuf};

use crate::manifest::{Kind, valid_name};

/// The repository the Rust SDK is fetched from by default (the workspace's
/// `repository`): cargo clones it and builds `talon-sdk` from `sdk/rust`.
pub const SDK_GIT_URL: &str = env!("CARGO_PKG_REPOSITORY");

/// The languages a project can be scaffolded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust with `talon-sdk`, built by cargo.
    Rust,
    /// Python with `talon_sdk`, built by componentize-py.
    Python,
    /// JavaScript with `talon-sdk`, bundled by esbuild and built by componentize-js.
    Js,
}

impl Language {
    /// Parses `rust`, `python` or `js` (and the usual spellings of each).
    pub fn parse(text: &str) -> Result<Self, ScaffoldError> {
        match text.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Self::Rust),
            "python" | "py" => Ok(Self::Python),
            "javascript" | "js" => Ok(Self::Js),
            other => Err(ScaffoldError::Invalid(format!(
                "unknown language {other:?}: use rust, python or js"
            ))),
        }
    }

    /// The lowercase name, as `--lang` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Js => "js",
        }
    }

    /// The SDK's directory inside a Talon checkout.
    pub fn sdk_subdir(self) -> &'static str {
        match self {
            Self::Rust => "sdk/rust",
            Self::Python => "sdk/python",
            Self::Js => "sdk/js",
        }
    }

    /// A file only this language's SDK directory has.
    fn sdk_marker(self) -> &'static str {
        match self {
            Self::Rust => "src/tools.rs",
            Self::Python => "talon_sdk/__init__.py",
            Self::Js => "talon-sdk.js",
        }
    }

    /// The SDK of the checkout this binary was built from, while that
    /// checkout is still there (a `talon` built or `cargo install`ed from
    /// source); `None` elsewhere, where projects use the published SDK.
    pub fn checkout_sdk(self) -> Option<PathBuf> {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        self.find_sdk(root).ok()
    }

    /// Finds this language's SDK from what an author gave: a Talon checkout
    /// (its `sdk/<language>` is used) or the SDK directory itself. The result
    /// is absolute, since the project's build files outlive the current
    /// directory.
    pub fn find_sdk(self, given: &Path) -> Result<PathBuf, ScaffoldError> {
        let candidates = [given.join(self.sdk_subdir()), given.to_path_buf()];
        let found = candidates
            .into_iter()
            .find(|dir| dir.join(self.sdk_marker()).is_file())
            .ok_or_else(|| {
                ScaffoldError::Invalid(format!(
                    "{} is neither a Talon checkout nor its {} SDK (no {}/{})",
                    given.display(),
                    self.as_str(),
                    self.sdk_subdir(),
                    self.sdk_marker()
                ))
            })?;
        let found = found.canonicalize().map_err(|source| ScaffoldError::Io {
            path: found.display().to_string(),
            source,
        })?;
        match found.to_str() {
            // The path is written into TOML and JSON strings: keep it plain.
            Some(text) if !text.contains(['"', '\\']) && !text.chars().any(char::is_control) => {
                Ok(found)
            }
            _ => Err(ScaffoldError::Invalid(format!(
                "{}: the SDK path must be UTF-8 without quotes, backslashes or control characters",
                found.display()
            ))),
        }
    }
}

/// Why a project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name, language, kind or SDK path is not acceptable.
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
    /// The language of the project.
    pub language: Language,
    /// Tool or skill.
    pub kind: Kind,
    /// The SDK directory the project builds against (from
    /// [`Language::find_sdk`]); `None` for the published SDK.
    pub sdk: Option<PathBuf>,
}

/// The WIT contract, copied into Python and JavaScript projects.
const WIT: &str = include_str!("../../../wit/talon-plugin-0.1.0/plugin.wit");

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

const PYTHON_FILES: &[(&str, &str)] = &[
    (
        "app.py",
        include_str!("../../../sdk/python/template/app.py"),
    ),
    (
        "test_app.py",
        include_str!("../../../sdk/python/template/test_app.py"),
    ),
    (
        "talon.toml",
        include_str!("../../../sdk/python/template/talon.toml"),
    ),
    (
        "pyproject.toml",
        include_str!("../../../sdk/python/template/pyproject.toml"),
    ),
    (
        "README.md",
        include_str!("../../../sdk/python/template/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../sdk/python/template/.gitignore"),
    ),
    ("wit/plugin.wit", WIT),
];

const JS_FILES: &[(&str, &str)] = &[
    (
        "package.json",
        include_str!("../../../sdk/js/template/package.json"),
    ),
    (
        "src/plugin.js",
        include_str!("../../../sdk/js/template/src/plugin.js"),
    ),
    (
        "src/tool.js",
        include_str!("../../../sdk/js/template/src/tool.js"),
    ),
    (
        "test/tool.test.js",
        include_str!("../../../sdk/js/template/test/tool.test.js"),
    ),
    (
        "talon.toml",
        include_str!("../../../sdk/js/template/talon.toml"),
    ),
    (
        "README.md",
        include_str!("../../../sdk/js/template/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../sdk/js/template/.gitignore"),
    ),
    ("wit/plugin.wit", WIT),
];

/// The placeholder instructions of a new skill, in every language.
const SKILL_TEXT: &str = "Describe here when an agent with this skill should use its tools.";

impl Scaffold {
    /// Writes the project into `dir` (created; it must not hold files yet)
    /// and returns the files written. `instructions` replaces a skill's
    /// placeholder instructions.
    pub fn write(
        &self,
        dir: &Path,
        instructions: Option<&str>,
    ) -> Result<Vec<PathBuf>, ScaffoldError> {
        if !valid_name(&self.name) || self.name.contains('-') {
            return Err(ScaffoldError::Invalid(format!(
                "name {:?}: use lowercase letters, digits and '_' (it is also the tool's name)",
                self.name
            )));
        }
        if self.description.contains(['"', '\\', '\n', '\r']) {
            return Err(ScaffoldError::Invalid(
                "description must be one line without double quotes or backslashes".into(),
            ));
        }
        match (self.kind, instructions) {
            (Kind::Tool, None) | (Kind::Skill, _) => {}
            (Kind::Tool, Some(_)) => {
                return Err(ScaffoldError::Invalid(
                    "instructions are for skills (kind skill) only".into(),
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
        let fill = self.placeholders(instructions.unwrap_or(SKILL_TEXT));
        let templates = match self.language {
            Language::Rust => RUST_FILES,
            Language::Python => PYTHON_FILES,
            Language::Js => JS_FILES,
        };
        let mut written = Vec::new();
        for (relative, template) in templates {
            let mut text = template.to_string();
            for (placeholder, value) in &fill {
                text = text.replace(placeholder, value);
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

    /// What each placeholder of the templates becomes for this project.
    fn placeholders(&self, instructions: &str) -> Vec<(&'static str, String)> {
        let skill = self.kind == Kind::Skill;
        let sdk = self.sdk.as_ref().map(|dir| dir.display().to_string());
        let (dependency, note) = match (self.language, &sdk) {
            (Language::Rust, Some(dir)) => (
                format!("talon-sdk = {{ path = \"{dir}\" }}"),
                format!("`Cargo.toml` takes `talon-sdk` from `{dir}`."),
            ),
            (Language::Rust, None) => (
                format!(
                    "# From the Talon repository; once it is on crates.io: talon-sdk = \"0.1\"\n\
                     talon-sdk = {{ git = \"{SDK_GIT_URL}\" }}"
                ),
                format!(
                    "`Cargo.toml` takes `talon-sdk` from the Talon repository ({SDK_GIT_URL}); \
                     cargo fetches it at the first build. To build against a checkout instead, write \
                     `talon-sdk = {{ path = \"/path/to/talon/sdk/rust\" }}`."
                ),
            ),
            (Language::Js, Some(dir)) => (
                format!("file:{dir}"),
                format!("package.json takes `talon-sdk` from `{dir}`."),
            ),
            (Language::Js, None) => (
                "0.1.0".into(),
                "package.json asks npm for `talon-sdk` 0.1.0. Until it is published there, \
                 install it from a checkout of the Talon repository first: \
                 `npm install /path/to/talon/sdk/js`."
                    .into(),
            ),
            (Language::Python, _) => (String::new(), String::new()),
        };
        let (setting, install, python_path) = match &sdk {
            Some(dir) => (
                format!("# talon_sdk comes from here, not from the installed talon-sdk.\nsdk-path = \"{dir}\""),
                format!("# talon_sdk comes from {dir} (pyproject.toml, [tool.talon] sdk-path)"),
                format!("-p {dir} "),
            ),
            None => (
                "# sdk-path = \"/path/to/talon/sdk/python\"   # a checkout's SDK instead of the installed talon-sdk".into(),
                "pip install talon-sdk==0.1.0             # once it is published on PyPI; until then:\n\
                 pip install /path/to/talon/sdk/python    # from a checkout of the Talon repository"
                    .into(),
                String::new(),
            ),
        };
        let skill_export = match (skill, self.language) {
            (false, _) | (true, Language::Rust) => String::new(),
            (true, Language::Python) => format!(
                "\n# A skill's instructions: prompt text added to every agent that has the skill.\n\
                 Instructions = plugin.instructions_export({})\n",
                json_string(instructions)
            ),
            (true, Language::Js) => format!(
                "\n// A skill's instructions: prompt text added to every agent that has the skill.\n\
                 export const instructions = {{ instructions: () => {} }};\n",
                json_string(instructions)
            ),
        };
        let mut fill = vec![
            ("{{name}}", self.name.clone()),
            ("{{description}}", self.description.clone()),
            ("{{kind}}", self.kind.as_str().to_string()),
            ("{{sdk_dependency}}", dependency),
            ("{{sdk_note}}", note),
            ("{{sdk_setting}}", setting),
            ("{{sdk_install}}", install),
            ("{{sdk_python_path}}", python_path),
            ("{{skill_export}}\n", skill_export),
        ];
        if skill {
            fill.push(("kind = \"tool\"", "kind = \"skill\"".into()));
            // `{:?}` of a str is a valid Rust string literal.
            fill.push((
                "talon_sdk::export_plugin!(tools);",
                format!("talon_sdk::export_skill!(tools, {instructions:?});"),
            ));
        }
        fill
    }
}

/// `text` as a JSON string literal, which Python and JavaScript read as the
/// same string.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaffold(language: Language, kind: Kind, sdk: Option<&str>) -> Scaffold {
        Scaffold {
            name: "hello_tool".into(),
            description: "Says hello.".into(),
            language,
            kind,
            sdk: sdk.map(PathBuf::from),
        }
    }

    fn read(dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).unwrap()
    }

    #[test]
    fn writes_every_language_without_leftover_placeholders() {
        for language in [Language::Rust, Language::Python, Language::Js] {
            for kind in [Kind::Tool, Kind::Skill] {
                for sdk in [None, Some("/opt/talon/sdk/x")] {
                    let dir = tempfile::tempdir().unwrap();
                    let files = scaffold(language, kind, sdk)
                        .write(dir.path(), None)
                        .unwrap();
                    for file in &files {
                        let text = std::fs::read_to_string(file).unwrap();
                        assert!(
                            !text.contains("{{"),
                            "{} keeps a placeholder",
                            file.display()
                        );
                    }
                    let manifest =
                        crate::Manifest::from_toml(&read(dir.path(), "talon.toml")).unwrap();
                    assert_eq!(
                        (manifest.name.as_str(), manifest.kind),
                        ("hello_tool", kind)
                    );
                    let everything: String = files
                        .iter()
                        .map(|f| std::fs::read_to_string(f).unwrap())
                        .collect();
                    assert_eq!(
                        everything.contains("/opt/talon/sdk/x"),
                        sdk.is_some(),
                        "{language:?}"
                    );
                    let has_instructions = everything.contains(SKILL_TEXT);
                    assert_eq!(
                        has_instructions,
                        kind == Kind::Skill,
                        "{language:?} {kind:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_sdk_comes_from_git_or_the_given_path() {
        let dir = tempfile::tempdir().unwrap();
        scaffold(Language::Rust, Kind::Tool, None)
            .write(dir.path(), None)
            .unwrap();
        let cargo = read(dir.path(), "Cargo.toml");
        assert!(cargo.contains(&format!("talon-sdk = {{ git = \"{SDK_GIT_URL}\" }}")));
        let dir = tempfile::tempdir().unwrap();
        scaffold(Language::Js, Kind::Tool, Some("/opt/talon/sdk/js"))
            .write(dir.path(), None)
            .unwrap();
        let package: serde_json::Value =
            serde_json::from_str(&read(dir.path(), "package.json")).unwrap();
        assert_eq!(
            package["dependencies"]["talon-sdk"],
            "file:/opt/talon/sdk/js"
        );
        assert!(read(dir.path(), "wit/plugin.wit").contains("world tool"));
    }

    #[test]
    fn instructions_become_string_literals() {
        let hostile = "Use \"quotes\" and \\ and\nnew lines */ `x`";
        for (language, file) in [
            (Language::Rust, "src/lib.rs"),
            (Language::Python, "app.py"),
            (Language::Js, "src/plugin.js"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            scaffold(language, Kind::Skill, None)
                .write(dir.path(), Some(hostile))
                .unwrap();
            let source = read(dir.path(), file);
            assert!(!source.contains(hostile), "{language:?} wrote the text raw");
            assert!(
                source.contains(r#"Use \"quotes\" and \\ and\nnew lines"#),
                "{language:?}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(
            scaffold(Language::Rust, Kind::Tool, None)
                .write(dir.path(), Some("x"))
                .is_err()
        );
    }

    #[test]
    fn refuses_bad_names_descriptions_and_existing_projects() {
        let dir = tempfile::tempdir().unwrap();
        let named = |name: &str| Scaffold {
            name: name.into(),
            ..scaffold(Language::Python, Kind::Tool, None)
        };
        assert!(
            named("Bad Name")
                .write(&dir.path().join("a"), None)
                .is_err()
        );
        assert!(
            named("../escape")
                .write(&dir.path().join("b"), None)
                .is_err()
        );
        let quoted = Scaffold {
            description: "say \"hi\"".into(),
            ..named("ok_name")
        };
        assert!(quoted.write(&dir.path().join("c"), None).is_err());
        assert!(named("ok_name").write(&dir.path().join("d"), None).is_ok());
        assert!(matches!(
            named("ok_name").write(&dir.path().join("d"), None),
            Err(ScaffoldError::Exists(_))
        ));
        assert!(Language::parse("cobol").is_err());
        assert_eq!(Language::parse("JavaScript").unwrap(), Language::Js);
    }

    #[test]
    fn finds_the_sdk_in_a_checkout_or_as_given() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for language in [Language::Rust, Language::Python, Language::Js] {
            let from_root = language.find_sdk(&checkout).unwrap();
            assert!(from_root.ends_with(language.sdk_subdir()) && from_root.is_absolute());
            assert_eq!(language.find_sdk(&from_root).unwrap(), from_root);
        }
        let err = Language::Js
            .find_sdk(Path::new("/nonexistent"))
            .unwrap_err();
        assert!(err.to_string().contains("neither a Talon checkout"));
    }
}
