//! No circle inside a layer either: modules (files) that import each other,
//! directly or around a ring, are one idea split in two, or two ideas tied
//! together. A module's edges to its own ancestors and descendants are the
//! module tree itself (`super::` from a child, `mod.rs` using its children)
//! and do not count.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{module_path, named_from};

/// Each circle of modules, as a path that starts and ends at the same
/// module (`entry::a -> entry::b -> entry::a`); one per tangle.
pub fn cycles(files: &[(String, String)]) -> Vec<Vec<String>> {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(rel, _)| module_path(rel)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files {
        let from = module_path(rel);
        for path in named_from(rel, text) {
            let Some(to) = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p))
            else {
                continue;
            };
            if to.starts_with(&from) || from.starts_with(&to) {
                continue;
            }
            graph
                .entry(from.join("::"))
                .or_default()
                .insert(to.join("::"));
        }
    }
    let mut found = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for start in graph.keys() {
        if seen.contains(start) {
            continue;
        }
        if let Some(cycle) = shortest_cycle(&graph, start) {
            seen.extend(cycle.iter().cloned());
            found.push(cycle);
        }
    }
    found
}

/// The shortest way from `start` back to itself, if there is one.
fn shortest_cycle(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                // Walk back from `at` to `start`, then read it forwards.
                let mut back = Vec::new();
                let mut step = at;
                while step != start {
                    back.push(step.to_string());
                    step = came_from[step];
                }
                let mut cycle = vec![start.to_string()];
                cycle.extend(back.into_iter().rev());
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if !came_from.contains_key(next.as_str()) {
                came_from.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    None
}
