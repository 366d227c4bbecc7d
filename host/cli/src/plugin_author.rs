//! The plugin author's loop: `talon plugin new` writes a project, `build`
//! turns it into a component with its language's tools, and `dev` builds,
//! signs with a development key, installs or upgrades it in the running
//! daemon, and does it again whenever a source changes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use talon_kernel::home::Home;
use talon_runtime::scaffold::{Language, Scaffold};
use talon_runtime::{Kind, Manifest, SecretKey};

use crate::client::{Client, ClientArgs};

/// The author's commands (part of `talon plugin`).
#[derive(Debug, clap::Subcommand)]
pub enum AuthorCommand {
    /// Write a new plugin project (Rust, Python or JavaScript) from the SDK's template.
    #[command(alias = "scaffold")]
    New(NewArgs),
    /// Build a plugin project's component (the language is read from its files).
    Build {
        /// The project (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// Build, sign with a development key, install or upgrade in the running
    /// daemon (which must run with `plugins.dev_mode = true`), then again at
    /// every change of a source until Ctrl-C.
    Dev {
        /// The project (default: the current directory).
        dir: Option<PathBuf>,
        /// One round, then exit (for scripts).
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `talon plugin new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name (also its first tool's): lowercase letters, digits, '_'.
    name: String,
    /// rust, python or js.
    #[arg(long, visible_alias = "language", default_value = "rust")]
    lang: String,
    /// tool or skill.
    #[arg(long, default_value = "tool")]
    kind: String,
    /// One line about it.
    #[arg(long)]
    description: Option<String>,
    /// Directory to create (default: ./<name>).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Build against the SDK of this Talon checkout (or this SDK directory)
    /// instead of the published one.
    #[arg(long)]
    sdk_path: Option<PathBuf>,
}

/// Runs an author's command.
pub fn run(home: &Home, config: Option<&Path>, command: AuthorCommand) -> anyhow::Result<()> {
    match command {
        AuthorCommand::New(args) => new(args),
        AuthorCommand::Build { dir } => {
            let project = Project::open(&dir.unwrap_or_else(|| PathBuf::from(".")))?;
            let component = project.build()?;
            println!("built {}", component.display());
            Ok(())
        }
        AuthorCommand::Dev { dir, once, client } => {
            let project = Project::open(&dir.unwrap_or_else(|| PathBuf::from(".")))?;
            dev(home, config, &project, once, &client)
        }
    }
}

fn new(args: NewArgs) -> anyhow::Result<()> {
    let language = Language::parse(&args.lang)?;
    let kind = match args.kind.as_str() {
        "tool" => Kind::Tool,
        "skill" => Kind::Skill,
        other => bail!("--kind {other}: use tool or skill"),
    };
    // The SDK the author names, else that of the checkout this binary was
    // built from (while it is there), else the published one.
    let sdk = match args.sdk_path {
        Some(dir) => Some(language.find_sdk(&dir)?),
        None => language.checkout_sdk().inspect(|found| {
            println!(
                "using the SDK of this talon's source checkout: {} (--sdk-path chooses another)",
                found.display()
            );
        }),
    };
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let description = args
        .description
        .unwrap_or_else(|| format!("The {} plugin.", args.name));
    let files = Scaffold {
        name: args.name,
        description,
        language,
        kind,
        sdk,
    }
    .write(&dir, None)?;
    for file in files {
        println!("wrote {}", file.display());
    }
    println!(
        "next: cd {} and read README.md (build: `talon plugin build`, try it: `talon plugin dev`)",
        dir.display()
    );
    Ok(())
}

/// A plugin project on disk: its directory, language and manifest.
pub struct Project {
    dir: PathBuf,
    language: Language,
    manifest: Manifest,
}

impl Project {
    /// Reads the project in `dir`; the language is the one whose build file
    /// is there (`Cargo.toml`, `package.json`, else `app.py` or `pyproject.toml`).
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let manifest_path = dir.join("talon.toml");
        let text = std::fs::read_to_string(&manifest_path).with_context(|| {
            format!(
                "{} is not a plugin project (no talon.toml); create one with `talon plugin new`",
                dir.display()
            )
        })?;
        let manifest = Manifest::from_toml(&text)
            .with_context(|| format!("in {}", manifest_path.display()))?;
        let language = if dir.join("Cargo.toml").is_file() {
            Language::Rust
        } else if dir.join("package.json").is_file() {
            Language::Js
        } else if dir.join("app.py").is_file() || dir.join("pyproject.toml").is_file() {
            Language::Python
        } else {
            bail!(
                "{}: cannot tell the language (no Cargo.toml, package.json, app.py or pyproject.toml)",
                dir.display()
            );
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            language,
            manifest,
        })
    }

    /// Builds the component with the language's tools, their output shown
    /// as it comes, and returns the component's path.
    pub fn build(&self) -> anyhow::Result<PathBuf> {
        match self.language {
            Language::Rust => self.build_rust(),
            Language::Python => self.build_python(),
            Language::Js => self.build_js(),
        }
    }

    fn build_rust(&self) -> anyhow::Result<PathBuf> {
        // The JSON messages name the artifact wherever CARGO_TARGET_DIR puts it.
        let output = Command::new("cargo")
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run cargo: install Rust with rustup")?;
        if !output.status.success() {
            bail!(
                "cargo build failed (is the target installed? `rustup target add wasm32-wasip2`)"
            );
        }
        let component = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| {
                m["reason"] == "compiler-artifact"
                    && m["target"]["crate_types"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "cdylib"))
            })
            .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f.as_str().map(PathBuf::from))
            .rfind(|f| f.extension().is_some_and(|e| e == "wasm"));
        component
            .context("cargo built no .wasm: is the crate a cdylib (`crate-type = [\"cdylib\"]`)?")
    }

    fn build_python(&self) -> anyhow::Result<PathBuf> {
        let mut command = Command::new("componentize-py");
        command
            .args(["-d", "wit", "-w", self.manifest.kind.as_str()])
            .args(["componentize", "app", "-p", "."]);
        if let Some(sdk) = self.python_sdk_path()? {
            command.arg("-p").arg(sdk);
        }
        let out = self.output_path();
        make_parent(&self.dir.join(&out))?;
        command.arg("-o").arg(&out);
        run_tool(
            command.current_dir(&self.dir),
            "componentize-py",
            "componentize-py not found: `pip install componentize-py==0.25.1` (in the project's \
             virtual environment, activated)",
        )?;
        Ok(self.dir.join(out))
    }

    /// `[tool.talon] sdk-path` of pyproject.toml: a checkout's `talon_sdk`.
    fn python_sdk_path(&self) -> anyhow::Result<Option<PathBuf>> {
        let path = self.dir.join("pyproject.toml");
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        match table
            .get("tool")
            .and_then(|t| t.get("talon"))
            .and_then(|t| t.get("sdk-path"))
        {
            None => Ok(None),
            Some(toml::Value::String(dir)) => Ok(Some(PathBuf::from(dir))),
            Some(other) => bail!(
                "{}: [tool.talon] sdk-path must be a string, not {other}",
                path.display()
            ),
        }
    }

    fn build_js(&self) -> anyhow::Result<PathBuf> {
        if !self.dir.join("node_modules").exists() {
            run_tool(
                Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund"])
                    .current_dir(&self.dir),
                "npm install",
                "npm not found: install Node.js 20 or newer",
            )?;
        }
        run_tool(
            Command::new("npm")
                .args(["run", "build"])
                .current_dir(&self.dir),
            "npm run build",
            "npm not found: install Node.js 20 or newer",
        )?;
        let component = self.dir.join(self.output_path());
        match component.is_file() {
            true => Ok(component),
            false => bail!(
                "npm run build made no {}: its componentize step must write build/<plugin name>.wasm",
                component.display()
            ),
        }
    }

    /// Where Python and JavaScript builds put the component, relative to the project.
    fn output_path(&self) -> PathBuf {
        Path::new("build").join(format!("{}.wasm", self.manifest.name))
    }
}

fn make_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// Runs a build tool with the terminal's output streams and fails when it does.
fn run_tool(command: &mut Command, what: &str, missing: &str) -> anyhow::Result<()> {
    let status = command
        .stdin(Stdio::null())
        .status()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!("{missing}"),
            _ => anyhow::Error::new(e).context(format!("cannot run {what}")),
        })?;
    match status.success() {
        true => Ok(()),
        false => bail!("{what} failed ({status})"),
    }
}

