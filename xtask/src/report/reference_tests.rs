use super::*;

/// Every test name the kernel registers, read from the `testkit::test!`
/// registrations under kernel/src (the linker collects them; the source is
/// where a host test can see them without booting).
fn registered() -> Vec<String> {
    let src = crate::root().join("kernel/src");
    let mut names = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let rel = path
                    .strip_prefix(&src)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                names.extend(names_in(&module_of(&rel), &text));
            }
        }
    }
    names.sort();
    names
}

/// The module path of a kernel source file, as `module_path!()` gives it
/// without the crate: `scenarios/movss_user.rs` is `scenarios::movss_user`.
fn module_of(rel: &str) -> String {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    stem.replace('/', "::")
}

/// The names the registrations in one file give, in the macro's three
/// forms: `name: "a::b"`, `case: "c"` (the module's path and the case), or
/// neither (the module's path).
fn names_in(module: &str, text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if !line.starts_with("testkit::test!") {
            continue;
        }
        let first = lines.find(|l| !l.is_empty()).unwrap_or("");
        let quoted = |key: &str| {
            first
                .strip_prefix(key)
                .and_then(|rest| rest.split('"').nth(1))
                .map(str::to_string)
        };
        if let Some(name) = quoted("name:") {
            names.push(name);
        } else if let Some(case) = quoted("case:") {
            names.push(format!("{module}::{case}"));
        } else if first.starts_with("run:") {
            names.push(module.to_string());
        }
    }
    names
}

#[test]
fn every_registered_test_has_a_reference() {
    let names = registered();
    // A scan that finds nothing checks nothing: the descriptor syntax changed.
    assert!(
        names.iter().any(|n| n == "scenarios::db_kernel_nmi_db"),
        "no kernel test found under kernel/src: update `names_in` to the descriptor syntax"
    );
    let missing = missing(names.iter().map(String::as_str));
    assert!(
        missing.is_empty(),
        "kernel tests without a reference expectation in xtask/src/report/reference.rs: {}. \
         Add what silicon does for each hazard, with the source",
        missing.join(", ")
    );
}

#[test]
fn a_new_test_without_an_entry_is_named() {
    let text = "testkit::test! {\n    name: \"scenarios::brand_new\",\n    run: f,\n}\n\
                testkit::test! {\n    case: \"int3\",\n    run: f,\n}\n\
                testkit::test! {\n    run: f,\n}\n\
                testkit::test! {\n    name: \"selftest::x\",\n    run: f,\n}\n";
    let names = names_in(&module_of("scenarios/new_one.rs"), text);
    assert_eq!(
        names,
        [
            "scenarios::brand_new",
            "scenarios::new_one::int3",
            "scenarios::new_one",
            "selftest::x"
        ]
    );
    assert_eq!(module_of("scenarios/mod.rs"), "scenarios");
    assert_eq!(
        missing(names.iter().map(String::as_str)),
        [
            "scenarios::brand_new",
            "scenarios::new_one::int3",
            "scenarios::new_one"
        ]
    );
}

#[test]
fn every_entry_cites_a_source_and_is_unique() {
    for (i, r) in REFERENCES.iter().enumerate() {
        assert!(!r.sources.is_empty(), "{}", r.test);
        assert!(!r.silicon.is_empty() && !r.hazard.is_empty(), "{}", r.test);
        assert!(
            REFERENCES[..i].iter().all(|o| o.test != r.test),
            "{} twice",
            r.test
        );
    }
    for k in KNOWN {
        assert!(
            REFERENCES.iter().any(|r| r.test.starts_with(k.test)),
            "a known departure for no test: {}",
            k.test
        );
    }
}

#[test]
fn departures_match_by_name_or_family() {
    let tf = "scenarios::movss_entry_db::tf";
    assert!(known(tf, Platform::Bochs).is_some());
    assert!(known(tf, Platform::BareMetal).is_none());
    assert!(known("scenarios::movss", Platform::Bochs).is_none());
    assert!(!needed("selftest::panic"));
    assert!(needed("boot::nmi_all_to_all"));
}
