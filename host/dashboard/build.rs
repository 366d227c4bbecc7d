//! Builds the dashboard (`dashboard/`, Vite + Preact) into `OUT_DIR/dist`
//! and writes the table `src/lib.rs` includes: every built file with its
//! content type and, when it is smaller that way, its gzip encoding.
//!
//! One way to build: `cargo build` runs `npm ci` (when `node_modules` is
//! missing or older than `package-lock.json`) and `npm run build` whenever
//! the dashboard's sources change, so `scripts/run`, `scripts/test` and a
//! plain `cargo build` embed the same thing. Without `npm` on the PATH the
//! binary still builds (the API is the product; the dashboard is one of its
//! clients) and embeds a one-page notice saying how to build it; a
//! `cargo:warning` says so at build time, and the browser tests fail on it.
//! `TALON_DASHBOARD_REQUIRED=1` turns the missing `npm` into a build error.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("host/dashboard sits two levels below the workspace root")
        .to_path_buf();
    let source = root.join("dashboard");
    let out_dir = PathBuf::from(env("OUT_DIR"));
    // Not dashboard/dist or node_modules: only what a person edits.
    for watched in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.js",
    ] {
        println!("cargo:rerun-if-changed={}", source.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=TALON_DASHBOARD_REQUIRED");

    let pages = pages(&source.join("src/pages.json"));
    let dist = out_dir.join("dist");
    let built = if npm_available() {
        build(&source, &dist);
        true
    } else if std::env::var_os("TALON_DASHBOARD_REQUIRED").is_some_and(|v| v == "1") {
        panic!(
            "npm is not on the PATH and TALON_DASHBOARD_REQUIRED=1: install Node.js 20+ with npm to build the dashboard"
        );
    } else {
        println!(
            "cargo:warning=npm not found: the dashboard is not built; GET / serves a notice. Install Node.js 20+ with npm and rebuild."
        );
        write_notice(&dist);
        false
    };

    // Gzip copies of an earlier build would pile up otherwise.
    let _ = std::fs::remove_dir_all(out_dir.join("gz"));
    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "/// Whether the real dashboard was built (not the notice)."
    );
    let _ = writeln!(table, "pub const BUILT: bool = {built};");
    let _ = writeln!(
        table,
        "/// Client-side routes (from dashboard/src/pages.json)."
    );
    let _ = writeln!(table, "pub static PAGES: &[&str] = &{pages:?};");
    let _ = writeln!(table, "/// Every built file.");
    let _ = writeln!(table, "pub static FILES: &[File] = &[");
    for relative in &files {
        let path = dist.join(relative);
        let body = std::fs::read(&path).expect("a file just listed is readable");
        let gzip = gzip(&body);
        let gzip_expr = if gzip.len() < body.len() {
            let gz_path = out_dir.join("gz").join(format!("{relative}.gz"));
            std::fs::create_dir_all(gz_path.parent().expect("has a parent"))
                .expect("cannot write to OUT_DIR");
            std::fs::write(&gz_path, &gzip).expect("cannot write to OUT_DIR");
            format!("Some(include_bytes!({:?}))", gz_path.display().to_string())
        } else {
            "None".to_string()
        };
        let _ = writeln!(
            table,
            "    File {{ path: {:?}, content_type: {:?}, body: include_bytes!({:?}), gzip: {gzip_expr} }},",
            format!("/{relative}"),
            content_type(relative),
            path.display().to_string(),
        );
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("files.rs"), table).expect("cannot write to OUT_DIR");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

/// The page paths, shared with the client's router so both know the same list.
fn pages(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    value
        .as_array()
        .unwrap_or_else(|| panic!("{} is not an array", path.display()))
        .iter()
        .map(|page| {
            page.get("path")
                .and_then(|p| p.as_str())
                .unwrap_or_else(|| panic!("a page in {} has no path", path.display()))
                .to_string()
        })
        .collect()
}

fn npm_available() -> bool {
    Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(source: &Path, args: &[&str]) {
    let output = Command::new("npm")
        .args(args)
        .current_dir(source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm {}: {e}", args.join(" ")));
    if !output.status.success() {
        panic!(
            "npm {} failed in {}:\n{}\n{}",
            args.join(" "),
            source.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn build(source: &Path, dist: &Path) {
    let marker = source.join("node_modules/.package-lock.json");
    let lock = source.join("package-lock.json");
    let stale = match (modified(&marker), modified(&lock)) {
        (Some(installed), Some(locked)) => installed < locked,
        _ => true,
    };
    if stale {
        run(source, &["ci", "--no-audit", "--no-fund"]);
    }
    let out = dist.display().to_string();
    run(
        source,
        &["run", "build", "--", "--outDir", &out, "--emptyOutDir"],
    );
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn write_notice(dist: &Path) {
    // Only the notice: no assets of an earlier build beside it.
    let _ = std::fs::remove_dir_all(dist);
    std::fs::create_dir_all(dist).expect("cannot write to OUT_DIR");
    std::fs::write(
        dist.join("index.html"),
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Talon</title></head>\n\
         <body><h1>Talon</h1><p>The daemon is running, but this binary was built without its dashboard \
         because <code>npm</code> was not on the PATH. Install Node.js 20 or later with npm and run \
         <code>cargo build</code> again. The API answers at <a href=\"/api/status\">/api/status</a>.</p></body></html>\n",
    )
    .expect("cannot write to OUT_DIR");
}

fn collect(base: &Path, dir: &Path, files: &mut Vec<String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(base, &path, files);
        } else {
            let relative = path
                .strip_prefix(base)
                .expect("under base")
                .to_string_lossy()
                .replace('\\', "/");
            files.push(relative);
        }
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
