//! Fixture trees for the layering test: each shows one rule failing or passing.

use super::violations;

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(rel, text)| (rel.to_string(), text.to_string()))
        .collect()
}

const ROOT_FILE: (&str, &str) = ("main.rs", "mod arch;\nmod entry;\nfn kernel_main() {}\n");

#[test]
fn downward_imports_pass() {
    let tree = files(&[
        ROOT_FILE,
        ("arch/mod.rs", "pub mod idt;\n"),
        ("entry/mod.rs", "use crate::arch::idt;\n"),
        ("boot/pvh.rs", "fn go() { crate::kernel_main() }\n"),
    ]);
    assert_eq!(violations(&tree), Vec::<String>::new());
}

#[test]
fn an_upward_use_is_rejected() {
    let tree = files(&[
        ROOT_FILE,
        ("arch/smp.rs", "use crate::entry::traps;\n"),
        ("entry/mod.rs", "use crate::arch::idt;\n"),
    ]);
    assert_eq!(
        violations(&tree),
        ["arch/smp.rs: `arch` imports `entry`, a layer above it"]
    );
}

#[test]
fn groups_paths_in_code_and_asm_symbols_are_edges() {
    let tree = files(&[
        ROOT_FILE,
        ("entry/a.rs", "use crate::{arch::cpu, harness};\n"),
        ("entry/b.rs", "fn f() { crate::watchdog::tick(); }\n"),
        (
            "arch/c.rs",
            "global_asm!(\"\", x = sym crate::boot::pvh::main);\n",
        ),
    ]);
    assert_eq!(
        violations(&tree),
        [
            "arch/c.rs: `arch` imports `boot`, a layer above it",
            "entry/a.rs: `entry` imports `harness`, a layer above it",
            "entry/b.rs: `entry` imports `watchdog`, a layer above it",
        ]
    );
}

#[test]
fn the_root_and_super_paths_count_too() {
    let tree = files(&[
        (
            "main.rs",
            "fn kernel_main() { boot::door(); arch::cpu::halt(); }\n",
        ),
        ("harness.rs", "use super::boot::limine;\n"),
        ("boot/mod.rs", "pub fn door() {}\n"),
    ]);
    assert_eq!(
        violations(&tree),
        [
            "harness.rs: `harness` imports `boot`, a layer above it",
            "main.rs: `main` imports `boot`, a layer above it",
        ]
    );
}

#[test]
fn an_exported_macro_belongs_to_its_module() {
    let tree = files(&[
        ROOT_FILE,
        (
            "console/mod.rs",
            "#[macro_export]\nmacro_rules! kprintln { () => {} }\n",
        ),
        ("arch/smp.rs", "fn f() { crate::kprintln!(); }\n"),
        ("entry/mod.rs", "use crate::kprintln;\n"),
    ]);
    assert_eq!(
        violations(&tree),
        ["arch/smp.rs: `arch` imports `console`, a layer above it"]
    );
}

#[test]
fn comments_are_not_imports() {
    let tree = files(&[
        ROOT_FILE,
        (
            "arch/mod.rs",
            "//! Calls [`crate::kernel_main`].\nfn f() {} // crate::boot\n",
        ),
    ]);
    assert_eq!(violations(&tree), Vec::<String>::new());
}

#[test]
fn a_module_without_a_layer_and_an_unknown_name_are_rejected() {
    let tree = files(&[ROOT_FILE, ("gadget.rs", "use crate::nowhere::x;\n")]);
    assert_eq!(
        violations(&tree),
        [
            "gadget.rs: `crate::nowhere` is no module with a layer",
            "gadget.rs: module `gadget` has no layer (add it to LAYERS and docs/architecture.md)",
        ]
    );
}

#[test]
fn modules_in_a_circle_are_rejected_even_within_a_layer() {
    let tree = files(&[
        ROOT_FILE,
        ("entry/mod.rs", "mod a;\nmod b;\nmod c;\nuse a::x;\n"),
        ("entry/a.rs", "use super::b::Y;\n"),
        ("entry/b.rs", "fn f() { crate::entry::c::z(); }\n"),
        ("entry/c.rs", "use crate::entry::{a, b};\n"),
    ]);
    assert_eq!(
        violations(&tree),
        ["modules import each other in a circle: entry::a -> entry::b -> entry::c -> entry::a"]
    );
}

#[test]
fn a_parent_and_its_child_are_no_circle() {
    let tree = files(&[
        ROOT_FILE,
        ("entry/mod.rs", "mod df;\nuse crate::entry::df::land;\n"),
        (
            "entry/df.rs",
            "use super::super::entry::trap_dispatch;\nuse super::Kind;\n",
        ),
    ]);
    assert_eq!(violations(&tree), Vec::<String>::new());
}
