//! Tidy checks over the source tree, as ordinary tests: rules the compiler
//! cannot enforce but reviewers would otherwise have to.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn kernel_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join("kernel/src"), &mut files);
    files.sort();
    files
}

/// Lines that open an `unsafe` block (not `unsafe fn`, `unsafe impl`,
/// `unsafe extern`, or attributes like `#[unsafe(no_mangle)]`).
fn unsafe_block_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            code.contains("unsafe {") || code.trim_end().ends_with("unsafe")
        })
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn every_unsafe_block_says_why_it_is_sound() {
    let mut missing = Vec::new();
    let mut blocks = 0;
    for file in kernel_files() {
        let text = fs::read_to_string(&file).expect("readable source");
        let lines: Vec<&str> = text.lines().collect();
        for at in unsafe_block_lines(&text) {
            blocks += 1;
            let window = &lines[at.saturating_sub(6)..=at];
            if !window.iter().any(|l| l.contains("SAFETY:")) {
                missing.push(format!("{}:{}", file.display(), at + 1));
            }
        }
    }
    assert!(
        blocks > 20,
        "the scan found only {blocks} unsafe blocks: the detector is broken"
    );
    assert!(
        missing.is_empty(),
        "unsafe blocks without a `// SAFETY:` comment:\n{}",
        missing.join("\n")
    );
}

#[test]
fn unsafe_code_stays_in_the_low_layers() {
    // arch/ and entry/ by design; boot/ reads loader structures and mm/ owns
    // the page tables, so they may too. Scenarios, harness and console may not.
    let allowed = ["arch", "entry", "boot", "mm"];
    let src = root().join("kernel/src");
    let mut offenders = Vec::new();
    for file in kernel_files() {
        let rel = file.strip_prefix(&src).expect("under kernel/src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("");
        if allowed.contains(&top) {
            continue;
        }
        let text = fs::read_to_string(&file).expect("readable source");
        if !unsafe_block_lines(&text).is_empty() {
            offenders.push(rel.display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "unsafe blocks outside arch/entry/boot/mm: {offenders:?}"
    );
}

#[test]
fn every_scenario_file_is_declared_and_registers_a_test() {
    let dir = root().join("kernel/src/scenarios");
    let module = fs::read_to_string(dir.join("mod.rs")).expect("scenarios/mod.rs");
    let mut problems = Vec::new();
    for entry in fs::read_dir(&dir).expect("scenarios dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        if name == "mod" || name == "common" || path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        if !module.contains(&format!("mod {name};")) {
            problems.push(format!("{name}: not declared in scenarios/mod.rs"));
        }
        let text = fs::read_to_string(&path).expect("readable source");
        if !text.contains("testkit::test!") && !text.contains("empty_tests!") {
            problems.push(format!("{name}: registers no test"));
        }
    }
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn test_names_are_unique() {
    let mut seen = BTreeSet::new();
    let mut duplicates = Vec::new();
    for file in kernel_files() {
        let text = fs::read_to_string(&file).expect("readable source");
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("name: \"") else {
                continue;
            };
            let name = rest.split('"').next().unwrap_or("").to_string();
            if !seen.insert(name.clone()) {
                duplicates.push(name);
            }
        }
    }
    assert!(
        duplicates.is_empty(),
        "test names registered twice: {duplicates:?}"
    );
}
