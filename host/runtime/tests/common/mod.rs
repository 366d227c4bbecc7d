//! Helpers shared by the runtime's test files: the components built by
//! `scripts/build-plugins`, their manifests, and loading them.

// Each test file uses a different part of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use talon_runtime::{
    CallContext, Ceilings, InvokeError, Manifest, Permissions, Plugin, Runtime, RuntimeConfig,
};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn component(name: &str) -> Arc<Vec<u8>> {
    let path = root().join("target/plugins").join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the test components first with scripts/build-plugins",
            path.display()
        )
    });
    Arc::new(bytes)
}

pub fn author_manifest(dir: &str) -> Manifest {
    let text = std::fs::read_to_string(root().join(dir).join("talon.toml")).unwrap();
    Manifest::from_toml(&text).unwrap()
}

/// A runtime whose compiled components are cached under `target/`, so
/// only the first run compiles the large Python and JavaScript components.
pub fn runtime(ceilings: Ceilings) -> Runtime {
    runtime_with(ceilings, 128)
}

/// A runtime with `max_instances` slots in all.
pub fn runtime_with(ceilings: Ceilings, max_instances: u32) -> Runtime {
    let cache_dir = Some(root().join("target/component-cache-tests"));
    Runtime::new(RuntimeConfig {
        cache_dir,
        ceilings,
        max_instances,
        ..Default::default()
    })
    .unwrap()
}

/// Packs the way `talon plugin pack` does, then loads with every requested
/// permission granted.
pub async fn load(rt: &Runtime, dir: &str, name: &str) -> Plugin {
    let requested = author_manifest(dir).permissions;
    load_with(rt, dir, name, requested, |_| {}).await
}

/// Loads a repository plugin with `granted`, after `adjust` edits its
/// completed manifest.
pub async fn load_with(
    rt: &Runtime,
    dir: &str,
    name: &str,
    granted: Permissions,
    adjust: impl FnOnce(&mut Manifest),
) -> Plugin {
    let mut manifest = rt
        .complete_manifest(author_manifest(dir), component(name))
        .await
        .unwrap();
    adjust(&mut manifest);
    rt.load(manifest, component(name), granted, BTreeMap::new())
        .await
        .unwrap()
}

pub async fn call(
    rt: &Runtime,
    plugin: &Plugin,
    tool: &str,
    args: &str,
    ctx: &CallContext,
) -> Result<String, InvokeError> {
    rt.invoke(plugin, tool, args, ctx).await.result
}

/// Packs a repository plugin, then loads it with nothing granted and the
/// given settings; the load's own result (a skill's instructions are read
/// through the guard while loading).
pub async fn load_with_settings(
    rt: &Runtime,
    dir: &str,
    name: &str,
    settings: &[(&str, &str)],
) -> Result<Plugin, talon_runtime::LoadError> {
    let manifest = rt
        .complete_manifest(author_manifest(dir), component(name))
        .await
        .unwrap();
    let settings = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    rt.load(manifest, component(name), Permissions::default(), settings)
        .await
}
pub mod channel;

pub mod hand_host;
pub mod irc;
pub mod mail;
pub mod prosody;
pub mod tls;
