//! The client commands against a running daemon.

use crate::harness::Daemon;

#[tokio::test]
async fn status_config_show_and_stop() {
    let mut daemon = Daemon::start_with_config("api_key = \"cli-key\"\n").await;
    daemon.use_key("cli-key");

    let status = daemon.cli(&["status"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("status:  running"), "{out}");

    let shown = daemon.cli(&["config", "show"]);
    let toml = String::from_utf8_lossy(&shown.stdout);
    assert!(toml.contains("api_listen = \""), "{toml}");
    let shown = daemon.cli(&["config", "show", "--json"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("\"api_listen\""));

    // A second daemon on the same home says who is there.
    let second = daemon.cli(&["start", "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("talon is already running") && said.contains("pid"),
        "{said}"
    );

    let stop = daemon.cli(&["stop"]);
    assert!(stop.status.success());
    assert!(daemon.wait_exit().success());

    // Stopped, the home has no daemon.json: the CLI says so instead of
    // talking to whatever listens on the default address.
    let after = daemon.cli(&["status"]);
    assert!(!after.status.success());
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("no talon is running"),
        "{after:?}"
    );
}

#[test]
fn help_lists_the_commands() {
    let output = std::process::Command::new(crate::harness::talon_bin())
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["start", "status", "stop", "config"] {
        assert!(text.contains(command), "{text}");
    }
}
