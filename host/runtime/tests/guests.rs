//! The runtime against real components built from this repository
//! (`scripts/build-plugins` puts them in `target/plugins/`).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{author_manifest, call, component, load, load_with, runtime};
use talon_runtime::{
    CallContext, Ceilings, GuardError, InvokeError, Manifest, Package, Permissions, Plugin,
    Runtime, RuntimeConfig, SecretKey, TrustStore,
};

#[tokio::test]
async fn rust_example_describes_and_answers() {
    let rt = runtime(Ceilings::default());
    let plugin = load(&rt, "examples/plugins/rust", "word_count_rust").await;
    assert_eq!(plugin.tools().len(), 1);
    assert_eq!(plugin.tools()[0].name, "word_count_rust");
    assert_eq!(plugin.tools()[0].parameters["type"], "object");
    let invocation = rt
        .invoke(
            &plugin,
            "word_count_rust",
            r#"{"text":"a b a"}"#,
            &CallContext::default(),
        )
        .await;
    let output: serde_json::Value = serde_json::from_str(&invocation.result.unwrap()).unwrap();
    assert_eq!(output["words"], 3);
    assert!(
        invocation.cost.fuel > 0 && invocation.cost.peak_memory > 0,
        "{:?}",
        invocation.cost
    );

    let err = call(
        &rt,
        &plugin,
        "word_count_rust",
        r#"{"txt": 1}"#,
        &CallContext::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, InvokeError::InvalidArguments(_)), "{err}");
    let err = call(&rt, &plugin, "nope", "{}", &CallContext::default())
        .await
        .unwrap_err();
    assert!(matches!(err, InvokeError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn hostile_plugin_is_stopped_every_time() {
    let rt = runtime(Ceilings::default());
    let plugin = load(&rt, "tests/plugins/hostile", "hostile").await;
    let none = CallContext::default();

    let err = call(&rt, &plugin, "spin", "{}", &none).await.unwrap_err();
    assert!(
        matches!(
            err,
            InvokeError::Guard(GuardError::OutOfFuel { limit: 500_000_000 })
        ),
        "{err}"
    );

    let err = call(&rt, &plugin, "sleep_forever", "{}", &none)
        .await
        .unwrap_err();
    assert!(
        matches!(err, InvokeError::Guard(GuardError::Timeout { .. })),
        "{err}"
    );

    let err = call(&rt, &plugin, "alloc", r#"{"mb": 100}"#, &none)
        .await
        .unwrap_err();
    assert!(
        matches!(err, InvokeError::Guard(GuardError::MemoryLimit { limit, .. }) if limit == 32 << 20),
        "{err}"
    );
    // Within the limit it works: the limit is the plugin's, not arbitrary.
    assert_eq!(
        call(&rt, &plugin, "alloc", r#"{"mb": 4}"#, &none)
            .await
            .unwrap(),
        "4"
    );

    // Rust keeps large frames on a stack in linear memory: overflowing it is
    // an out-of-bounds access rather than a native stack overflow.
    let err = call(&rt, &plugin, "recurse", r#"{"depth": 100000000}"#, &none)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, InvokeError::Guard(GuardError::StackOverflow))
            || matches!(&err, InvokeError::Guard(GuardError::Trap(m)) if m.contains("out of bounds") && m.contains("stack")),
        "{err}"
    );

    let err = call(&rt, &plugin, "trap", "{}", &none).await.unwrap_err();
    assert!(
        matches!(&err, InvokeError::Guard(GuardError::Trap(m)) if m.contains("panicked on purpose")),
        "{err}"
    );

    // The runtime still serves after all of that.
    assert_eq!(
        call(&rt, &plugin, "echo", r#"{"x":1}"#, &none)
            .await
            .unwrap(),
        r#"{"x":1}"#
    );
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_the_deadline_when_fuel_would_last() {
    // A ceiling of fuel no loop exhausts in 200 ms: the epoch deadline stops it.
    let rt = runtime(Ceilings {
        fuel: u64::MAX / 2,
        memory_bytes: 64 << 20,
        timeout: Duration::from_millis(200),
        ..Ceilings::default()
    });
    let plugin = load_with(
        &rt,
        "tests/plugins/hostile",
        "hostile",
        Permissions::default(),
        |m| m.limits.fuel = None,
    )
    .await;
    let invocation = rt
        .invoke(&plugin, "spin", "{}", &CallContext::default())
        .await;
    assert!(
        matches!(
            invocation.result,
            Err(InvokeError::Guard(GuardError::Timeout { .. }))
        ),
        "{:?}",
        invocation.result
    );
    assert!(invocation.cost.wall_us >= 200_000, "{:?}", invocation.cost);
}

#[tokio::test]
async fn files_stay_inside_the_workspace() {
    let rt = runtime(Ceilings::default());
    let plugin = load(&rt, "tests/plugins/hostile", "hostile").await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("notes.txt"), "mine").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path(), workspace.path().join("escape")).unwrap();
    let ctx = CallContext {
        agent_id: None,
        workspace: Some(workspace.path().to_path_buf()),
    };

    assert_eq!(
        call(&rt, &plugin, "read", r#"{"path":"notes.txt"}"#, &ctx)
            .await
            .unwrap(),
        "\"mine\""
    );
    assert_eq!(
        call(&rt, &plugin, "read", r#"{"path":"/notes.txt"}"#, &ctx)
            .await
            .unwrap(),
        "\"mine\""
    );
    let secret = outside.path().join("secret.txt");
    for path in [
        "../secret.txt".to_string(),
        format!(
            "../{}/secret.txt",
            outside.path().file_name().unwrap().to_string_lossy()
        ),
        secret.display().to_string(),
        "escape/secret.txt".to_string(),
        "/etc/passwd".to_string(),
    ] {
        let err = call(
            &rt,
            &plugin,
            "read",
            &serde_json::json!({ "path": path }).to_string(),
            &ctx,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, InvokeError::Failed(_)), "{path}: {err}");
    }
    let err = call(
        &rt,
        &plugin,
        "write",
        r#"{"path":"../planted.txt","text":"x"}"#,
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, InvokeError::Failed(_)), "{err}");
    assert!(
        !workspace
            .path()
            .parent()
            .unwrap()
            .join("planted.txt")
            .exists()
    );

    // Without a filesystem grant there is no preopen at all.
    let ungranted = load_with(
        &rt,
        "tests/plugins/hostile",
        "hostile",
        Permissions::default(),
        |_| {},
    )
    .await;
    let err = call(&rt, &ungranted, "read", r#"{"path":"notes.txt"}"#, &ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, InvokeError::Failed(_)), "{err}");
}

#[tokio::test]
async fn grants_cannot_exceed_the_request() {
    let rt = runtime(Ceilings::default());
    let manifest = rt
        .complete_manifest(
            author_manifest("tests/plugins/hostile"),
            component("hostile"),
        )
        .await
        .unwrap();
    let greedy = Permissions {
        network: vec!["example.com".into()],
        ..Default::default()
    };
    let err = rt
        .load(manifest, component("hostile"), greedy, BTreeMap::new())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("did not request"), "{err}");
}

#[tokio::test]
async fn one_hundred_concurrent_calls() {
    let rt = runtime(Ceilings::default());
    let plugin = load(&rt, "tests/plugins/hostile", "hostile").await;
    let calls = (0..100).map(|i| {
        let (rt, plugin) = (rt.clone(), plugin.clone());
        tokio::spawn(async move {
            let args = format!(r#"{{"i":{i}}}"#);
            (
                args.clone(),
                rt.invoke(&plugin, "echo", &args, &CallContext::default())
                    .await
                    .result,
            )
        })
    });
    for call in calls {
        let (args, result) = call.await.unwrap();
        assert_eq!(result.unwrap(), args);
    }
}

#[tokio::test]
async fn skills_give_instructions() {
    let rt = runtime(Ceilings::default());
    let plugin = load(&rt, "tests/plugins/greeter", "greeter").await;
    assert!(plugin.instructions().unwrap().contains("call `greet`"));
    let out = call(
        &rt,
        &plugin,
        "greet",
        r#"{"name":"Ada"}"#,
        &CallContext::default(),
    )
    .await
    .unwrap();
    assert_eq!(out, r#"{"greeting":"Hello, Ada!","seen_before":null}"#);
}

#[tokio::test]
async fn python_and_javascript_examples_run() {
    let rt = runtime(Ceilings::default());
    for (dir, name) in [
        ("examples/plugins/python", "word_count_python"),
        ("examples/plugins/js", "word_count_js"),
    ] {
        let plugin = load(&rt, dir, name).await;
        let out = call(
            &rt,
            &plugin,
            name,
            r#"{"text":"one two two"}"#,
            &CallContext::default(),
        )
        .await
        .unwrap();
        let out: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(out["words"], 3, "{name}: {out}");
    }
}

/// A runtime configuration caching in a directory of its own (empty), and
/// the greeter's completed manifest (completed by another runtime, so the
/// cache stays empty).
async fn empty_cache_and_greeter() -> (tempfile::TempDir, RuntimeConfig, Manifest) {
    let cache = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let manifest = runtime(Ceilings::default())
        .complete_manifest(
            author_manifest("tests/plugins/greeter"),
            component("greeter"),
        )
        .await
        .unwrap();
    (cache, config, manifest)
}

/// Loads the greeter with `manifest` and no grants.
async fn load_greeter(rt: &Runtime, manifest: Manifest) -> Plugin {
    rt.load(
        manifest,
        component("greeter"),
        Permissions::default(),
        BTreeMap::new(),
    )
    .await
    .unwrap()
}

/// Greets "x".
async fn greet(rt: &Runtime, plugin: &Plugin) -> Result<String, InvokeError> {
    call(
        rt,
        plugin,
        "greet",
        r#"{"name":"x"}"#,
        &CallContext::default(),
    )
    .await
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk() {
    let (_cache, config, manifest) = empty_cache_and_greeter().await;
    let first = Runtime::new(config.clone()).unwrap();
    let plugin = load_greeter(&first, manifest.clone()).await;
    assert!(!plugin.was_cached());
    let second = Runtime::new(config).unwrap();
    let plugin = load_greeter(&second, manifest).await;
    assert!(plugin.was_cached());
    assert!(greet(&second, &plugin).await.is_ok());
}

/// Loads of one component racing on a cold cache (several tests, or several
/// agents, starting at once) each get a working component, and the cache
/// ends with one file: every writer has a temporary file of its own, so none
/// truncates the file another has just mapped (which killed a test process
/// with SIGBUS when they shared one name).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_loads_on_a_cold_cache_each_get_a_working_component() {
    let (cache, config, manifest) = empty_cache_and_greeter().await;
    let loads: Vec<_> = (0..6)
        .map(|_| {
            let rt = Runtime::new(config.clone()).unwrap();
            let manifest = manifest.clone();
            tokio::spawn(async move {
                let plugin = load_greeter(&rt, manifest).await;
                greet(&rt, &plugin).await.unwrap()
            })
        })
        .collect();
    for load in loads {
        assert!(load.await.unwrap().contains("Hello, x!"));
    }
    let files: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one compiled file and no temporary ones: {files:?}"
    );
    assert!(files[0].ends_with(".cwasm"), "{files:?}");
}

#[tokio::test]
async fn packages_round_trip_and_refuse_tampering() {
    let rt = runtime(Ceilings::default());
    let manifest = rt
        .complete_manifest(
            author_manifest("examples/plugins/rust"),
            component("word_count_rust"),
        )
        .await
        .unwrap();
    let key = SecretKey::generate().unwrap();
    let bytes = Package::build(&manifest, &component("word_count_rust"), Some(&key)).unwrap();
    let package = Package::parse(&bytes).unwrap();
    let trust = TrustStore::from_config(&[key.public().to_hex()]).unwrap();
    package.check_trust(&trust, false).unwrap();
    let plugin = rt
        .load(
            package.manifest.clone(),
            Arc::new(package.component.clone()),
            Permissions::default(),
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert!(
        call(
            &rt,
            &plugin,
            "word_count_rust",
            r#"{"text":"x"}"#,
            &CallContext::default()
        )
        .await
        .is_ok()
    );

    // One flipped byte in the middle of the component.
    let mut tampered = bytes.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x40;
    assert!(Package::parse(&tampered).is_err());
}

/// A one-shot HTTP server on a loopback port answering `body`.
async fn serve_once(body: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    port
}

#[tokio::test]
async fn network_grants_are_enforced_after_dns() {
    let rt = runtime(Ceilings::default());
    let manifest = rt
        .complete_manifest(author_manifest("plugins/web_fetch"), component("web_fetch"))
        .await
        .unwrap();
    let port = serve_once("hello from loopback").await;
    let url = |host: &str, port: u16| {
        serde_json::json!({ "url": format!("http://{host}:{port}/") }).to_string()
    };
    let ctx = CallContext::default();
    let load_granting = |network: Vec<String>| {
        let (rt, manifest) = (rt.clone(), manifest.clone());
        async move {
            let granted = Permissions {
                network,
                ..Default::default()
            };
            rt.load(manifest, component("web_fetch"), granted, BTreeMap::new())
                .await
                .unwrap()
        }
    };
    let refused = |err: &InvokeError, why: &str| matches!(err, InvokeError::PermissionDenied(m) if m.contains(why));

    // Granted "*": any public host on the scheme's default port; loopback
    // stays refused, by IP or by name, and other ports are not granted.
    let plugin = load_granting(vec!["*".into()]).await;
    for host in ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"] {
        let err = call(&rt, &plugin, "web_fetch", &url(host, 80), &ctx)
            .await
            .unwrap_err();
        assert!(refused(&err, "loopback"), "{host}: {err}");
        let err = call(&rt, &plugin, "web_fetch", &url(host, port), &ctx)
            .await
            .unwrap_err();
        assert!(refused(&err, "not among"), "{host}: {err}");
    }

    // Granted a host name resolving to loopback, even with the right port:
    // refused (the vendor-hostname-pointing-at-127.0.0.1 attack).
    let plugin = load_granting(vec!["localhost".into(), format!("localhost:{port}")]).await;
    for port in [80, port] {
        let err = call(&rt, &plugin, "web_fetch", &url("localhost", port), &ctx)
            .await
            .unwrap_err();
        assert!(
            refused(&err, "resolves to") && refused(&err, "loopback"),
            "{err}"
        );
    }

    // Granted this literal IP and port: allowed, even though it is loopback...
    let plugin = load_granting(vec![format!("127.0.0.1:{port}")]).await;
    let out = call(&rt, &plugin, "web_fetch", &url("127.0.0.1", port), &ctx)
        .await
        .unwrap();
    assert!(out.contains("hello from loopback"), "{out}");
    // ...but no other port of it, and nothing else.
    let err = call(
        &rt,
        &plugin,
        "web_fetch",
        &url("127.0.0.1", port.wrapping_add(1)),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(refused(&err, "not among"), "{err}");
    let err = call(
        &rt,
        &plugin,
        "web_fetch",
        r#"{"url":"http://example.com/"}"#,
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(refused(&err, "not among"), "{err}");

    // The embedder's own address is refused whatever the grant.
    rt.deny_addresses([std::net::SocketAddr::from(([127, 0, 0, 1], port))]);
    let err = call(&rt, &plugin, "web_fetch", &url("127.0.0.1", port), &ctx)
        .await
        .unwrap_err();
    assert!(refused(&err, "the daemon itself"), "{err}");
    rt.deny_addresses([]);

    // Granted nothing.
    let plugin = load_granting(Vec::new()).await;
    let err = call(&rt, &plugin, "web_fetch", &url("127.0.0.1", port), &ctx)
        .await
        .unwrap_err();
    assert!(refused(&err, "no network access"), "{err}");
}

/// Slots that keep pages between calls (`PoolRetention`) reset them to the
/// component's image: with two slots in all, shared by two plugins, every
/// call still answers exactly, whether its slot last served the same plugin
/// or the other, and whether the previous call wrote more than was kept.
#[tokio::test]
async fn slots_keeping_pages_start_every_call_afresh() {
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(common::root().join("target/component-cache-tests")),
        max_instances: 2,
        retention: talon_runtime::PoolRetention {
            memory_keep_resident: 1 << 20,
            table_keep_resident: 1 << 20,
            warm_slots: 1,
        },
        ..Default::default()
    })
    .unwrap();
    let words = load(&rt, "examples/plugins/rust", "word_count_rust").await;
    let hostile = load(&rt, "tests/plugins/hostile", "hostile").await;
    let ctx = CallContext::default();
    for round in 0..20u64 {
        let text = "w ".repeat(round as usize + 1);
        let args = serde_json::json!({ "text": text }).to_string();
        let calls = async {
            let counted = call(&rt, &words, "word_count_rust", &args, &ctx).await;
            let allocated = call(&rt, &hostile, "alloc", r#"{"mb":3}"#, &ctx).await;
            (counted, allocated)
        };
        let echo = format!(r#"{{"round":{round}}}"#);
        let ((counted, allocated), echoed) =
            tokio::join!(calls, call(&rt, &hostile, "echo", &echo, &ctx));
        let counted: serde_json::Value = serde_json::from_str(&counted.unwrap()).unwrap();
        assert_eq!(counted["words"], round + 1, "round {round}");
        assert_eq!(allocated.unwrap(), "3", "round {round}");
        let echoed: serde_json::Value = serde_json::from_str(&echoed.unwrap()).unwrap();
        assert_eq!(echoed["round"], round, "round {round}");
    }
}
