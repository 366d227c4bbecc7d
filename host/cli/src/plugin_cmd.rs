//! `talon plugin ...`: the author's commands (keygen, pack, verify, run work
//! without a daemon; new, build and dev are in `plugin_author`) and the
//! operator's (install, list, remove talk to the running daemon).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use talon_kernel::config::Config;
use talon_kernel::home::Home;
use talon_runtime::{
    CallContext, Manifest, Package, Permissions, Runtime, RuntimeConfig, SecretKey, TrustStore,
};

use crate::client::{Client, ClientArgs};
use crate::progress::Spinner;

/// Plugin commands.
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Create a publisher key pair for signing packages.
    Keygen {
        /// Where to write the secret key (the public key goes beside it, `.pub`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    #[command(flatten)]
    Author(crate::plugin_author::AuthorCommand),
    /// Build a signed package from a manifest and a component.
    Pack {
        /// The manifest (talon.toml).
        manifest: PathBuf,
        /// The component (.wasm).
        component: PathBuf,
        /// Secret key to sign with (default: <home>/keys/publisher.key).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Build an unsigned package (loads only in development mode).
        #[arg(long, conflicts_with = "key")]
        unsigned: bool,
        /// Output file (default: ./<name>-<version>.talon).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Check a package's integrity and signature, and whether this host trusts it.
    Verify {
        /// The package file.
        package: PathBuf,
    },
    /// Call a tool of a package locally, without the daemon. The package
    /// must be trusted like the daemon requires (or pass --dev), and gets
    /// only what is granted: by default nothing, not even environment variables.
    Run {
        /// The package file.
        package: PathBuf,
        /// The tool to call.
        tool: String,
        /// Its arguments, as a JSON object.
        #[arg(default_value = "{}")]
        arguments: String,
        /// Directory the plugin sees as the workspace (default: a new private one).
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Grant everything the manifest requests.
        #[arg(long, conflicts_with = "grant")]
        grant_all: bool,
        /// Grant exactly this, as JSON: {"network": [...], "env": [...], ...}.
        #[arg(long)]
        grant: Option<String>,
        /// Run an unsigned package, or one signed by a key not in plugins.trusted_keys.
        #[arg(long)]
        dev: bool,
    },
    /// Install a package into the running daemon.
    Install {
        /// The package file.
        package: PathBuf,
        /// Grant everything the manifest requests.
        #[arg(long, conflicts_with = "grant")]
        grant_all: bool,
        /// Grant exactly this, as JSON: {"network": [...], "filesystem": "workspace", ...}.
        #[arg(long)]
        grant: Option<String>,
        /// A setting the plugin reads, as key=value (repeatable).
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// If the plugin is installed, replace it by this version (same or
        /// newer), keeping its grants and settings; else install it.
        #[arg(long)]
        upgrade: bool,
        /// With --upgrade: accept an older version too.
        #[arg(long, requires = "upgrade")]
        force: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Grant an installed plugin more of what its manifest requests.
    Grant(crate::plugin_grants::ChangeArgs),
    /// Take back part or all of what an installed plugin is granted; the
    /// next call runs without it.
    Revoke(crate::plugin_grants::ChangeArgs),
    /// List the daemon's installed plugins.
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Uninstall a plugin from the daemon.
    Remove {
        /// The plugin's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Install again a bundled plugin (file_read, web_fetch, ...) that was
    /// removed, granted what its manifest requests, as on a first start.
    Restore {
        /// The bundled plugin's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a plugin command.
pub fn run(home: &Home, config: Option<&Path>, command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Keygen { out, force } => keygen(home, out, force),
        PluginCommand::Author(command) => crate::plugin_author::run(home, config, command),
        PluginCommand::Pack {
            manifest,
            component,
            key,
            unsigned,
            out,
        } => pack(home, config, &manifest, &component, key, unsigned, out),
        PluginCommand::Verify { package } => verify(home, config, &package),
        PluginCommand::Run {
            package,
            tool,
            arguments,
            workspace,
            grant_all,
            grant,
            dev,
        } => {
            let grant = match (grant_all, grant) {
                (true, _) => LocalGrant::All,
                (false, Some(json)) => LocalGrant::Exactly(
                    serde_json::from_str(&json)
                        .context("--grant must be a JSON object of permissions")?,
                ),
                (false, None) => LocalGrant::Nothing,
            };
            run_tool(
                home, config, &package, &tool, &arguments, workspace, grant, dev,
            )
        }
        PluginCommand::Install {
            package,
            grant_all,
            grant,
            settings,
            upgrade,
            force,
            client,
        } => {
            if upgrade && crate::plugin_author::upgrade(home, config, &package, force, &client)? {
                return Ok(());
            }
            install(home, config, &package, grant_all, grant, settings, &client)
        }
        PluginCommand::Grant(args) => crate::plugin_grants::change(
            home,
            config,
            &args,
            crate::plugin_grants::Direction::Grant,
        ),
        PluginCommand::Revoke(args) => crate::plugin_grants::change(
            home,
            config,
            &args,
            crate::plugin_grants::Direction::Revoke,
        ),
        PluginCommand::List { json, client } => list(home, config, &client, json),
        PluginCommand::Remove { name, client } => remove(home, config, &name, &client),
        PluginCommand::Restore { name, client } => restore(home, config, &name, &client),
    }
}

/// `talon plugin remove`: through the running daemon, or, when none runs,
/// directly in the data directory, so a plugin that keeps the daemon from
/// working can still be removed.
fn remove(home: &Home, config: Option<&Path>, name: &str, args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(home, config, args)?;
    if client.daemon_is_running() {
        let body = serde_json::json!({ "name": name });
        let answer =
            client.call_with(reqwest::Method::POST, "/api/plugins/uninstall", Some(&body))?;
        println!("uninstalled {name}");
        if answer["source"] == "bundled" {
            print_restore_hint(name);
        }
        return Ok(());
    }
    let kernel = talon_kernel::Kernel::boot(
        home.clone(),
        config.map(Path::to_path_buf),
        talon_kernel::kernel::Overrides::default(),
    )
    .context("cannot open the data directory (is another talon using it?)")?;
    let source = async_runtime()?.block_on(kernel.plugins().uninstall_offline(name))?;
    println!(
        "uninstalled {name} (the daemon is not running; removed from {})",
        home.root().display()
    );
    if source == talon_kernel::plugins::Origin::Bundled {
        print_restore_hint(name);
    }
    Ok(())
}

/// A removed bundled plugin stays removed across restarts: say how to undo it.
fn print_restore_hint(name: &str) {
    println!("it ships with talon and stays removed; `talon plugin restore {name}` brings it back");
}

/// `talon plugin restore`: the daemon installs its bundled copy again.
fn restore(
    home: &Home,
    config: Option<&Path>,
    name: &str,
    args: &ClientArgs,
) -> anyhow::Result<()> {
    let client = Client::new(home, config, args)?;
    let path = format!("/api/plugins/{}/restore", crate::client::path_segment(name));
    let view = client.call_with(reqwest::Method::POST, &path, None)?;
    println!(
        "restored {} {} with tools {}",
        view["name"].as_str().unwrap_or(name),
        view["version"].as_str().unwrap_or("?"),
        view["tools"]
    );
    let granted: Permissions = serde_json::from_value(view["permissions"]["granted"].clone())
        .context("the daemon's answer is unreadable")?;
    println!("granted:\n{}", crate::plugin_grants::describe(&granted));
    Ok(())
}

fn default_key(home: &Home) -> PathBuf {
    home.root().join("keys").join("publisher.key")
}

fn load_config(home: &Home, config: Option<&Path>) -> anyhow::Result<Config> {
    let path = config
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home.config_file());
    match path.exists() {
        true => Config::load(&path).with_context(|| format!("cannot read {}", path.display())),
        false => Ok(Config::default()),
    }
}

fn keygen(home: &Home, out: Option<PathBuf>, force: bool) -> anyhow::Result<()> {
    let path = out.unwrap_or_else(|| default_key(home));
    if path.exists() && !force {
        bail!(
            "{} exists; pass --force to replace it (packages signed with it will no longer match)",
            path.display()
        );
    }
    let key = SecretKey::generate()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_secret(&path, &key.to_file_text())?;
    let public = key.public();
    let public_path = path.with_extension("pub");
    std::fs::write(&public_path, format!("{}\n", public.to_hex()))
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    println!("secret key: {}", path.display());
    println!("public key: {} (id {})", public.to_hex(), public.id());
    println!("operators trust it with:");
    println!(
        "  plugins.trusted_keys = [\"{}\"]   (config.toml, or POST /api/config/set)",
        public.to_hex()
    );
    Ok(())
}

/// Writes a secret key file readable by its owner only.
#[cfg(unix)]
pub(crate) fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Writes a secret key file.
#[cfg(not(unix))]
pub(crate) fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// A runtime for local commands, with the host's ceilings and compiled
/// component cache, so a later install by the daemon reuses the compile.
fn local_runtime(home: &Home, config: &Config) -> anyhow::Result<Runtime> {
    // The daemon's ceilings, so a package behaves here as it will there.
    Ok(Runtime::new(RuntimeConfig {
        cache_dir: Some(home.component_cache_dir()),
        ceilings: talon_kernel::plugins::ceilings(config),
        max_instances: config.plugins.max_instances.max(1),
        retention: talon_kernel::plugins::retention(config),
        // A command ends before a background compile would: Cranelift only
        // (packing caches its build for the daemon anyway).
        baseline: talon_runtime::Baseline::Off,
    })?)
}

fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn pack(
    home: &Home,
    config: Option<&Path>,
    manifest_path: &Path,
    component_path: &Path,
    key_path: Option<PathBuf>,
    unsigned: bool,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let key = match (unsigned, key_path) {
        (true, _) => None,
        (false, Some(path)) => Some(SecretKey::read(&path)?),
        (false, None) => {
            let path = default_key(home);
            if !path.exists() {
                bail!(
                    "no signing key at {}: create one with `talon plugin keygen`, pass --key, \
                     or pass --unsigned for a development package",
                    path.display()
                );
            }
            Some(SecretKey::read(&path)?)
        }
    };
    let (manifest, bytes) = pack_bytes(home, config, manifest_path, component_path, key.as_ref())?;
    let out = out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-{}.{}",
            manifest.name,
            manifest.version,
            talon_runtime::package::EXTENSION
        ))
    });
    std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    let tools: Vec<&str> = manifest.tools.iter().map(|t| t.name.as_str()).collect();
    println!(
        "packed {} {} ({}) with tools {}",
        manifest.name,
        manifest.version,
        manifest.kind.as_str(),
        tools.join(", ")
    );
    match &key {
        Some(key) => println!("signed with key {}", key.public().id()),
        None => println!("unsigned: it loads only where plugins.dev_mode = true"),
    }
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}

