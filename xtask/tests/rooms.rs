//! xtask's rooms, held: every module lives in one of the five rooms of
//! `src/main.rs`, imports run down the room order only, one subcommand never
//! imports another, and the module graph has no cycle.
//!
//! The check reads the `crate::` and `super::` paths of every source file (use
//! trees with nested braces included, comments skipped; `super` counted from
//! the module the code is in, a test module included) and resolves each to the
//! longest module it names. Edges between a module and its own ancestors (a
//! child using its parent, a `mod.rs` using its children) are the module tree
//! itself and are not counted; neither are uses of the crate root's own items
//! (`crate::root()`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

#[path = "common/mod.rs"]
mod common;

/// The rooms, highest first: a room may import the rooms after it.
const ROOMS: [&str; 5] = ["cmd", "runner", "media", "qemu", "report"];

/// Modules of `cmd` that every subcommand may import: the shared options, and
/// the set-up that `run` and `test` do first.
const CMD_SHARED: [&str; 2] = ["cmd::opts", "cmd::setup"];

/// One `crate::` path and where it was written.
struct Edge {
    from: String,
    to: String,
    file: String,
    line: usize,
}

/// The module a source file defines: `a/b.rs` and `a/b/mod.rs` are `a::b`,
/// `main.rs` the root (""), and `a/x_tests.rs` (a `#[path]` test module) `a::x`.
fn module_of(rel: &str) -> String {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<&str> = stem.split('/').collect();
    if matches!(parts.last(), Some(&"mod") | Some(&"main")) {
        parts.pop();
    }
    let mut module = parts.join("::");
    if let Some(base) = module.strip_suffix("_tests") {
        module = base.to_string();
    }
    module
}

/// The code of a line, without its `//` comment.
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |at| &line[..at])
}

/// Splits code into identifiers and the punctuation a use tree needs.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
            continue;
        }
        if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
            continue;
        }
        if matches!(c, '{' | '}' | ',' | '*' | '$') {
            out.push(c.to_string());
        } else if !c.is_whitespace() {
            out.push(" ".into());
        }
        i += 1;
    }
    out
}

/// Reads a path or use tree at `at` (just after `crate::`), pushing every
/// full path it names onto `out`; returns the index after it.
fn tree(t: &[String], mut at: usize, prefix: &str, out: &mut Vec<String>) -> usize {
    let mut path = prefix.to_string();
    loop {
        match t.get(at).map(String::as_str) {
            Some("{") => {
                at += 1;
                while !matches!(t.get(at).map(String::as_str), Some("}") | None) {
                    at = tree(t, at, &path, out);
                    if t.get(at).map(String::as_str) == Some(",") {
                        at += 1;
                    }
                }
                return at + 1;
            }
            Some(word) if word.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                if word != "self" {
                    path = if path.is_empty() {
                        word.to_string()
                    } else {
                        format!("{path}::{word}")
                    };
                }
                at += 1;
                if t.get(at).map(String::as_str) == Some("::") {
                    at += 1;
                    continue;
                }
                if t.get(at).map(String::as_str) == Some("as") {
                    at += 2;
                }
                out.push(path);
                return at;
            }
            _ => {
                out.push(path);
                return at;
            }
        }
    }
}

/// Every `crate::` and `super::` path of a file, made absolute (from the
/// crate root), with its line. `base` is the module the file's code is in;
/// the code after `mod tests {` is one level deeper.
fn crate_paths(text: &str, base: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut scope: Vec<&str> = base.split("::").filter(|s| !s.is_empty()).collect();
    for (n, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("mod tests {") {
            scope.push("tests");
        }
        let first = code(line);
        if !first.contains("crate::") && !first.contains("super::") {
            continue;
        }
        // A use tree may run over several lines: read on to its end.
        let rest: String = lines[n..]
            .iter()
            .take(12)
            .map(|l| code(l))
            .collect::<Vec<_>>()
            .join("\n");
        let t = tokens(&rest);
        let here = tokens(first).len();
        let starts_path = |i: usize| i == 0 || !matches!(t[i - 1].as_str(), "::" | "$");
        let mut i = 0;
        while i + 1 < here {
            let mut paths = Vec::new();
            if t[i] == "crate" && t[i + 1] == "::" && starts_path(i) {
                i = tree(&t, i + 2, "", &mut paths);
            } else if t[i] == "super" && t[i + 1] == "::" && starts_path(i) {
                let mut ups = 0;
                while t.get(i) == Some(&"super".to_string())
                    && t.get(i + 1).map(String::as_str) == Some("::")
                {
                    ups += 1;
                    i += 2;
                }
                let prefix = scope[..scope.len().saturating_sub(ups)].join("::");
                i = tree(&t, i, &prefix, &mut paths);
            } else {
                i += 1;
            }
            found.extend(paths.into_iter().map(|p| (n + 1, p)));
        }
    }
    found
}

