//! gd_detect: DR7.GD (general detect) turns the next debug-register access into
//! a #DB, before the access happens.
//!
//! Setup: DR7.GD set on this CPU.
//! Hazard: entry code that touches DR7 (the DR7-guard strategies do, first
//! thing) must not fault again inside #DB: the CPU clears GD on delivery.
//! Proof: one #DB per armed access, with DR6.BD set, at the accessing
//! instruction (fault-like: the MOV had not executed).
//! Check: that count, and that GD is clear after each #DB so the access then
//! succeeds. QEMU 10 models this (QEMU 7.2 did not). Then the same with the
//! register damage kit: all 15 GPRs and RFLAGS patterned, `mov dr7, r15`
//! under GD, and every register as it was after the #DB(BD) returned.

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use crate::arch::damage::{self, Hazard, R15, Regs, Tally};
use crate::arch::debugreg::{self, DR6_BD, DR7_GD};
use crate::entry::handlers::{self, DbEvent};

/// DR7 with no slot armed (bit 10 reads as 1).
const DR7_RESET: u64 = 0x400;

static BD: AtomicU64 = AtomicU64::new(0);
static OTHER: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    run: run,
    iterations: 200,
    tags: &[tags::TCG],
}

fn on_db(event: &DbEvent) {
    if event.dr6 & DR6_BD != 0 {
        BD.fetch_add(1, Ordering::Relaxed);
    } else {
        OTHER.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    BD.store(0, Ordering::Relaxed);
    OTHER.store(0, Ordering::Relaxed);
    handlers::set_db_hook(Some(on_db));
    let mut gd_left_set = 0;
    for _ in 0..ctx.iterations {
        debugreg::write_dr7(DR7_GD);
        // This read raises #DB(BD) first; the CPU clears GD, the read then runs.
        let dr7 = debugreg::read_dr7();
        gd_left_set += u64::from(dr7 & DR7_GD != 0);
    }
    // The probe loads DR7 from R15: the value the reset leaves (no slot armed).
    let mut tally = Tally::default();
    for i in 0..u64::from(ctx.iterations) {
        let mut fill = Regs::pattern(i, 0x6d);
        fill.0[R15] = DR7_RESET;
        debugreg::write_dr7(DR7_GD);
        let seen = damage::run_kernel(Hazard::Dr7Write, &fill);
        tally.record(i, &fill, &seen);
    }
    debugreg::reset();
    handlers::set_db_hook(None);
    let (bd, other, iterations) = (
        BD.load(Ordering::Relaxed),
        OTHER.load(Ordering::Relaxed),
        ctx.iterations,
    );
    ctx.counters.dbs = Some(bd + other);
    ctx.note(format_args!(
        "db_bd={bd} db_other={other} gd_left_set={gd_left_set} regs_checked={} regs_damaged={}",
        tally.checked, tally.damaged
    ));
    if bd != 2 * u64::from(iterations) || other != 0 || gd_left_set != 0 {
        testkit::fail!(
            ctx,
            "{bd} #DB(BD) for {} guarded accesses ({other} others, GD still set {gd_left_set} times)",
            2 * iterations
        );
    }
    testkit::ensure!(
        ctx,
        tally.damaged == 0,
        "#DB(BD) from `mov dr7, r15`: {tally}"
    );
    Ok(Observed::Survived)
}
