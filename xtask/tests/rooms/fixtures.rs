//! Fixture trees for the rooms test: each shows one rule failing or passing.

use super::check;

fn fixture(files: &[(&str, &str)]) -> Vec<String> {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    check(&files).0
}

#[test]
fn an_upward_import_is_rejected_with_its_line() {
    let ok = [
        ("main.rs", "mod report;\nmod runner;\n"),
        ("runner/mod.rs", "pub mod suite;\n"),
        ("runner/suite.rs", "use crate::report::verdict::Report;\n"),
        ("report/mod.rs", "pub mod verdict;\n"),
        ("report/verdict.rs", "pub struct Report;\n"),
    ];
    assert_eq!(fixture(&ok), Vec::<String>::new());
    let mut bad = ok;
    bad[4].1 =
        "// crate::runner in a comment is fine\nfn f() {\n    crate::runner::suite::g();\n}\n";
    let problems = fixture(&bad);
    // The upward edge, and the cycle it closes with the downward one.
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        problems[1],
        "import cycle: report::verdict <-> runner::suite"
    );
    assert!(
        problems[0]
            .starts_with("src/report/verdict.rs:3: `report::verdict` imports `runner::suite`"),
        "{problems:?}"
    );
}

#[test]
fn nested_use_trees_are_read_and_cycles_found() {
    let files = [
        ("main.rs", ""),
        (
            "qemu/a.rs",
            "use crate::{\n    qemu::{b::{self, X}, c},\n    report::d as e,\n};\n",
        ),
        ("qemu/b.rs", "use crate::qemu::c::Y;\n"),
        ("qemu/c.rs", "fn f() { crate::qemu::a::g() }\n"),
        ("report/d.rs", ""),
    ];
    let problems = fixture(&files);
    assert_eq!(problems, ["import cycle: qemu::a <-> qemu::b <-> qemu::c"]);
}

#[test]
fn subcommands_share_only_opts_and_every_module_has_a_room() {
    let files = [
        ("main.rs", ""),
        ("cmd/opts.rs", ""),
        ("cmd/run.rs", "use crate::cmd::opts::Common;\n"),
        ("cmd/test/mod.rs", "use crate::cmd::run::main;\nmod pool;\n"),
        ("cmd/test/pool.rs", "use super::Args;\n"),
        ("setup.rs", ""),
    ];
    let problems = fixture(&files);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("`setup` is in no room"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("subcommand `cmd::test` imports subcommand `cmd::run`"),
        "{problems:?}"
    );
}

#[test]
fn super_paths_count_from_where_the_code_is() {
    let files = [
        ("main.rs", ""),
        ("runner/suite.rs", ""),
        (
            "runner/recovery.rs",
            "#[cfg(test)]\n#[path = \"recovery_tests.rs\"]\nmod tests;\n",
        ),
        // `super` in a `#[path]` test file is the module it tests: no edge.
        (
            "runner/recovery_tests.rs",
            "use super::*;\nuse super::super::suite::Check;\n",
        ),
        ("report/a.rs", "mod tests {\n    use super::b::X;\n}\n"),
        ("report/b.rs", "use super::super::runner::suite;\n"),
    ];
    let problems = fixture(&files);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("src/report/b.rs:1: `report::b` imports `runner::suite`"),
        "{problems:?}"
    );
}
