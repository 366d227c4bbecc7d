//! Builds every first-party plugin (`plugins/*`) for `wasm32-wasip2` with a
//! nested cargo, into the same target directory and profile as
//! `scripts/build-plugins` (`target/wasm`, `plugin`), so a machine that ran
//! one finds the other's work done; then copies each component into
//! `OUT_DIR` and writes the table `src/lib.rs` includes, with each
//! component's SHA-256.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("host/bundled sits two levels below the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(env("OUT_DIR"));
    for watched in ["plugins", "sdk/rust", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=TALON_WASM_TARGET_DIR");

    let plugins = first_party_plugins(&root.join("plugins"));
    let wasm_dir = std::env::var_os("TALON_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/wasm"));
    check_target_installed();
    build(&root, &wasm_dir, &plugins);

    let mut table =
        String::from("/// Every plugin the binary ships.\npub static PLUGINS: &[Bundled] = &[\n");
    for plugin in &plugins {
        let artifact = wasm_dir
            .join(TARGET)
            .join(PROFILE)
            .join(format!("{}.wasm", plugin.crate_name.replace('-', "_")));
        let component = std::fs::read(&artifact).unwrap_or_else(|e| {
            panic!(
                "{} built no component at {}: {e}",
                plugin.crate_name,
                artifact.display()
            )
        });
        // Embedded from OUT_DIR, not target/wasm: a later build there cannot
        // change the bytes behind the hash computed here.
        let embedded = out_dir.join(format!("{}.wasm", plugin.name));
        std::fs::write(&embedded, &component).expect("cannot write to OUT_DIR");
        let sha256: String = Sha256::digest(&component)
            .iter()
            .fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
        let _ = writeln!(
            table,
            "    Bundled {{ name: {:?}, manifest: include_str!({:?}), component: include_bytes!({:?}), sha256: {:?} }},",
            plugin.name,
            plugin.dir.join("talon.toml").display().to_string(),
            embedded.display().to_string(),
            sha256,
        );
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("bundled.rs"), table).expect("cannot write to OUT_DIR");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

struct Plugin {
    dir: PathBuf,
    crate_name: String,
    name: String,
}

/// Each directory of `plugins/` holding a crate and a `talon.toml`.
fn first_party_plugins(dir: &Path) -> Vec<Plugin> {
    let mut plugins = Vec::new();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let dir = entry.expect("cannot list plugins/").path();
        let (cargo, talon) = (dir.join("Cargo.toml"), dir.join("talon.toml"));
        if !cargo.is_file() || !talon.is_file() {
            continue;
        }
        // Channels and hands are not bundled: each reaches servers or
        // pages the operator names, so it is installed and granted like a
        // third-party plugin (scripts/build-plugins builds it into
        // target/plugins).
        let manifest = std::fs::read_to_string(&talon).unwrap_or_default();
        if manifest.lines().any(|l| {
            let l = l.replace(' ', "");
            l == "kind=\"channel\"" || l == "kind=\"hand\""
        }) {
            continue;
        }
        plugins.push(Plugin {
            crate_name: top_level_name(&cargo, "[package]"),
            name: top_level_name(&talon, ""),
            dir,
        });
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        !plugins.is_empty(),
        "no plugin crates under {}",
        dir.display()
    );
    plugins
}

/// The `name = "..."` of a TOML file's `section` (`""`: the top table).
fn top_level_name(path: &Path, section: &str) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut current = "";
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            current = line;
            continue;
        }
        if current != section {
            continue;
        }
        if let Some(value) = line
            .strip_prefix("name")
            .map(str::trim_start)
            .and_then(|l| l.strip_prefix('='))
        {
            return value.trim().trim_matches('"').to_string();
        }
    }
    panic!(
        "{} has no name in {}",
        path.display(),
        if section.is_empty() {
            "its top table"
        } else {
            section
        }
    );
}

/// Fails with the fix when the standard library for the plugins' target is
/// not installed, instead of with a page of compiler errors.
fn check_target_installed() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot
        && !sysroot.join("lib/rustlib").join(TARGET).is_dir()
    {
        panic!(
            "the {TARGET} Rust target is not installed; the bundled plugins need it: \
             run `rustup target add {TARGET}`"
        );
    }
}

/// One nested `cargo build` of every plugin crate.
fn build(root: &Path, wasm_dir: &Path, plugins: &[Plugin]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--quiet", "--profile", PROFILE, "--target", TARGET])
        .arg("--target-dir")
        .arg(wasm_dir);
    for plugin in plugins {
        command.args(["-p", &plugin.crate_name]);
    }
    // What the outer cargo sets for this build script describes the host
    // build (its flags, profile, wrappers such as clippy-driver, target
    // directory) and would change or spoil the guests' build. The
    // jobserver (CARGO_MAKEFLAGS) is kept: the nested build shares the
    // outer one's job slots instead of adding its own.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaks = (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "RUSTC"
                    | "RUSTDOC"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTC_LINKER"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "NUM_JOBS"
            );
        if leaks {
            command.env_remove(key);
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo for the bundled plugins: {e}"));
    if !output.status.success() {
        panic!(
            "building the bundled plugins failed (cargo build --profile {PROFILE} --target {TARGET} \
             --target-dir {}):\n{}",
            wasm_dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