/// The development key under the home, created at first use. It is not a
/// publisher key: a daemon accepts what it signs only in development mode,
/// or after an operator adds it to `plugins.trusted_keys` on purpose.
fn dev_key(home: &Home) -> anyhow::Result<SecretKey> {
    let path = home.root().join("keys").join("dev.key");
    if path.exists() {
        return Ok(SecretKey::read(&path)?);
    }
    let key = SecretKey::generate()?;
    make_parent(&path)?;
    crate::plugin_cmd::write_secret(&path, &key.to_file_text())?;
    eprintln!(
        "created the development key {} (id {})",
        path.display(),
        key.public().id()
    );
    Ok(key)
}

fn dev(
    home: &Home,
    config: Option<&Path>,
    project: &Project,
    once: bool,
    args: &ClientArgs,
) -> anyhow::Result<()> {
    let key = dev_key(home)?;
    let client = Client::new(home, config, args)?;
    let round = || dev_round(home, config, project, &key, &client);
    if once {
        return round();
    }
    if let Err(e) = round() {
        eprintln!("talon: {e:#}");
    }
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event.paths.iter().any(|p| is_source(p))
        {
            let _ = tx.send(());
        }
    })
    .context("cannot watch the project's files")?;
    notify::Watcher::watch(&mut watcher, &project.dir, notify::RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", project.dir.display()))?;
    eprintln!("watching {} (Ctrl-C to stop)", project.dir.display());
    while rx.recv().is_ok() {
        // An editor's save is several events: build once they stop.
        while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
        if let Err(e) = round() {
            eprintln!("talon: {e:#}");
        }
        eprintln!("watching {} (Ctrl-C to stop)", project.dir.display());
    }
    Ok(())
}

