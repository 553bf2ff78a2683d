//! Measurements for `cargo xtask bench`: they run only when a filter names them
//! (`filter=bench::`). Their result's `cycles_per_iteration` is the number.

use core::sync::atomic::Ordering;

use testkit::{Context, Observed, TestResult, tags};

use crate::arch::{lapic, percpu};
use crate::entry::handlers;

/// Eight empty tests: the runner's own per-test cost.
macro_rules! empty_tests {
    ($($name:literal),*) => {$(
        testkit::test! { name: $name, run: |_| Ok(Observed::Survived), tags: &[tags::BENCH] }
    )*};
}
empty_tests!(
    "bench::empty_0",
    "bench::empty_1",
    "bench::empty_2",
    "bench::empty_3",
    "bench::empty_4",
    "bench::empty_5",
    "bench::empty_6",
    "bench::empty_7"
);

testkit::test! {
    name: "bench::int3_roundtrip",
    run: int3_roundtrip,
    iterations: 10_000,
    tags: &[tags::BENCH],
}

/// INT3 -> #BP -> IRET, the cheapest exception round trip: a floor.
fn int3_roundtrip(ctx: &mut Context<'_>) -> TestResult {
    let cpu = percpu::this().index();
    let before = handlers::bp_count(cpu);
    handlers::expect_breakpoints(true);
    for _ in 0..ctx.iterations {
        crate::arch::cpu::int3();
    }
    handlers::expect_breakpoints(false);
    let (seen, iterations) = (handlers::bp_count(cpu) - before, ctx.iterations);
    testkit::ensure!(
        ctx,
        seen == u64::from(iterations),
        "{seen} #BP for {iterations} INT3"
    );
    Ok(Observed::Survived)
}

testkit::test! {
    name: "bench::nmi_roundtrip",
    run: nmi_roundtrip,
    iterations: 10_000,
    cpus: 2,
    tags: &[tags::BENCH],
}

/// CPU 0 sends CPU 1 an NMI and waits until CPU 1 has counted it: the floor for
/// one cross-CPU NMI delivery.
fn nmi_roundtrip(ctx: &mut Context<'_>) -> TestResult {
    nmi_floor(ctx, percpu::cpu(1))
}

testkit::test! {
    name: "bench::nmi_self_roundtrip",
    run: nmi_self_roundtrip,
    iterations: 10_000,
    tags: &[tags::BENCH],
}

/// The CPU sends itself an NMI and waits until it has run: the floor for the
/// NMI delivery `bench::nested_roundtrip` uses (its #DB sends its own NMI),
/// without a second vCPU's wake-up.
fn nmi_self_roundtrip(ctx: &mut Context<'_>) -> TestResult {
    nmi_floor(ctx, percpu::this())
}

/// `ctx.iterations` NMIs to `target`, each awaited until `target` counted it.
fn nmi_floor(ctx: &mut Context<'_>, target: &percpu::PerCpu) -> TestResult {
    let mut lost = 0;
    for _ in 0..ctx.iterations {
        let before = target.nmi_count.load(Ordering::Acquire);
        lapic::send_nmi(target.lapic_id());
        if !crate::arch::time::wait_until(100_000, || {
            target.nmi_count.load(Ordering::Acquire) > before
        }) {
            lost += 1;
        }
    }
    ctx.counters.nmis = Some(u64::from(ctx.iterations) - lost);
    testkit::ensure!(ctx, lost == 0, "{lost} NMIs never arrived");
    Ok(Observed::Survived)
}
