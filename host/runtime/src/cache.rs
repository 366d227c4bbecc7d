//! Compiled components on disk, so a restart does not recompile.
//!
//! A file is named after the component's SHA-256 and the engine's
//! compatibility hash (wasmtime version, target and the settings that shape
//! code), so a new wasmtime or different settings miss the cache instead of
//! loading incompatible code.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::LoadError;

/// The compiled-component cache of one engine.
pub(crate) struct Cache {
    dir: PathBuf,
    engine_key: String,
}

impl Cache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        // DefaultHasher::new() uses fixed keys: the same engine gives the same
        // key in every process.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn path_for(&self, component: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(component));
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// Where the compiled `component` is cached, and the cached component if
    /// it is there and usable (an unusable file is removed, to be compiled
    /// again).
    pub fn cached(
        &self,
        engine: &Engine,
        component: &[u8],
    ) -> Result<(PathBuf, Option<Component>), LoadError> {
        let path = self.path_for(component);
        if !path.exists() {
            return Ok((path, None));
        }
        match self.map(engine, &path) {
            Ok(compiled) => Ok((path, Some(compiled))),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached component");
                let _ = std::fs::remove_file(&path);
                Ok((path, None))
            }
        }
    }

    /// Removes the cached build of `component`, if any (a failure only
    /// leaves a file that is never read again).
    pub fn remove(&self, component: &[u8]) {
        let path = self.path_for(component);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a cached component");
        }
    }

    /// Maps a compiled component from a file of this cache.
    pub fn map(&self, engine: &Engine, path: &Path) -> Result<Component, LoadError> {
        // SAFETY: the file is in the daemon's own data directory, named after
        // the SHA-256 of bytes the daemon verified and the engine's
        // compatibility hash, and written only by `store` below or by the
        // compiler process (`compiler.rs`) from those bytes with this
        // engine's configuration; wasmtime still checks its header.
        unsafe { Component::deserialize_file(engine, path) }
            .map_err(|e| LoadError::Compile(format!("cannot map {}: {e:#}", path.display())))
    }

    /// The compiled component, from the cache when possible, else compiled
    /// in this process and cached. Returns whether it was a cache hit.
    pub fn load(&self, engine: &Engine, component: &[u8]) -> Result<(Component, bool), LoadError> {
        let (path, hit) = self.cached(engine, component)?;
        if let Some(compiled) = hit {
            return Ok((compiled, true));
        }
        let compiled =
            Component::new(engine, component).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        if let Err(e) = self.store(&path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "could not cache the compiled component");
            return Ok((compiled, false));
        }
        // Used from the file just written, like after a restart: the code is
        // then mapped from the file (paged in as it runs, shared with the
        // page cache) instead of held in the heap the compiler filled.
        match self.map(engine, &path) {
            Ok(mapped) => Ok((mapped, false)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot map the component just cached");
                Ok((compiled, false))
            }
        }
    }

    fn store(&self, path: &Path, compiled: &Component) -> Result<(), LoadError> {
        let bytes = compiled
            .serialize()
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        publish(path, &bytes).map_err(|e| LoadError::io(path, e))
    }
}

/// Writes `bytes` to `path` so that no reader ever sees a partial file and
/// no file someone has mapped is ever changed: into a new temporary file of
/// its own (a unique name, created exclusively), synced, then renamed over
/// `path`. A file mapped by `Component::deserialize_file` must never shrink
/// (the process would die of SIGBUS); a shared temporary name let one
/// writer truncate the file another had just renamed into place and mapped,
/// when several loads of one component raced on a cold cache.
pub(crate) fn publish(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::Builder::new()
        .prefix(".compiling-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.as_file().sync_all()?;
    // On failure the temporary file is removed when dropped.
    file.persist(path).map(drop).map_err(|e| e.error)
}
