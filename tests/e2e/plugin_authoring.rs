//! The plugin author's loop as a user runs it, in each language, in a
//! directory outside the repository: `talon plugin new`, the project's own
//! tests, `talon plugin dev --once` into a running daemon in development
//! mode, a call, a change of the source, `dev --once` again, the change seen;
//! and `talon plugin dev` watching a project: a change rebuilt and answering
//! through the daemon, a broken build reported while it keeps watching, and
//! Ctrl-C stopping it.
//!
//! Offline: the Rust project builds against this checkout's `sdk/rust` with a
//! shared target directory (`target/scaffold-wasm`, so wit-bindgen is not
//! compiled again at every run); Python uses the componentize-py that
//! `scripts/build-plugins` installs under `target/plugin-tools`; JavaScript
//! uses the JavaScript example's `node_modules` (esbuild, componentize-js).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{Daemon, talon_bin};
use crate::plugins::{OPEN_INVOKE, invoke};

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A daemon that accepts development keys and direct tool calls.
async fn dev_daemon() -> Daemon {
    Daemon::start_with_config(&format!("[plugins]\ndev_mode = true\n{OPEN_INVOKE}")).await
}

/// Runs `talon --home <home> args...` with the build tools of these tests.
fn talon(home: &Path, args: &[&str]) -> Output {
    talon_command(home, args).output().expect("run talon")
}

