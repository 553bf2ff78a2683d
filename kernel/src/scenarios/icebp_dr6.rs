//! icebp_dr6: ICEBP and `INT 1` raise #DB with no DR6 condition, and a handler
//! that forgets to clear DR6 would let the previous #DB's B0 bit misattribute
//! them (the `dr6_hygiene` hazard).
//!
//! Setup: a write watchpoint in slot 0.
//! Hazard: each iteration first hits the watchpoint (DR6.B0), then executes
//! ICEBP and `INT 1`. The CPU never clears DR6 itself.
//! Proof: three #DBs per iteration, the first with B0.
//! Check: the ICEBP and `INT 1` #DBs show no B0-B3/BS bit, i.e. the handler
//! cleared DR6 after reading it. QEMU 10 TCG models ICEBP as a trap-like #DB.
//! The ICEBP and `INT 1` run inside the register damage kit's probes: all 15
//! GPRs and RFLAGS patterned before, and each compared after the #DB.

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use super::common;
use crate::arch::damage::{self, Hazard, Regs, Tally};
use crate::arch::debugreg::DR6_HITS;
use crate::entry::breakpoint::{self, Kind};
use crate::entry::handlers::{self, DbEvent};

static WATCHED: AtomicU64 = AtomicU64::new(0);
static WITH_B0: AtomicU64 = AtomicU64::new(0);
static CLEAN: AtomicU64 = AtomicU64::new(0);
static STALE: AtomicU64 = AtomicU64::new(0);
/// 0: expecting the watchpoint's #DB; 1: expecting ICEBP's or INT 1's.
static PHASE: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    run: run,
    iterations: 200,
    tags: &[tags::TCG],
}

fn on_db(event: &DbEvent) {
    let hits = event.dr6 & DR6_HITS;
    match PHASE.load(Ordering::Relaxed) {
        0 if hits == 1 => WITH_B0.fetch_add(1, Ordering::Relaxed),
        0 => STALE.fetch_add(1, Ordering::Relaxed),
        _ if hits == 0 => CLEAN.fetch_add(1, Ordering::Relaxed),
        _ => STALE.fetch_add(1, Ordering::Relaxed),
    };
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    for counter in [&WITH_B0, &CLEAN, &STALE] {
        counter.store(0, Ordering::Relaxed);
    }
    handlers::set_db_hook(Some(on_db));
    if let Err(e) = common::arm(&[common::watch(0, WATCHED.as_ptr() as u64, Kind::Write, 8)]) {
        handlers::set_db_hook(None);
        testkit::fail!(ctx, "arming the watchpoint: {e:?}");
    }
    let mut tally = Tally::default();
    for i in 0..u64::from(ctx.iterations) {
        PHASE.store(0, Ordering::Relaxed);
        WATCHED.store(i, Ordering::SeqCst);
        PHASE.store(1, Ordering::Relaxed);
        for (n, hazard) in [Hazard::Icebp, Hazard::Int1].into_iter().enumerate() {
            let fill = Regs::pattern(2 * i + n as u64, 0x1ce);
            tally.record(i, &fill, &damage::run_kernel(hazard, &fill));
        }
    }
    breakpoint::reset();
    handlers::set_db_hook(None);
    let (b0, clean, stale) = (
        WITH_B0.load(Ordering::Relaxed),
        CLEAN.load(Ordering::Relaxed),
        STALE.load(Ordering::Relaxed),
    );
    let iterations = u64::from(ctx.iterations);
    ctx.counters.dbs = Some(b0 + clean + stale);
    ctx.note(format_args!(
        "watchpoint_db={b0} clean_icebp_int1={clean} stale={stale} regs_checked={} regs_damaged={}",
        tally.checked, tally.damaged
    ));
    testkit::ensure!(ctx, tally.damaged == 0, "ICEBP / INT 1 #DB: {tally}");
    if b0 != iterations || clean != 2 * iterations || stale != 0 {
        testkit::fail!(
            ctx,
            "expected {iterations} B0 and {} clean #DBs, saw {b0} and {clean} ({stale} stale)",
            2 * iterations
        );
    }
    Ok(Observed::Survived)
}
