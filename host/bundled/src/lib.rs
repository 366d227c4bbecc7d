//! The plugins Talon ships: every first-party plugin under `plugins/`,
//! built for `wasm32-wasip2` by this crate's build script and embedded in
//! the binary with its `talon.toml` and the SHA-256 of its component.
//!
//! A separate crate so that only it re-runs the nested plugin build and
//! re-embeds the components when `plugins/`, `sdk/rust/` or `wit/` change;
//! the kernel stays free of build steps and is handed [`PLUGINS`] by the
//! binary.

/// One embedded plugin.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    /// The plugin's name (its `talon.toml`'s `name`).
    pub name: &'static str,
    /// Its `talon.toml`, as written in the repository.
    pub manifest: &'static str,
    /// Its WebAssembly component.
    pub component: &'static [u8],
    /// Hex SHA-256 of `component`, computed when the binary was built.
    pub sha256: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_first_party_plugin_is_embedded() {
        let mut names: Vec<&str> = PLUGINS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "file_list",
                "file_read",
                "file_write",
                "toolbox",
                "web_fetch"
            ]
        );
        for plugin in PLUGINS {
            assert!(plugin.component.starts_with(b"\0asm"), "{}", plugin.name);
            assert_eq!(plugin.sha256.len(), 64, "{}", plugin.name);
            assert!(
                plugin
                    .manifest
                    .contains(&format!("name = \"{}\"", plugin.name))
            );
        }
    }
}