/// The command [`talon`] runs, to spawn with pipes.
fn talon_command(home: &Path, args: &[&str]) -> Command {
    let tools = repo().join("target/plugin-tools/venv/bin");
    let path = std::env::join_paths(std::iter::once(tools).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let mut command = Command::new(talon_bin());
    command
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("TALON_URL")
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", repo().join("target/scaffold-wasm"))
        .env("CARGO_NET_OFFLINE", "true");
    command
}

/// Runs it and expects success; returns standard output.
fn talon_ok(home: &Path, args: &[&str]) -> String {
    let out = talon(home, args);
    assert!(
        out.status.success(),
        "talon {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs it and expects a failure; returns standard error.
fn talon_err(home: &Path, args: &[&str]) -> String {
    let out = talon(home, args);
    assert!(!out.status.success(), "talon {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Replaces `from` by `to` in a file of the project.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("read source");
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).expect("write source");
}

/// The whole loop for one language; `source` is the file holding the greeting.
async fn authoring_loop(lang: &str, source: &str, prepare: impl FnOnce(&Path)) {
    let started = std::time::Instant::now();
    let daemon = dev_daemon().await;
    let home = daemon.home();
    let projects = tempfile::tempdir().expect("projects dir");
    let name = format!("greet_{lang}");
    let dir = projects.path().join(&name);
    let sdk = repo();
    let out = talon_ok(
        home,
        &[
            "plugin",
            "new",
            &name,
            "--lang",
            lang,
            "--sdk-path",
            sdk.to_str().expect("utf-8 path"),
            "--dir",
            dir.to_str().expect("utf-8 path"),
        ],
    );
    assert!(out.contains("talon.toml"), "{out}");
    assert!(dir.join("README.md").is_file());
    prepare(&dir);
    let project = dir.to_str().expect("utf-8 path");

    let out = talon_ok(home, &["plugin", "dev", "--once", project]);
    assert!(
        out.contains(&format!("installed {name} 0.1.0: tools {name}")),
        "{out}"
    );
    let (status, body) = invoke(&daemon, &name, serde_json::json!({ "name": "world" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["message"], "Hello, world!", "{body}");
    assert!(home.join("keys/dev.key").is_file());

    edit(&dir.join(source), "Hello, ", "Howdy, ");
    let out = talon_ok(home, &["plugin", "dev", "--once", project]);
    assert!(out.contains(&format!("upgraded {name} 0.1.0")), "{out}");
    let (status, body) = invoke(&daemon, &name, serde_json::json!({ "name": "world" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["message"], "Howdy, world!", "{body}");
    eprintln!(
        "plugin authoring loop, {lang}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn rust_plugin_new_dev_change_dev() {
    authoring_loop("rust", "src/lib.rs", |_| {}).await;
}

/// The lines a running command prints on one of its pipes, as they come.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle` (a build may take minutes on a
/// loaded machine; the limit only keeps a broken loop from hanging the
/// suite); returns the lines seen up to it.
fn wait_for(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(std::time::Duration::from_secs(900)) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(e) => panic!("no line with {needle:?} ({e}); saw {seen:#?}"),
        }
    }
}

#[tokio::test]
async fn dev_watches_rebuilds_on_change_survives_a_broken_build_and_stops_on_ctrl_c() {
    let daemon = dev_daemon().await;
    let home = daemon.home();
    let projects = tempfile::tempdir().expect("projects dir");
    let dir = projects.path().join("greet_watch");
    let sdk = repo();
    talon_ok(
        home,
        &[
            "plugin",
            "new",
            "greet_watch",
            "--sdk-path",
            sdk.to_str().expect("utf-8 path"),
            "--dir",
            dir.to_str().expect("utf-8 path"),
        ],
    );
    let mut dev = talon_command(home, &["plugin", "dev", dir.to_str().expect("utf-8 path")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run talon plugin dev");
    let out = lines_of(dev.stdout.take().expect("stdout"));
    let err = lines_of(dev.stderr.take().expect("stderr"));

    wait_for(&out, "installed greet_watch 0.1.0: tools greet_watch");
    // Watching only from here: an edit before it would go unseen.
    wait_for(&err, "watching");
    let greet = || {
        invoke(
            &daemon,
            "greet_watch",
            serde_json::json!({ "name": "world" }),
        )
    };
    let (status, body) = greet().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["message"], "Hello, world!", "{body}");

    // A broken source: the error is shown, the installed version keeps
    // answering, and the loop keeps watching.
    let source = dir.join("src/lib.rs");
    edit(&source, "Hello, ", "Hello, \" +");
    let seen = wait_for(&err, "watching");
    assert!(seen.iter().any(|l| l.starts_with("talon: ")), "{seen:#?}");
    let (status, body) = greet().await;
    assert_eq!(
        body["result"]["message"], "Hello, world!",
        "{status} {body}"
    );

    edit(&source, "Hello, \" +", "Howdy, ");
    wait_for(&out, "upgraded greet_watch 0.1.0");
    let (status, body) = greet().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["message"], "Howdy, world!", "{body}");

    // Ctrl-C while it waits for a change ends it at once, as a terminal's
    // SIGINT ends any foreground command; the daemon keeps the last version.
    wait_for(&err, "watching");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&dev),
        rustix::process::Signal::INT,
    )
    .expect("send SIGINT");
    let status = dev.wait().expect("wait for talon plugin dev");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(rustix::process::Signal::INT.as_raw()),
        "{status}"
    );
    let (_, body) = greet().await;
    assert_eq!(body["result"]["message"], "Howdy, world!", "{body}");
}

#[tokio::test]
async fn python_plugin_new_test_dev_change_dev() {
    authoring_loop("python", "app.py", |dir| {
        // The project's own tests pass as written, in plain CPython.
        let out = Command::new("python3")
            .args(["-m", "unittest", "-q"])
            .current_dir(dir)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await;
}

#[tokio::test]
async fn js_plugin_new_test_dev_change_dev() {
    authoring_loop("js", "src/tool.js", |dir| {
        // What `npm install` would fetch, from the JavaScript example (offline).
        std::os::unix::fs::symlink(
            repo().join("examples/plugins/js/node_modules"),
            dir.join("node_modules"),
        )
        .expect("link node_modules");
        let out = Command::new("node")
            .args(["--test", "test/"])
            .current_dir(dir)
            .output()
            .expect("node");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    })
    .await;
}

#[tokio::test]
async fn install_upgrade_replaces_and_refuses_a_silent_downgrade() {
    let daemon = dev_daemon().await;
    let home = daemon.home();
    let projects = tempfile::tempdir().expect("projects dir");
    let dir = projects.path().join("bump");
    let project = dir.to_str().expect("utf-8 path");
    let sdk = repo();
    talon_ok(
        home,
        &[
            "plugin",
            "new",
            "bump",
            "--sdk-path",
            sdk.to_str().expect("utf-8"),
            "--dir",
            project,
        ],
    );
    let out = talon_ok(home, &["plugin", "build", project]);
    let component = out
        .trim()
        .strip_prefix("built ")
        .expect("the component's path")
        .to_string();
    let key = home.join("keys/dev.key");
    let manifest = dir.join("talon.toml");
    let pack = |version: &str| {
        edit(
            &manifest,
            "version = \"0.1.0\"",
            &format!("version = \"{version}\""),
        );
        let package = dir.join(format!("bump-{version}.talon"));
        talon_ok(
            home,
            &[
                "plugin",
                "pack",
                manifest.to_str().expect("utf-8"),
                &component,
                "--key",
                key.to_str().expect("utf-8"),
                "--out",
                package.to_str().expect("utf-8"),
            ],
        );
        edit(
            &manifest,
            &format!("version = \"{version}\""),
            "version = \"0.1.0\"",
        );
        package.to_str().expect("utf-8").to_string()
    };
    // The first dev round makes the development key and installs 0.1.0.
    talon_ok(home, &["plugin", "dev", "--once", project]);

    let newer = pack("0.2.0");
    let older = pack("0.0.9");
    // A second plain install is refused and says what to do.
    let err = talon_err(home, &["plugin", "install", &newer, "--grant-all"]);
    assert!(err.contains("already installed"), "{err}");
    let out = talon_ok(home, &["plugin", "install", "--upgrade", &newer]);
    assert!(out.contains("upgraded bump to 0.2.0"), "{out}");
    let err = talon_err(home, &["plugin", "install", "--upgrade", &older]);
    assert!(err.contains("older"), "{err}");
    let out = talon_ok(home, &["plugin", "install", "--upgrade", "--force", &older]);
    assert!(out.contains("upgraded bump to 0.0.9"), "{out}");
    let (status, body) = invoke(&daemon, "bump", serde_json::json!({ "name": "x" })).await;
    assert_eq!(
        (status, body["result"]["message"].as_str()),
        (200, Some("Hello, x!")),
        "{body}"
    );
    // --force alone is not an upgrade.
    let err = talon_err(home, &["plugin", "install", "--force", &older]);
    assert!(err.contains("--upgrade"), "{err}");

    // A daemon not in development mode refuses the development key, and dev says why.
    let strict = Daemon::start_with_config(OPEN_INVOKE).await;
    std::fs::create_dir_all(strict.home().join("keys")).expect("keys dir");
    std::fs::copy(&key, strict.home().join("keys/dev.key")).expect("copy key");
    let err = talon_err(strict.home(), &["plugin", "dev", "--once", project]);
    assert!(err.contains("dev_mode = true"), "{err}");
    let listed = talon_ok(strict.home(), &["plugin", "list"]);
    assert!(!listed.contains("bump"), "{listed}");
}

#[tokio::test]
async fn new_and_dev_refuse_bad_input_and_write_nothing() {
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    let projects = tempfile::tempdir().expect("projects dir");
    let at = |name: &str| {
        projects
            .path()
            .join(name)
            .to_str()
            .expect("utf-8")
            .to_string()
    };
    let err = talon_err(home, &["plugin", "new", "Bad-Name", "--dir", &at("a")]);
    assert!(err.contains("lowercase"), "{err}");
    let err = talon_err(
        home,
        &["plugin", "new", "ok", "--lang", "cobol", "--dir", &at("b")],
    );
    assert!(err.contains("rust, python or js"), "{err}");
    let err = talon_err(
        home,
        &["plugin", "new", "ok", "--kind", "hand", "--dir", &at("c")],
    );
    assert!(err.contains("tool or skill"), "{err}");
    let err = talon_err(
        home,
        &[
            "plugin",
            "new",
            "ok",
            "--lang",
            "js",
            "--sdk-path",
            "/nonexistent",
            "--dir",
            &at("d"),
        ],
    );
    assert!(err.contains("neither a Talon checkout"), "{err}");
    let err = talon_err(
        home,
        &[
            "plugin",
            "new",
            "ok",
            "--description",
            "a \"quoted\" one",
            "--dir",
            &at("e"),
        ],
    );
    assert!(err.contains("double quotes"), "{err}");
    assert_eq!(std::fs::read_dir(projects.path()).expect("list").count(), 0);
    // An existing project is not overwritten; `scaffold` is the same command.
    talon_ok(
        home,
        &[
            "plugin",
            "scaffold",
            "ok",
            "--lang",
            "python",
            "--dir",
            &at("f"),
        ],
    );
    let err = talon_err(home, &["plugin", "new", "ok", "--dir", &at("f")]);
    assert!(err.contains("not empty"), "{err}");
    // dev and build need a project.
    let err = talon_err(
        home,
        &["plugin", "dev", "--once", projects.path().to_str().unwrap()],
    );
    assert!(err.contains("no talon.toml"), "{err}");
    std::fs::write(at("f") + "/talon.toml", "name = \"ok\"\nversion = 1\n").expect("write");
    let err = talon_err(home, &["plugin", "build", &at("f")]);
    assert!(err.contains("talon.toml"), "{err}");
}
