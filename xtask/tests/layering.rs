//! The kernel's layers: every module imports only from the layers below it.
//! This test reads every `crate::` path in `kernel/src` (in `use` lines and
//! in code, grouped imports included; bare paths in `main.rs`, which is the
//! crate root; `super::` paths that climb to the root) and rejects an edge
//! that points up or sideways to a module without a layer. The order and
//! what each layer holds: `docs/architecture.md`.

use std::collections::BTreeMap;
use std::fs;

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

/// The top-level module a file belongs to, and how deep it sits
/// (`main.rs` 0, `foo.rs` and `foo/mod.rs` 1, `foo/bar.rs` 2).
fn module_of(rel: &str) -> (String, usize) {
    let parts: Vec<&str> = rel.split('/').collect();
    let top = parts[0].trim_end_matches(".rs").to_string();
    let depth = if parts.last() == Some(&"mod.rs") {
        parts.len() - 1
    } else {
        parts.len()
    };
    if rel == "main.rs" {
        (ROOT.to_string(), 0)
    } else {
        (top, depth)
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}

/// The code of a file without its `//` comments (doc comments included).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first names of the paths in a `{...}` group starting at `s` (just
/// after the brace): `{arch::cpu, harness}` gives `arch`, `harness`.
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 1;
    let mut expect_head = true;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            c if expect_head && depth == 1 && is_ident(c) => {
                let name = ident_at(&s[i..]);
                heads.push(name.to_string());
                expect_head = false;
                for _ in 1..name.len() {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    heads
}

/// Names that follow `prefix` where it starts a path (not after `::` or an
/// identifier), with `{...}` groups opened.
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            names.extend(group_heads(group));
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// Every `crate::` (and root-reaching `super::`) name in one file.
fn named_from(rel: &str, text: &str) -> Vec<String> {
    let code = code_of(text);
    let (_, depth) = module_of(rel);
    let mut names = names_after(&code, "crate::");
    if depth > 0 {
        names.extend(names_after(&code, &"super::".repeat(depth)));
    } else {
        // The crate root names its modules without `crate::`.
        for layer in LAYERS {
            let uses = names_after(&code, &format!("{layer}::")).len();
            names.extend(std::iter::repeat_n(layer.to_string(), uses));
        }
    }
    names
}

/// Root items that are not modules: exported macros live in the file that
/// defines them, functions of `main.rs` in the root.
fn root_items(files: &[(String, String)]) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    for (rel, text) in files {
        let (module, _) = module_of(rel);
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
        let (from, _) = module_of(rel);
        for name in named_from(rel, text) {
            let to = if LAYERS.contains(&name.as_str()) {
                name.clone()
            } else if let Some(module) = items.get(&name) {
                module.clone()
            } else {
                unknown.push(format!("{rel}: `crate::{name}` is no module with a layer"));
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
        let (module, _) = module_of(rel);
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
        .filter(|layer| !files.iter().any(|(rel, _)| module_of(rel).0 == **layer))
        .collect();
    assert!(missing.is_empty(), "layers with no module: {missing:?}");
}

/// Small trees that show each rule failing (and passing).
#[cfg(test)]
#[path = "layering/fixtures.rs"]
mod fixtures;