/// A package of the manifest and component, signed with `key`: the manifest
/// completed with the tools the component describes (which compiles it, into
/// the home's cache that the daemon reuses).
pub(crate) fn pack_bytes(
    home: &Home,
    config: Option<&Path>,
    manifest_path: &Path,
    component_path: &Path,
    key: Option<&SecretKey>,
) -> anyhow::Result<(Manifest, Vec<u8>)> {
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest =
        Manifest::from_toml(&text).with_context(|| format!("in {}", manifest_path.display()))?;
    let component = Arc::new(
        std::fs::read(component_path)
            .with_context(|| format!("cannot read {}", component_path.display()))?,
    );
    let config = load_config(home, config)?;
    let runtime = local_runtime(home, &config)?;
    let compiling = Spinner::start(format!("{}: compiling the component", manifest.name));
    let manifest =
        async_runtime()?.block_on(runtime.complete_manifest(manifest, component.clone()))?;
    drop(compiling);
    let bytes = Package::build(&manifest, &component, key)?;
    Ok((manifest, bytes))
}

fn read_package(path: &Path) -> anyhow::Result<Package> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Package::parse(&bytes).with_context(|| format!("{} refused", path.display()))
}

fn verify(home: &Home, config: Option<&Path>, path: &Path) -> anyhow::Result<()> {
    let package = read_package(path)?;
    let m = &package.manifest;
    println!(
        "{} {} ({}), wit {}",
        m.name,
        m.version,
        m.kind.as_str(),
        m.wit
    );
    println!("digest: {}", package.digest);
    println!(
        "tools: {}",
        m.tools
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("requests: {}", serde_json::to_string(&m.permissions)?);
    let config = load_config(home, config)?;
    let trust = TrustStore::from_config(&config.plugins.trusted_keys)?;
    match package.signer() {
        Some(key) => {
            println!("signature: valid, key {} ({})", key.id(), key.to_hex());
            match trust.trusts(&key) {
                true => println!("trust: the key is in plugins.trusted_keys"),
                false => println!(
                    "trust: the key is NOT in plugins.trusted_keys; this host refuses it unless dev_mode is on"
                ),
            }
        }
        None => println!("signature: none; this host refuses it unless dev_mode is on"),
    }
    Ok(())
}

/// What `talon plugin run` grants the package.
enum LocalGrant {
    /// Nothing: no files but the workspace, no hosts, no variables.
    Nothing,
    /// Everything the manifest requests.
    All,
    /// Exactly this, which must be within what the manifest requests.
    Exactly(Permissions),
}

#[allow(clippy::too_many_arguments)]
fn run_tool(
    home: &Home,
    config: Option<&Path>,
    path: &Path,
    tool: &str,
    arguments: &str,
    workspace: Option<PathBuf>,
    grant: LocalGrant,
    dev: bool,
) -> anyhow::Result<()> {
    let package = read_package(path)?;
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(arguments)
        .context("the arguments must be a JSON object")?;
    let config = load_config(home, config)?;
    // The same trust as the daemon's: a package that would not install does
    // not run here either, unless the author says it is theirs to try.
    let trust = TrustStore::from_config(&config.plugins.trusted_keys)?;
    if let Err(e) = package.check_trust(&trust, config.plugins.dev_mode || dev) {
        bail!("{e}; to run it anyway on this machine, pass --dev");
    }
    let requested = &package.manifest.permissions;
    let granted = match grant {
        LocalGrant::Nothing => Permissions::default(),
        LocalGrant::All => requested.clone(),
        LocalGrant::Exactly(granted) => {
            granted.validate().map_err(anyhow::Error::msg)?;
            if let Some(extra) = granted.first_not_in(requested) {
                bail!("cannot grant {extra}: the manifest does not request it");
            }
            granted
        }
    };
    let runtime = local_runtime(home, &config)?;
    // A private directory of our own (mode 0700, an unpredictable name):
    // a path someone else could plant a link at would become the workspace.
    let scratch = match &workspace {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("talon-run-")
                .tempdir()
                .context("cannot create a private workspace")?,
        ),
    };
    let workspace = workspace.or_else(|| scratch.as_ref().map(|d| d.path().to_path_buf()));
    if let Some(dir) = &workspace {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let outcome = async_runtime()?.block_on(async {
        let plugin = runtime
            .load(
                package.manifest.clone(),
                Arc::new(package.component),
                granted,
                BTreeMap::new(),
            )
            .await?;
        let ctx = CallContext {
            agent_id: None,
            workspace,
        };
        anyhow::Ok(runtime.invoke(&plugin, tool, arguments, &ctx).await)
    });
    drop(scratch);
    let invocation = outcome?;
    let cost = invocation.cost;
    eprintln!(
        "cost: fuel {}, {:.3} ms, peak memory {} KiB",
        cost.fuel,
        cost.wall_us as f64 / 1000.0,
        cost.peak_memory / 1024
    );
    match invocation.result {
        Ok(output) => {
            println!("{output}");
            Ok(())
        }
        Err(e) => bail!("{tool}: {e}"),
    }
}

/// Reads a package file and builds the body of an install request (the
/// plugins' and the hands' alike): the package, the grant asked for (or
/// asked on a terminal) and the settings.
pub(crate) fn install_body(
    path: &Path,
    grant_all: bool,
    grant: Option<String>,
    settings: Vec<String>,
) -> anyhow::Result<(Package, serde_json::Value)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // The daemon checks the package; this parse only learns what it requests.
    let package = Package::parse(&bytes)
        .with_context(|| format!("{} is not a Talon package", path.display()))?;
    let grant = crate::plugin_grants::install_grant(
        &package.manifest.name,
        &package.manifest.permissions,
        grant_all,
        grant,
    )?;
    let settings: BTreeMap<String, String> = settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect::<Option<_>>()
        .context("--setting must be KEY=VALUE")?;
    let body = serde_json::json!({
        "package": base64::engine::general_purpose::STANDARD.encode(&bytes),
        "grant": grant,
        "settings": settings,
    });
    Ok((package, body))
}