/// The longest module of `modules` that `path` starts with.
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn room(module: &str) -> Option<usize> {
    let top = module.split("::").next()?;
    ROOMS.iter().position(|r| *r == top)
}

fn is_ancestor(a: &str, b: &str) -> bool {
    a.is_empty() || b.starts_with(&format!("{a}::"))
}

/// The subcommand a `cmd` module belongs to (`cmd::test::pool` -> `cmd::test`).
fn subcommand(module: &str) -> Option<String> {
    let parts: Vec<&str> = module.split("::").collect();
    (parts.len() >= 2 && parts[0] == "cmd").then(|| parts[..2].join("::"))
}

/// Checks a source tree given as `(path under src/, text)`; returns every
/// violation as one line, and the number of edges it looked at.
fn check(files: &[(String, String)]) -> (Vec<String>, usize) {
    let modules: BTreeSet<String> = files.iter().map(|(rel, _)| module_of(rel)).collect();
    let mut problems = Vec::new();
    for module in &modules {
        if !module.is_empty() && room(module).is_none() {
            problems.push(format!(
                "module `{module}` is in no room: put it under one of {ROOMS:?} (see src/main.rs)"
            ));
        }
    }
    let mut edges = Vec::new();
    for (rel, text) in files {
        let from = module_of(rel);
        // A `#[path]` test file is the `tests` module inside `from`.
        let base = if rel.ends_with("_tests.rs") {
            format!("{from}::tests")
        } else {
            from.clone()
        };
        for (line, path) in crate_paths(text, &base) {
            let Some(to) = resolve(&path, &modules) else {
                continue;
            };
            if to.is_empty() || to == from || is_ancestor(&to, &from) || is_ancestor(&from, &to) {
                continue;
            }
            edges.push(Edge {
                from: from.clone(),
                to,
                file: rel.clone(),
                line,
            });
        }
    }
    for e in &edges {
        if let (Some(a), Some(b)) = (room(&e.from), room(&e.to))
            && b < a
        {
            problems.push(format!(
                "src/{}:{}: `{}` imports `{}`: room `{}` is above room `{}`",
                e.file, e.line, e.from, e.to, ROOMS[b], ROOMS[a]
            ));
        }
        if let (Some(a), Some(b)) = (subcommand(&e.from), subcommand(&e.to))
            && a != b
            && !CMD_SHARED
                .iter()
                .any(|s| e.to == *s || e.to.starts_with(&format!("{s}::")))
        {
            problems.push(format!(
                "src/{}:{}: subcommand `{a}` imports subcommand `{b}`: move what they share down",
                e.file, e.line
            ));
        }
    }
    problems.extend(cycles(&edges));
    (problems, edges.len())
}

/// One line per strongly connected component of more than one module.
fn cycles(edges: &[Edge]) -> Vec<String> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().insert(&e.to);
        graph.entry(&e.to).or_default();
    }
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(m) = todo.pop() {
            for &next in &graph[m] {
                if seen.insert(next) {
                    todo.push(next);
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&str, BTreeSet<&str>> = graph.keys().map(|&m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for &m in graph.keys() {
        if done.contains(m) || !reaches[m].contains(m) {
            continue;
        }
        let component: Vec<&str> = reaches[m]
            .iter()
            .copied()
            .filter(|other| reaches[other].contains(m))
            .collect();
        done.extend(component.iter().copied());
        out.push(format!("import cycle: {}", component.join(" <-> ")));
    }
    out
}

#[test]
fn xtask_imports_run_down_the_rooms_without_a_cycle() {
    let src = common::root().join("xtask/src");
    let files: Vec<(String, String)> = common::rust_files("xtask/src")
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).expect("under xtask/src");
            let text = fs::read_to_string(&path).expect("readable source");
            (rel.to_string_lossy().into_owned(), text)
        })
        .collect();
    let (problems, edges) = check(&files);
    assert!(
        edges > 100,
        "only {edges} imports found: the parser is broken"
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[path = "rooms/fixtures.rs"]
mod fixtures;
