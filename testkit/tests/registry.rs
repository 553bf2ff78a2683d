//! Registration through the linker section, as the kernel uses it: tests
//! registered with `testkit::test!` in this crate show up in `TESTS`.

use testkit::{
    Context, Expect, Expectations, Observed, Strategy, TESTS, TestDesc, TestResult, tags,
};

fn first(_: &mut Context<'_>) -> TestResult {
    Ok(Observed::Survived)
}

fn second(ctx: &mut Context<'_>) -> TestResult {
    Ok(Observed::Ran(testkit::Evidence {
        incidents: u64::from(ctx.iterations),
        ..testkit::Evidence::default()
    }))
}

testkit::test! {
    name: "registry::first",
    run: first,
}

// A second registration in the same module: the macro's static must not collide.
testkit::test! {
    name: "registry::second",
    run: second,
    cpus: 2,
    iterations: 500,
    max_iterations: 1000,
    timeout_ms: 30_000,
    tags: &[tags::TCG, tags::HW_ONLY],
    expect: Expectations::all(Expect::Survive)
        .with(Strategy::Naive, Expect::Detect)
        .with(Strategy::ShiftOnly, Expect::Skip("no nested NMI handling")),
}

mod nested {
    fn third(_: &mut testkit::Context<'_>) -> testkit::TestResult {
        Err(testkit::Failure::Because("setup failed"))
    }
    testkit::test! { name: "registry::nested::third", run: third, }
}

// Names from the module path: `registry::derived` without the crate's name.
mod derived {
    testkit::test! { run: super::first }
    testkit::test! { case: "tf", run: super::first, cpus: 2 }
}

fn find(name: &str) -> &'static TestDesc {
    TESTS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name} is not registered"))
}

#[test]
fn the_linker_collects_every_registration() {
    let mut names: Vec<&str> = TESTS.iter().map(|t| t.name).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "derived",
            "derived::tf",
            "registry::first",
            "registry::nested::third",
            "registry::second"
        ]
    );
}

#[test]
fn defaults_and_location_are_filled_in() {
    let t = find("registry::first");
    assert_eq!(t.module, "registry");
    assert!(t.file.ends_with("registry.rs"), "{}", t.file);
    let source = include_str!("registry.rs");
    let line = source.lines().nth(t.line as usize - 1).unwrap();
    assert_eq!(
        line, "testkit::test! {",
        "line {} names the registration",
        t.line
    );
    assert_eq!((t.iterations, t.cpus), (TestDesc::DEFAULT_ITERATIONS, 1));
    assert_eq!(t.timeout_ms, TestDesc::DEFAULT_TIMEOUT_MS);
    assert!(t.tags.is_empty());
    assert_eq!(t.expect, Expectations::all(Expect::Survive));
    assert_eq!(find("registry::nested::third").module, "registry::nested");
}

#[test]
fn names_come_from_the_module_path() {
    assert_eq!(find("derived").module, "registry::derived");
    let case = find("derived::tf");
    assert_eq!((case.module, case.cpus), ("registry::derived", 2));
    assert_eq!(
        TestDesc::name_from_module("istorm::scenarios::gd_detect"),
        "scenarios::gd_detect"
    );
    assert_eq!(TestDesc::name_from_module("solo"), "solo");
}

#[test]
fn overrides_are_kept() {
    let t = find("registry::second");
    assert_eq!(
        (t.cpus, t.iterations, t.max_iterations, t.timeout_ms),
        (2, 500, 1000, 30_000)
    );
    assert!(t.has_tag(tags::HW_ONLY) && t.has_tag("tcg") && !t.has_tag(tags::SELFTEST));
    assert_eq!(t.expect.get(Strategy::Naive), Expect::Detect);
    assert_eq!(
        t.expect.get(Strategy::ShiftOnly),
        Expect::Skip("no nested NMI handling")
    );
    assert_eq!(t.expect.get(Strategy::Linux), Expect::Survive);
}