/// Whether a changed file is one the build reads, not one it writes.
fn is_source(path: &Path) -> bool {
    const OUTPUTS: &[&str] = &[
        "target",
        "build",
        "node_modules",
        ".git",
        "__pycache__",
        ".venv",
    ];
    !path.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|part| OUTPUTS.contains(&part))
    }) && !path
        .extension()
        .is_some_and(|e| e == "talon" || e == "wasm")
}

/// One round of `dev`: build, pack (the manifest re-read: it may have
/// changed), then install or upgrade.
fn dev_round(
    home: &Home,
    config: Option<&Path>,
    project: &Project,
    key: &SecretKey,
    client: &Client,
) -> anyhow::Result<()> {
    let project = Project::open(&project.dir)?;
    let component = project.build()?;
    let (manifest, bytes) = crate::plugin_cmd::pack_bytes(
        home,
        config,
        &project.dir.join("talon.toml"),
        &component,
        Some(key),
    )?;
    let upgraded =
        upgrade_installed(client, &manifest.name, &bytes, true).and_then(|view| match view {
            Some(view) => Ok(("upgraded", view)),
            None => {
                let body = serde_json::json!({
                    "package": base64::engine::general_purpose::STANDARD.encode(&bytes),
                    "grant": "all",
                });
                let view =
                    client.call_with(reqwest::Method::POST, "/api/plugins/install", Some(&body))?;
                Ok(("installed", view))
            }
        });
    let (what, view) = upgraded.map_err(|e| {
        let dev_mode = client
            .call_with(reqwest::Method::GET, "/api/plugins/doctor", None)
            .ok()
            .and_then(|doctor| doctor["dev_mode"].as_bool());
        match dev_mode {
            Some(false) => e.context(
                "the daemon does not run in development mode, so it refuses the development key: \
             on your own machine set `[plugins] dev_mode = true` in its config.toml and restart it",
            ),
            _ => e,
        }
    })?;
    let tools: Vec<&str> = view["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t.as_str()).collect())
        .unwrap_or_default();
    println!(
        "{what} {} {}: tools {}",
        manifest.name,
        manifest.version,
        tools.join(", ")
    );
    println!("granted: {}", view["permissions"]["granted"]);
    Ok(())
}

/// `talon plugin install --upgrade`: upgrades the installed plugin to the
/// package at `path` and says so; `false` when it is not installed (the
/// caller installs it, with the grants asked for).
pub(crate) fn upgrade(
    home: &Home,
    config: Option<&Path>,
    path: &Path,
    force: bool,
    args: &ClientArgs,
) -> anyhow::Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let package = talon_runtime::Package::parse(&bytes)
        .with_context(|| format!("{} refused", path.display()))?;
    let client = Client::new(home, config, args)?;
    let name = &package.manifest.name;
    let Some(view) = upgrade_installed(&client, name, &bytes, force)? else {
        return Ok(false);
    };
    println!(
        "upgraded {name} to {} with tools {}",
        view["version"].as_str().unwrap_or("?"),
        view["tools"]
    );
    println!("requested: {}", view["permissions"]["requested"]);
    println!(
        "granted:   {} (kept from the installed version)",
        view["permissions"]["granted"]
    );
    Ok(true)
}

