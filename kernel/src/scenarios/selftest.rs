//! The framework's own selftests: each crash test ends the boot on purpose in
//! one specific way, and its `_then_ok` neighbour (next in name order) proves
//! that the host runner booted again and resumed after it. They run only when a
//! filter names them (`filter=selftest::`).
//!
//! `selftest=ud2` / `selftest=panic` on the command line (the check that a
//! broken kernel ends with a clear report: docs/verdicts.md, Crashes) are kept
//! as well.

use testkit::{Context, Observed, TestResult, tags};

use crate::arch::cpu;
use crate::kprintln;

/// `selftest=NAME` on the command line, before any test runs.
pub fn run(which: &str) {
    kprintln!("selftest: {which}");
    match which {
        "ud2" => cpu::raise_invalid_opcode(),
        "panic" => panic!("selftest: deliberate panic"),
        other => kprintln!("selftest: unknown selftest '{other}', ignored"),
    }
}

testkit::test! {
    name: "selftest::panic",
    run: |_| panic!("selftest: deliberate panic"),
    tags: &[tags::SELFTEST, tags::CRASH_PANIC],
}

testkit::test! {
    name: "selftest::exception",
    run: |_| {
        cpu::raise_invalid_opcode();
        Ok(Observed::Survived)
    },
    tags: &[tags::SELFTEST, tags::CRASH_EXCEPTION],
}

testkit::test! {
    name: "selftest::hang",
    run: |_| loop {
        core::hint::spin_loop();
    },
    timeout_ms: 2_000,
    cpus: 2,
    tags: &[tags::SELFTEST, tags::CRASH_HANG],
}

testkit::test! {
    name: "selftest::triple_fault",
    run: |_| cpu::triple_fault(),
    tags: &[tags::SELFTEST, tags::CRASH_TRIPLE_FAULT],
}

/// Passes only in a boot that the runner started after `crashed` killed an
/// earlier one: the runner resumes with `skip=` naming it.
fn resumed_after(ctx: &mut Context<'_>, crashed: &str) -> TestResult {
    let skipped = crate::cmdline::skips(crashed);
    if skipped {
        Ok(Observed::Survived)
    } else {
        testkit::fail!(
            ctx,
            "this boot does not follow a crash of {crashed} (no skip= for it)"
        )
    }
}

testkit::test! {
    name: "selftest::panic_then_ok",
    run: |ctx| resumed_after(ctx, "selftest::panic"),
    tags: &[tags::SELFTEST],
}

testkit::test! {
    name: "selftest::exception_then_ok",
    run: |ctx| resumed_after(ctx, "selftest::exception"),
    tags: &[tags::SELFTEST],
}

testkit::test! {
    name: "selftest::hang_then_ok",
    run: |ctx| resumed_after(ctx, "selftest::hang"),
    tags: &[tags::SELFTEST],
}

testkit::test! {
    name: "selftest::triple_fault_then_ok",
    run: |ctx| resumed_after(ctx, "selftest::triple_fault"),
    tags: &[tags::SELFTEST],
}
