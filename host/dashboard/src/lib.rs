//! Talon's web dashboard: the files Vite builds from `dashboard/`, embedded
//! in the binary by this crate's build script (see `build.rs` for how a
//! build without `npm` behaves), so the daemon needs nothing at run time.
//!
//! A separate crate so that only it re-runs the front-end build when
//! `dashboard/` changes. The API crate serves [`FILES`]; this crate knows
//! nothing of HTTP beyond content types.

/// One embedded file of the built dashboard.
#[derive(Debug, Clone, Copy)]
pub struct File {
    /// Its path as served, from the root: `/index.html`, `/assets/index-<hash>.js`.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// Its gzip encoding, when that is smaller.
    pub gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/files.rs"));

/// The file served at `path`, if one was built.
pub fn file(path: &str) -> Option<&'static File> {
    FILES.iter().find(|f| f.path == path)
}

/// The single page every client-side route loads.
pub fn index() -> &'static File {
    file("/index.html").expect("the build always writes index.html")
}

/// Whether `path` is one of the dashboard's pages or assets, which anyone
/// may load without the API key: they hold no data, and the key is asked
/// for by the page itself.
pub fn is_public(path: &str) -> bool {
    path == "/" || path.starts_with("/assets/") || PAGES.contains(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_pages_are_there() {
        assert!(index().content_type.starts_with("text/html"));
        assert!(is_public("/"));
        assert!(is_public("/assets/index-abc.js"));
        assert!(!is_public("/api/status"));
        assert!(!is_public("/mcp"));
        for page in PAGES {
            assert!(page.starts_with('/') && !page.starts_with("/api"), "{page}");
        }
    }

    #[test]
    fn assets_are_content_hashed() {
        for f in FILES.iter().filter(|f| f.path.starts_with("/assets/")) {
            // Vite names them name-<hash>.ext; the cache headers rely on it.
            let stem = f.path.rsplit('/').next().unwrap_or("");
            assert!(stem.contains('-'), "{} has no hash", f.path);
        }
    }
}