/// Replaces the installed version of plugin `name` by the package `bytes`
/// (a lower version only with `force`), keeping its grants (narrowed to what
/// the new version requests) and settings; `None` when it is not installed.
pub(crate) fn upgrade_installed(
    client: &Client,
    name: &str,
    bytes: &[u8],
    force: bool,
) -> anyhow::Result<Option<serde_json::Value>> {
    let list = client.call_with(reqwest::Method::GET, "/api/plugins", None)?;
    let installed = list["plugins"]
        .as_array()
        .is_some_and(|plugins| plugins.iter().any(|p| p["name"] == name));
    if !installed {
        return Ok(None);
    }
    let body = serde_json::json!({
        "package": base64::engine::general_purpose::STANDARD.encode(bytes),
        "force": force,
    });
    let path = format!("/api/plugins/{name}/reload");
    Ok(Some(client.call_with(
        reqwest::Method::POST,
        &path,
        Some(&body),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_not_sources() {
        assert!(is_source(Path::new("/p/src/lib.rs")));
        assert!(is_source(Path::new("/p/talon.toml")));
        assert!(!is_source(Path::new("/p/target/release/x.wasm")));
        assert!(!is_source(Path::new("/p/node_modules/esbuild/x.js")));
        assert!(!is_source(Path::new("/p/build/plugin.bundle.js")));
        assert!(!is_source(Path::new("/p/hello-0.1.0.talon")));
    }

    #[test]
    fn detects_the_language_of_a_project() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Project::open(dir.path()).is_err());
        for (language, name) in [
            (Language::Rust, "r"),
            (Language::Python, "p"),
            (Language::Js, "j"),
        ] {
            let dir = dir.path().join(name);
            Scaffold {
                name: name.into(),
                description: "x".into(),
                language,
                kind: Kind::Tool,
                sdk: None,
            }
            .write(&dir, None)
            .unwrap();
            assert_eq!(Project::open(&dir).unwrap().language, language);
        }
    }
}
