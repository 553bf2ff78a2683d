//! dr7_guard_restore: a Linux-style #DB entry writes DR7 back on its way out
//! only when its entry found a breakpoint armed (Linux 6.6 `local_db_save` /
//! `local_db_restore`): a breakpoint armed inside a #DB that found DR7 empty
//! stays armed after it; one armed inside a #DB that found DR7 armed is
//! undone when the saved DR7 is written back.
//!
//! Setup: part A arms nothing; part B arms slot 0 (execute, on the parking
//! address, which never runs).
//! Hazard: ICEBP raises a kernel #DB; its hook arms slot 1 the same way.
//! Proof: the hook ran once per ICEBP, inside the #DB.
//! Check: slot 1's enable bit after the #DB returns. Part A: set under every
//! strategy (nothing found armed, nothing written back). Part B: clear under
//! `dr7-guard` and `linux` (the saved DR7 is written back over the hook's),
//! set under the others (their #DB entries never touch DR7).

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, ensure, tags};

use crate::arch::cpu;
use crate::arch::debugreg;
use crate::entry::breakpoint::{self, Breakpoint, Kind};
use crate::entry::handlers::{self, DbEvent};
use crate::entry::strategy::{self, DR7_GUARD};

testkit::test! {
    run: run,
    iterations: 50,
    tags: &[tags::TCG],
}

static HOOK_RUNS: AtomicU64 = AtomicU64::new(0);

/// Slot `slot` as an execute breakpoint on the parking address.
fn parked(slot: usize) -> Breakpoint {
    Breakpoint {
        slot,
        addr: breakpoint::parking_address(),
        kind: Kind::Execute,
        len: 1,
    }
}

/// DR7's local-enable bit of `slot`.
fn enabled(dr7: u64, slot: usize) -> bool {
    dr7 & (1 << (2 * slot)) != 0
}

/// The hook, inside the ICEBP's #DB: arms slot 1.
fn on_db(_: &DbEvent) {
    HOOK_RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = breakpoint::arm(parked(1), true);
}

/// One ICEBP with slot 0 armed first (part B) or not (part A); whether slot 1
/// is armed after the #DB returned.
fn round(slot0: bool) -> Result<bool, &'static str> {
    breakpoint::reset();
    if slot0 && breakpoint::arm(parked(0), true).is_err() {
        return Err("arming slot 0 failed");
    }
    let before = HOOK_RUNS.load(Ordering::SeqCst);
    cpu::icebp();
    if HOOK_RUNS.load(Ordering::SeqCst) != before + 1 {
        return Err("the #DB hook did not run once for the ICEBP");
    }
    let armed = enabled(debugreg::read_dr7(), 1);
    breakpoint::reset();
    Ok(armed)
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let guard = strategy::flags(ctx.strategy) & DR7_GUARD != 0;
    HOOK_RUNS.store(0, Ordering::SeqCst);
    handlers::set_db_hook(Some(on_db));
    let (mut kept_a, mut kept_b, mut failed) = (0u32, 0u32, None);
    for _ in 0..ctx.iterations {
        match (round(false), round(true)) {
            (Ok(a), Ok(b)) => {
                kept_a += u32::from(a);
                kept_b += u32::from(b);
            }
            (Err(e), _) | (_, Err(e)) => {
                failed = Some(e);
                break;
            }
        }
    }
    handlers::set_db_hook(None);
    breakpoint::reset();
    if let Some(e) = failed {
        testkit::fail!(ctx, "{e}");
    }
    let n = ctx.iterations;
    let want_b = if guard { 0 } else { n };
    ctx.note(format_args!(
        "hook_runs={} kept_when_nothing_was_armed={kept_a}/{n} kept_when_slot0_was_armed={kept_b}/{n}",
        HOOK_RUNS.load(Ordering::SeqCst)
    ));
    ensure!(
        ctx,
        kept_a == n,
        "a breakpoint armed inside a #DB that found DR7 empty was lost {} of {n} times: \
         the exit wrote DR7 although its entry saved nothing",
        n - kept_a
    );
    ensure!(
        ctx,
        kept_b == want_b,
        "a breakpoint armed inside a #DB that found slot 0 armed survived {kept_b} of {n} \
         times, want {want_b} ({})",
        if guard {
            "the exit writes the saved DR7 back"
        } else {
            "this strategy never writes DR7"
        }
    );
    Ok(Observed::Survived)
}
