//! The kernel's layers: every module imports only from the layers below it.
//! This test reads every `crate::` path in `kernel/src` (in `use` lines and
//! in code, grouped imports included; bare paths in `main.rs`, which is the
//! crate root; `super::` paths that climb to the root) and rejects an edge
//! that points up or sideways to a module without a layer. The order and
//! what each layer holds: `docs/architecture.md`.

use std::collections::BTreeMap;
use std::fs;

#[path = "layering/cycles.rs"]
mod cycles;
#[path = "layering/paths.rs"]
mod paths;

use paths::{code_of, ident_at, paths_after};

#[path = "common/mod.rs"]
mod common;

/// Bottom first. A module may import from the modules before it only.
/// `main` is the crate root (`kernel_main`, the panic handler); `boot` holds
/// the doors, which run first but sit on top: they fill a `BootInfo` (an arch
/// type) and call `kernel_main`.
const LAYERS: &[&str] = &[
    "arch",
    "cmdline",
    "mm",
    "console",
    "report",
    "entry",
    "watchdog",
    "inject",
    "scenarios",
    "harness",
    "main",
    "boot",
];

const ROOT: &str = "main";

/// One import: which file, which module it is in, which module it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    file: String,
    from: String,
    to: String,
}

/// The module a file defines, as a path from the crate root: `main.rs` is the
/// root (empty), `entry/mod.rs` is `entry`, `entry/checker/shadow.rs` is
/// `entry::checker::shadow`.
fn module_path(rel: &str) -> Vec<String> {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if rel == "main.rs" || parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level module (layer) a file belongs to.
fn layer_of(rel: &str) -> String {
    module_path(rel)
        .first()
        .cloned()
        .unwrap_or_else(|| ROOT.to_string())
}

/// Every path one file names, from the crate root: `crate::` paths,
/// `super::` paths made absolute, and in the crate root the bare paths that
/// start with a layer's name.
fn named_from(rel: &str, text: &str) -> Vec<Vec<String>> {
    let code = code_of(text);
    let module = module_path(rel);
    let mut named = paths_after(&code, "crate::");
    for chain in paths_after(&code, "super::") {
        let ups = 1 + chain.iter().take_while(|s| *s == "super").count();
        let Some(base) = module.len().checked_sub(ups) else {
            continue;
        };
        let mut path = module[..base].to_vec();
        path.extend(chain.into_iter().skip(ups - 1));
        named.push(path);
    }
    if module.is_empty() {
        for layer in LAYERS {
            for mut path in paths_after(&code, &format!("{layer}::")) {
                path.insert(0, layer.to_string());
                named.push(path);
            }
        }
    }
    named.retain(|p| !p.is_empty());
    named
}

/// Root items that are not modules: exported macros live in the file that
/// defines them, functions of `main.rs` in the root.
fn root_items(files: &[(String, String)]) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    for (rel, text) in files {
        let module = layer_of(rel);
        let code = code_of(text);
        let mut exported = false;
        for line in code.lines().map(str::trim) {
            if line.starts_with("#[macro_export]") {
                exported = true;
            } else if let Some(rest) = line.strip_prefix("macro_rules!") {
                if exported {
                    items.insert(ident_at(rest.trim()).to_string(), module.clone());
                }
                exported = false;
            } else if module == ROOT
                && let Some(rest) = line
                    .strip_prefix("pub fn ")
                    .or_else(|| line.strip_prefix("fn "))
            {
                items.insert(ident_at(rest).to_string(), module.clone());
            }
        }
    }
    items
}

/// Every edge between two different top-level modules, and every name that
/// resolves to nothing known.
fn edges(files: &[(String, String)]) -> (Vec<Edge>, Vec<String>) {
    let items = root_items(files);
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    for (rel, text) in files {
        let from = layer_of(rel);
        for path in named_from(rel, text) {
            let head = &path[0];
            let to = if LAYERS.contains(&head.as_str()) {
                head.clone()
            } else if let Some(module) = items.get(head) {
                module.clone()
            } else {
                unknown.push(format!("{rel}: `crate::{head}` is no module with a layer"));
                continue;
            };
            if to != from {
                found.push(Edge {
                    file: rel.clone(),
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    (found, unknown)
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == module)
}

/// What is wrong with these files' imports; empty when every edge points down.
fn violations(files: &[(String, String)]) -> Vec<String> {
    let (found, mut problems) = edges(files);
    for (rel, _) in files {
        let module = layer_of(rel);
        if rank(&module).is_none() {
            problems.push(format!(
                "{rel}: module `{module}` has no layer (add it to LAYERS and docs/architecture.md)"
            ));
        }
    }
    for edge in &found {
        if let (Some(from), Some(to)) = (rank(&edge.from), rank(&edge.to))
            && to > from
        {
            problems.push(format!(
                "{}: `{}` imports `{}`, a layer above it",
                edge.file, edge.from, edge.to
            ));
        }
    }
    problems.extend(cycles::cycles(files).into_iter().map(|cycle| {
        format!(
            "modules import each other in a circle: {}",
            cycle.join(" -> ")
        )
    }));
    problems.sort();
    problems.dedup();
    problems
}

fn kernel_sources() -> Vec<(String, String)> {
    let src = common::root().join("kernel/src");
    common::rust_files("kernel/src")
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).expect("under kernel/src");
            let rel = rel.to_string_lossy().replace('\\', "/");
            let text = fs::read_to_string(&path).expect("readable source");
            (rel, text)
        })
        .collect()
}

#[test]
fn kernel_modules_import_only_from_layers_below() {
    let files = kernel_sources();
    let (found, _) = edges(&files);
    assert!(
        files.len() > 30 && found.len() > 100,
        "the scan saw {} files and {} edges: the scanner is broken",
        files.len(),
        found.len()
    );
    let problems = violations(&files);
    assert!(
        problems.is_empty(),
        "imports against the layer order {LAYERS:?}:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_layer_is_a_module_of_the_kernel() {
    let files = kernel_sources();
    let missing: Vec<&&str> = LAYERS
        .iter()
        .filter(|layer| !files.iter().any(|(rel, _)| layer_of(rel) == **layer))
        .collect();
    assert!(missing.is_empty(), "layers with no module: {missing:?}");
}

/// Small trees that show each rule failing (and passing).
#[cfg(test)]
#[path = "layering/fixtures.rs"]
mod fixtures;
