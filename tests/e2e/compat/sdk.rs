//! LibreFang's generated Python client (`librefang-sdk` from PyPI, pinned by
//! scripts/test) against Talon: `sdk_driver.py` calls every method of the
//! client once, with the requests the compatibility check sends (LibreFang's
//! shapes, fixture ids). A method whose operation Talon serves must not be
//! refused with 400, nor fail with a 5xx or no answer, unless the allowlist
//! names the operation's status as a deliberate deviation; a method whose
//! operation Talon does not serve must get a 404 (or 405 where Talon serves
//! the path with another method). The client is newer than the reference
//! document; methods for operations the document lacks are called too.

use std::io::Write as _;

use serde_json::{Map, Value, json};

use super::allowlist::{ALLOWLIST, Kind};
use super::spec::{self, operations, shape};
use super::{Served, phase, query_pairs, request_body};

/// The interpreter of the virtualenv with `librefang-sdk`, which scripts/test
/// installs and names in this variable.
const PYTHON_ENV: &str = "TALON_LIBREFANG_PYTHON";

/// Client methods whose request LibreFang's own server refuses too, so a
/// 400 from Talon is the same answer: `(operation, why)`.
const REFUSED_BY_LIBREFANG: [(&str, &str); 4] = [
    (
        "DELETE /api/agents/bulk",
        "the client sends no body; LibreFang's handler requires `{agent_ids}` (librefang-notes.md)",
    ),
    (
        "PUT /api/agents/{id}/skills",
        "LibreFang's body is a JSON array of names; the client can only send an object (`**data`)",
    ),
    (
        "PUT /api/agents/{id}/mcp_servers",
        "LibreFang's body is a JSON array of server names; the client can only send an object (`**data`)",
    ),
    (
        "POST /api/tasks",
        "newer than the reference document, so no LibreFang shape is known; the client sends `{}`, \
         and a task needs a title",
    ),
];

/// Whether the allowlist names `operation` with a kind that covers its answer.
fn allowlisted(operation: &str, served: bool) -> bool {
    ALLOWLIST.iter().any(|a| {
        a.operation == operation
            && if served {
                matches!(a.kind, Kind::Status | Kind::NotSent)
            } else {
                a.kind == Kind::Unserved
            }
    }) || REFUSED_BY_LIBREFANG.iter().any(|(op, _)| *op == operation)
}

#[tokio::test]
async fn librefang_python_client_gets_no_400() {
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| {
        panic!(
            "{PYTHON_ENV} is not set: run scripts/test, which installs LibreFang's Python client"
        )
    });
    let doc = spec::librefang();
    let Served {
        llm: _llm,
        daemon,
        served,
        fixtures,
    } = Served::start().await;

    let is_served = |operation: &str| {
        operation
            .split_once(' ')
            .is_some_and(|(m, p)| served.contains(&(m.to_string(), shape(p))))
    };
    let mut plan = Map::new();
    let mut skip = Vec::new();
    for op in operations(&doc) {
        let key = op.key();
        if ALLOWLIST
            .iter()
            .any(|a| a.operation == key && a.kind == Kind::NotSent)
        {
            skip.push(key);
            continue;
        }
        let (path, body) = if is_served(&key) {
            (fixtures.path(&op.path), request_body(&doc, &op, &fixtures))
        } else {
            (op.path.replace(['{', '}'], "x"), None)
        };
        let query: Map<String, Value> = query_pairs(&op, &fixtures)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        plan.insert(
            key,
            json!({"path": path, "query": query, "body": body, "phase": phase(&op)}),
        );
    }
    let plan = json!({"base_url": daemon.base_url(), "skip": skip, "ops": plan});

    let driver = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/e2e/compat/sdk_driver.py"
    );
    let mut child = std::process::Command::new(python)
        .arg(driver)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the LibreFang client driver");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(plan.to_string().as_bytes())
        .expect("send the plan");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("driver output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the driver failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut failures = Vec::new();
    let (mut called, mut ok, mut unserved) = (0, 0, 0);
    for line in stdout.lines() {
        let line: Value = serde_json::from_str(line).expect("a JSON line from the driver");
        let method = line["method"].as_str().unwrap_or_default();
        let operation = line["operation"].as_str().unwrap_or_default();
        let error = line["error"].as_str().unwrap_or_default();
        let Some(status) = line["status"].as_u64() else {
            if !allowlisted(operation, true) {
                failures.push(format!("{method} ({operation}): not called: {error}"));
            }
            continue;
        };
        called += 1;
        if is_served(operation) {
            let refused = status == 400 || status >= 500 || status == 0;
            if refused && !allowlisted(operation, true) {
                failures.push(format!("{method} ({operation}): {status} {error}"));
            }
            ok += usize::from(status < 300);
        } else {
            unserved += 1;
            if status != 404 && status != 405 && !allowlisted(operation, false) {
                failures.push(format!(
                    "{method} ({operation}) is not served but answered {status}: {error}"
                ));
            }
        }
    }
    println!(
        "librefang client: {called} methods called, {ok} answered 2xx, {unserved} for routes Talon does not serve"
    );
    assert!(
        failures.is_empty(),
        "LibreFang's Python client was refused:\n  {}",
        failures.join("\n  ")
    );
    // The pinned client has 442 methods; only `shutdown` is not called.
    assert!(called >= 441, "only {called} client methods called");
}
