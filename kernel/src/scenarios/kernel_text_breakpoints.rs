//! kernel_text_breakpoints: execution breakpoints on kernel text hit exactly as
//! often as the code runs, and RF makes resumption skip the breakpoint once.
//!
//! Setup: an execute breakpoint (DR0) on the first instruction of `target`.
//! Hazard: a fault-like #DB on every call; if the handler forgot RF, the IRET
//! would land on the same instruction and fault again forever (or count double).
//! Proof: the #DB hook counts hits on `target`'s address; DR6 names slot 0.
//! Check: hits == calls, and the breakpoint on the entry text is refused by the
//! deny-list unless forced. Then an execute breakpoint on the register damage
//! kit's NOP probe: one fault per probe, every GPR and RFLAGS as they were.

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, TestResult};

use super::common;
use crate::arch::damage::{self, Hazard, Regs, Tally};
use crate::entry::breakpoint::{self, Breakpoint, BreakpointError, Kind};
use crate::entry::handlers::{self, DbEvent};

static TARGET_HITS: AtomicU64 = AtomicU64::new(0);
static STRAY_HITS: AtomicU64 = AtomicU64::new(0);
static DR6_SLOT0: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);
static PROBE_HITS: AtomicU64 = AtomicU64::new(0);

/// `iterations` NOP probes under an execute breakpoint in slot 1: the tally
/// and the #DBs on the probe's hazard.
fn probe_under_breakpoint(iterations: u32) -> (Tally, u64) {
    PROBE_HITS.store(0, Ordering::Relaxed);
    let bp = Breakpoint {
        slot: 1,
        addr: damage::kernel_nop_address(),
        kind: Kind::Execute,
        len: 1,
    };
    let mut tally = Tally::default();
    if breakpoint::arm(bp, false).is_err() {
        return (tally, 0);
    }
    for i in 0..u64::from(iterations) {
        let fill = Regs::pattern(i, 0xb7);
        tally.record(i, &fill, &damage::run_kernel(Hazard::Nop, &fill));
    }
    breakpoint::disarm(1);
    (tally, PROBE_HITS.load(Ordering::Relaxed))
}

testkit::test! {
    run: run,
    iterations: 1000,
    tags: &[testkit::tags::TCG],
}

#[inline(never)]
fn target(x: u64) -> u64 {
    CALLS.fetch_add(1, Ordering::Relaxed);
    core::hint::black_box(x).wrapping_mul(3)
}

fn on_db(event: &DbEvent) {
    if event.rip == damage::kernel_nop_address() {
        PROBE_HITS.fetch_add(1, Ordering::Relaxed);
    } else if event.rip == target as *const () as u64 {
        TARGET_HITS.fetch_add(1, Ordering::Relaxed);
        if event.dr6 & 1 != 0 {
            DR6_SLOT0.fetch_add(1, Ordering::Relaxed);
        }
    } else {
        STRAY_HITS.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    // The deny-list must refuse a breakpoint on the entry stubs without force.
    let entry = crate::entry::Stub::Db.range().0;
    let on_entry = Breakpoint {
        slot: 1,
        addr: entry,
        kind: Kind::Execute,
        len: 1,
    };
    if breakpoint::arm(on_entry, false) != Err(BreakpointError::Denied) {
        breakpoint::reset();
        testkit::fail!(ctx, "deny-list let a breakpoint on the #DB stub through");
    }

    let cpu = crate::arch::percpu::this().index();
    for counter in [&TARGET_HITS, &STRAY_HITS, &DR6_SLOT0, &CALLS] {
        counter.store(0, Ordering::Relaxed);
    }
    common::reset_counts(cpu);
    handlers::set_db_hook(Some(on_db));
    let bp = Breakpoint {
        slot: 0,
        addr: target as *const () as u64,
        kind: Kind::Execute,
        len: 1,
    };
    if let Err(e) = breakpoint::arm(bp, false) {
        handlers::set_db_hook(None);
        testkit::fail!(ctx, "arming the breakpoint: {e:?}");
    }
    let mut sum = 0u64;
    for i in 0..u64::from(ctx.iterations) {
        sum = sum.wrapping_add(target(i));
    }
    breakpoint::disarm(0);
    let (tally, probe_hits) = probe_under_breakpoint(ctx.iterations);
    let after_disarm = TARGET_HITS.load(Ordering::Relaxed);
    core::hint::black_box(target(0));
    let hits_after_disarm = TARGET_HITS.load(Ordering::Relaxed) - after_disarm;
    breakpoint::reset();
    handlers::set_db_hook(None);
    core::hint::black_box(sum);
    testkit::ensure!(
        ctx,
        hits_after_disarm == 0,
        "the breakpoint still fired after disarm"
    );

    let evidence = common::collect(ctx, cpu);
    let (hits, stray, slot0, calls) = (
        TARGET_HITS.load(Ordering::Relaxed),
        STRAY_HITS.load(Ordering::Relaxed),
        DR6_SLOT0.load(Ordering::Relaxed),
        CALLS.load(Ordering::Relaxed),
    );
    ctx.note(format_args!(
        "calls={calls} hits={hits} dr6_b0={slot0} stray={stray} probe_hits={probe_hits} \
         regs_checked={} regs_damaged={}",
        tally.checked, tally.damaged
    ));
    if tally.damaged != 0 || probe_hits != tally.checked {
        testkit::fail!(
            ctx,
            "execute breakpoint on the probe ({probe_hits} hits): {tally}"
        );
    }
    if hits + 1 != calls || slot0 != hits || stray != 0 {
        testkit::fail!(
            ctx,
            "breakpoint hits {hits} (DR6.B0 {slot0}, stray {stray}) for {calls} calls: RF or DR6 handling is wrong"
        );
    }
    Ok(evidence.observed(common::Detection::default()))
}
