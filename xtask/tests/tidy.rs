//! Tidy checks over the source tree, as ordinary tests: rules the compiler
//! cannot enforce but reviewers would otherwise have to.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

#[path = "common/mod.rs"]
mod common;

use common::{root, rust_files};

fn kernel_files() -> Vec<PathBuf> {
    rust_files("kernel/src")
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

/// Whether the comment block right above the statement holding `at` (blank
/// lines and code end the block) has a `// SAFETY:` line. The statement may
/// start a few lines up (`let x =` on its own line, attributes).
fn safety_comment_above(lines: &[&str], at: usize) -> bool {
    let mut line = at;
    // Climb to the statement's first line: lines that end without `;`, `{`,
    // `}` or `,` continue onto the next one.
    while line > 0 {
        let prev = lines[line - 1].trim();
        let continues = !prev.is_empty()
            && !prev.starts_with("//")
            && (prev.starts_with("#[") || !prev.ends_with([';', '{', '}', ',']));
        if !continues {
            break;
        }
        line -= 1;
    }
    lines[..line]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("//"))
        .any(|l| l.starts_with("// SAFETY:"))
}

#[test]
fn every_unsafe_block_says_why_it_is_sound_right_above_it() {
    let mut missing = Vec::new();
    let mut blocks = 0;
    for file in kernel_files() {
        let text = fs::read_to_string(&file).expect("readable source");
        let lines: Vec<&str> = text.lines().collect();
        for at in unsafe_block_lines(&text) {
            blocks += 1;
            if !safety_comment_above(&lines, at) {
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
        "unsafe blocks without a `// SAFETY:` comment right above them:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_safety_rule_wants_the_comment_right_above() {
    let ok = ["// SAFETY: x is valid.", "let v =", "    unsafe { *x };"];
    assert!(safety_comment_above(&ok, 2));
    let block = [
        "// SAFETY: both writes are to the PIC.",
        "// (more)",
        "unsafe {",
    ];
    assert!(safety_comment_above(&block, 2));
    let far = [
        "// SAFETY: x is valid.",
        "let y = 1;",
        "let v = unsafe { *x };",
    ];
    assert!(!safety_comment_above(&far, 2));
    let gap = ["// SAFETY: x is valid.", "", "let v = unsafe { *x };"];
    assert!(!safety_comment_above(&gap, 2));
    let none = ["// reads x", "let v = unsafe { *x };"];
    assert!(!safety_comment_above(&none, 1));
}

/// Top-level modules that may hold unsafe code: the CPU, the stubs, the
/// doors reading loader structures, the page tables. Every other module is
/// declared `#[forbid(unsafe_code)]` in `main.rs`, so the compiler refuses it.
const UNSAFE_ALLOWED: [&str; 4] = ["arch", "entry", "boot", "mm"];

#[test]
fn modules_outside_the_low_layers_forbid_unsafe_code() {
    let main = fs::read_to_string(root().join("kernel/src/main.rs")).expect("main.rs");
    let lines: Vec<&str> = main.lines().map(str::trim).collect();
    let mut checked = 0;
    let mut open = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line
            .strip_prefix("mod ")
            .and_then(|rest| rest.strip_suffix(';'))
        else {
            continue;
        };
        if UNSAFE_ALLOWED.contains(&name) {
            continue;
        }
        checked += 1;
        if i == 0 || lines[i - 1] != "#[forbid(unsafe_code)]" {
            open.push(name);
        }
    }
    assert!(
        checked > 3,
        "found {checked} modules to check in main.rs: the scan is broken"
    );
    assert!(
        open.is_empty(),
        "modules outside {UNSAFE_ALLOWED:?} without `#[forbid(unsafe_code)]` on their `mod` line: {open:?}"
    );
}

#[test]
fn every_scenario_file_is_declared_and_registers_a_test() {
    let dir = root().join("kernel/src/scenarios");
    let module = fs::read_to_string(dir.join("mod.rs")).expect("scenarios/mod.rs");
    let mut problems = Vec::new();
    let mut scenarios = 0;
    for entry in fs::read_dir(&dir).expect("scenarios dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        // mod.rs and the shared modules (evidence, aiming, sending) hold no test.
        if ["mod", "common", "aim", "sender"].contains(&name.as_str())
            || path.extension().is_none_or(|e| e != "rs")
        {
            continue;
        }
        scenarios += 1;
        if !module.contains(&format!("mod {name};")) {
            problems.push(format!("{name}: not declared in scenarios/mod.rs"));
        }
        let text = fs::read_to_string(&path).expect("readable source");
        if !text.contains("testkit::test!") && !text.contains("empty_tests!") {
            problems.push(format!("{name}: registers no test"));
        }
    }
    assert!(
        scenarios > 5,
        "found {scenarios} scenario files: the scan is broken"
    );
    assert!(problems.is_empty(), "{problems:?}");
}

/// A registration's name: given by hand (`name: "..."` first), or what
/// `testkit::test!` derives from the module path (`run:` first, or
/// `case: "..."` first for one of several tests in a file).
#[derive(Debug, PartialEq, Eq)]
enum Registered {
    ByHand(String),
    Derived(String),
}

/// The names the `testkit::test!` registrations in one kernel file give,
/// `rel` being the file's path under `kernel/src`. A name built by another
/// macro (`name: $name`) is not read.
fn registered_names(rel: &str, text: &str) -> Vec<Registered> {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let module = stem.strip_suffix("/mod").unwrap_or(stem).replace('/', "::");
    let quoted = |rest: &str| rest.split('"').next().unwrap_or("").to_string();
    text.split("testkit::test! {")
        .skip(1)
        .filter_map(|after| {
            let first = after.trim_start();
            if let Some(rest) = first.strip_prefix("name: \"") {
                Some(Registered::ByHand(quoted(rest)))
            } else if let Some(rest) = first.strip_prefix("case: \"") {
                Some(Registered::Derived(format!("{module}::{}", quoted(rest))))
            } else if first.starts_with("run:") {
                Some(Registered::Derived(module.clone()))
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn registered_names_are_read_as_test_names_them() {
    let text = "testkit::test! {\n    name: \"boot::x\",\n    run: f,\n}\n\
                testkit::test! { run: g }\ntestkit::test! {\n    case: \"tf\", run: h }\n\
                testkit::test! { name: $name, run: f }";
    assert_eq!(
        registered_names("scenarios/movss.rs", text),
        [
            Registered::ByHand("boot::x".into()),
            Registered::Derived("scenarios::movss".into()),
            Registered::Derived("scenarios::movss::tf".into()),
        ]
    );
}

#[test]
fn test_names_are_unique() {
    let src = root().join("kernel/src");
    let mut seen = BTreeSet::new();
    let mut duplicates = Vec::new();
    for file in kernel_files() {
        let text = fs::read_to_string(&file).expect("readable source");
        let rel = file.strip_prefix(&src).expect("under kernel/src");
        for registered in registered_names(&rel.to_string_lossy(), &text) {
            let (Registered::ByHand(name) | Registered::Derived(name)) = registered;
            if !seen.insert(name.clone()) {
                duplicates.push(name);
            }
        }
    }
    assert!(
        seen.len() > 20,
        "found {} test names: the scan is broken",
        seen.len()
    );
    assert!(
        duplicates.is_empty(),
        "test names registered twice: {duplicates:?}"
    );
}

/// No source file over this many lines: past it a file holds more than one
/// idea, and a reader loses the thread.
const MAX_LINES: usize = 400;

/// Files allowed over [`MAX_LINES`] for now, each with the reason. An entry
/// that is no longer needed fails the test, so the list only shrinks.
const LONG_FILES: [(&str, &str); 0] = [];

#[test]
fn no_source_file_is_over_the_line_limit() {
    let dirs = [
        "kernel/src",
        "testkit/src",
        "testkit/tests",
        "xtask/src",
        "xtask/tests",
    ];
    let files: Vec<PathBuf> = dirs.into_iter().flat_map(rust_files).collect();
    assert!(
        files.len() > 50,
        "found {} source files: the scan is broken",
        files.len()
    );
    let mut long = Vec::new();
    let mut allowed_but_short = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(root()).expect("in the workspace");
        let rel = rel.to_string_lossy().replace('\\', "/");
        let lines = fs::read_to_string(file)
            .expect("readable source")
            .lines()
            .count();
        let allowed = LONG_FILES.iter().any(|(path, _)| *path == rel);
        if lines > MAX_LINES && !allowed {
            long.push(format!("{rel}: {lines} lines"));
        }
        if lines <= MAX_LINES && allowed {
            allowed_but_short.push(rel);
        }
    }
    for (path, _) in LONG_FILES {
        assert!(
            root().join(path).exists(),
            "{path} is allow-listed but gone: remove it from LONG_FILES"
        );
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by idea):\n{}",
        long.join("\n")
    );
    assert!(
        allowed_but_short.is_empty(),
        "allow-listed files now within {MAX_LINES} lines: remove them from LONG_FILES: {allowed_but_short:?}"
    );
}

/// Whether a line cites a document a clone of this repository does not have:
/// the design brief or an issue tracker's numbers. Source cites `docs/`.
fn cites_outside(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    if lower.contains("design.md") {
        return true;
    }
    lower.match_indices("issue ").any(|(at, word)| {
        let rest = lower[at + word.len()..].trim_start_matches('#');
        rest.starts_with(|c: char| c.is_ascii_digit())
    })
}

#[test]
fn source_cites_docs_not_outside_documents() {
    assert!(cites_outside("//! The rules (DESIGN.md section 4)"));
    assert!(cites_outside("// issue 8's check, and Issue #12"));
    assert!(!cites_outside(
        "// an issue with the checker; see docs/verdicts.md"
    ));
    let dirs = ["kernel/src", "testkit/src", "testkit/tests", "xtask/src"];
    let files: Vec<PathBuf> = dirs.into_iter().flat_map(rust_files).collect();
    assert!(
        files.len() > 50,
        "found {} source files: the scan is broken",
        files.len()
    );
    let mut found = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("readable source");
        for (i, line) in text.lines().enumerate() {
            if cites_outside(line) {
                found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "source cites documents outside the repository (cite docs/ instead):\n{}",
        found.join("\n")
    );
}

/// Names given by hand are for tests whose name must differ from their file
/// (`selftest::`, `bench::`, the boot matrix's `boot::nmi_all_to_all`). A
/// scenario named `scenarios::...` by hand could drift from its file.
#[test]
fn scenario_names_come_from_their_file() {
    let src = root().join("kernel/src");
    let mut derived = 0;
    let mut by_hand = Vec::new();
    for file in rust_files("kernel/src/scenarios") {
        let text = fs::read_to_string(&file).expect("readable source");
        let rel = file.strip_prefix(&src).expect("under kernel/src");
        for registered in registered_names(&rel.to_string_lossy(), &text) {
            match registered {
                Registered::Derived(_) => derived += 1,
                Registered::ByHand(name) if name.starts_with("scenarios::") => {
                    by_hand.push(format!("{}: {name}", rel.display()));
                }
                Registered::ByHand(_) => {}
            }
        }
    }
    assert!(
        derived > 10,
        "found {derived} derived names: the scan is broken"
    );
    assert!(
        by_hand.is_empty(),
        "scenarios named by hand (start the registration with `run:`, or `case:` for one of several):\n{}",
        by_hand.join("\n")
    );
}
