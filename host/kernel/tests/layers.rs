//! The kernel's domains depend on each other one way: this test reads every
//! source file, collects the `crate::` paths each top-level module uses, and
//! fails on an import that points up the layer table (see `src/lib.rs`) or
//! on any import circle between top-level modules.
//!
//! It reads paths as written (`use crate::agents::Agents`,
//! `crate::store::audit::append_in(..)`, `use crate::{a, b}`), which is how
//! every cross-module reference in the kernel is spelled: `super::` never
//! leaves a domain's folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and its layer; a module may use modules of its own
/// layer or below, never above.
const LAYERS: &[(&str, u8)] = &[
    // Foundation.
    ("error", 0),
    ("clock", 0),
    ("home", 0),
    ("config", 0),
    ("store", 0),
    ("events", 0),
    ("shared", 0),
    // Domains.
    ("agents", 1),
    ("webhooks", 1),
    ("plugins", 2),
    ("providers", 2),
    ("mcp", 2),
    ("approvals", 2),
    ("a2a", 2),
    ("conversation", 3),
    ("automation", 4),
    ("channels", 4),
    ("hands", 4),
    // Composition.
    ("kernel", 5),
];

/// Names the crate root re-exports, and the module each comes from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[("KernelError", "error"), ("Kernel", "kernel")];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`src/agents/records.rs`
/// is `agents`, `src/events.rs` is `events`); `None` for `lib.rs`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib").then_some(name)
}

/// The top-level modules named by `crate::` paths in `text`, outside
/// comments (a doc link to a type above is not a dependency).
fn used_modules(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut used = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c}`: the first segment of each item.
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .map(|item| item.trim().split("::").next().unwrap_or(""))
                .collect()
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            vec![&rest[..end]]
        };
        for name in names {
            let name = name.trim();
            if name.is_empty() || name == "self" {
                continue;
            }
            let module = ROOT_REEXPORTS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(name, |(_, m)| *m);
            used.insert(module.to_string());
        }
    }
    used
}

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("module `{module}` is not in the layer table of tests/layers.rs"))
}

#[test]
fn kernel_modules_depend_one_way_without_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for used in used_modules(&text) {
            if used == module {
                continue;
            }
            if layer(&used) > layer(&module) {
                upward.push(format!(
                    "{} uses crate::{used} (layer {} uses layer {})",
                    file.strip_prefix(&src).unwrap_or(file).display(),
                    layer(&module),
                    layer(&used)
                ));
            }
            edges.entry(module.clone()).or_default().insert(used);
        }
    }
    assert!(
        upward.is_empty(),
        "imports pointing up:\n{}",
        upward.join("\n")
    );

    // A depth-first search for a cycle among all top-level modules.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", cycle.join(" -> "));
        }
    }
    // Every layer-table entry is a real module, so the table stays true.
    for (module, _) in LAYERS {
        assert!(
            src.join(format!("{module}.rs")).exists() || src.join(module).join("mod.rs").exists(),
            "the layer table names `{module}`, which is not a module of src/"
        );
    }
}

#[test]
fn the_import_reader_sees_every_form() {
    let text = "use crate::{KernelError, agents::Agents};\nuse crate::store::audit;\n/// [`crate::kernel::Kernel`]\nlet x = crate::events::Event::Audit;";
    let used = used_modules(text);
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        vec!["agents", "error", "events", "store"]
    );
}