fn install(
    home: &Home,
    config: Option<&Path>,
    path: &Path,
    grant_all: bool,
    grant: Option<String>,
    settings: Vec<String>,
    args: &ClientArgs,
) -> anyhow::Result<()> {
    let (package, body) = install_body(path, grant_all, grant, settings)?;
    let client = Client::new(home, config, args)?;
    // Compiling a large component takes a while: on a terminal, say so.
    let progress = Spinner::start(format!(
        "{}: installing (compiling and loading)",
        package.manifest.name
    ));
    let result = client.call_with(reqwest::Method::POST, "/api/plugins/install", Some(&body));
    drop(progress);
    let view = result?;
    println!(
        "installed {} {} with tools {}",
        view["name"].as_str().unwrap_or("?"),
        view["version"].as_str().unwrap_or("?"),
        view["tools"]
    );
    let granted: Permissions = serde_json::from_value(view["permissions"]["granted"].clone())
        .context("the daemon's answer is unreadable")?;
    println!("granted:\n{}", crate::plugin_grants::describe(&granted));
    println!(
        "change it later with `talon plugin grant {0} ...` or `talon plugin revoke {0} ...`",
        view["name"].as_str().unwrap_or("<name>")
    );
    Ok(())
}

fn list(home: &Home, config: Option<&Path>, args: &ClientArgs, json: bool) -> anyhow::Result<()> {
    let client = Client::new(home, config, args)?;
    let body = client.call_with(reqwest::Method::GET, "/api/plugins", None)?;
    if json {
        return crate::output::print_json(&body);
    }
    let plugins = body["plugins"].as_array().cloned().unwrap_or_default();
    if plugins.is_empty() {
        println!("no plugins installed");
    }
    for p in plugins {
        println!(
            "{:<20} {:<10} {:<6} {:<9} tools: {}",
            p["name"].as_str().unwrap_or("?"),
            p["version"].as_str().unwrap_or("?"),
            p["kind"].as_str().unwrap_or("?"),
            p["status"].as_str().unwrap_or("?"),
            p["tools"]
        );
    }
    Ok(())
}
