use super::*;

/// Every test name the kernel registers: the `name: "..."` of each
/// `testkit` descriptor under kernel/src (the linker collects them; the
/// source is where a host test can see them without booting).
fn registered() -> Vec<String> {
    let mut names = Vec::new();
    let mut dirs = vec![crate::root().join("kernel/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                names.extend(names_in(&text));
            }
        }
    }
    names.sort();
    names
}

/// The `name: "a::b"` strings of descriptors in one source file.
fn names_in(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("name: \""))
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| name))
        .filter(|name| name.contains("::"))
        .map(str::to_string)
        .collect()
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
    let text = "    name: \"scenarios::brand_new\",\n    name: \"selftest::x\",\n";
    let names = names_in(text);
    assert_eq!(names, ["scenarios::brand_new", "selftest::x"]);
    assert_eq!(
        missing(names.iter().map(String::as_str)),
        ["scenarios::brand_new"]
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
