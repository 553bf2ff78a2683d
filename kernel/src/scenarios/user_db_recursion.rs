//! user_db_recursion: a #DB from ring 3 whose handler hits a second #DB.
//!
//! Setup: a write watchpoint on a cell of the ring-3 sandbox (slot 0) and one
//! on a kernel word (slot 1); the #DB hook writes the kernel word whenever it
//! handles a #DB from ring 3, as a handler that touches watched data would
//! (ptrace, signal delivery).
//! Hazard: ring 3 runs the register damage kit's store probe into the
//! watched user cell: a #DB from ring 3, whose handler raises a #DB from
//! ring 0. Linux (v5.8+) allows exactly this one level: the user #DB runs
//! off the IST and leaves DR7 armed (it may end up in ptrace or the
//! scheduler); the nested kernel #DB clears DR7. On a strategy whose user #DB
//! stays on the IST, the nested #DB starts at the same IST top. (Recursion
//! beyond one level, a kernel #DB whose handler hits a #DB again, is
//! `trace_irq_recursion`'s hazard; here a deeper level than one is a bug.)
//! Proof: one #DB from ring 3 per probe (DR6.B0), the #DBs beyond them
//! (nested), the hook's touches, and the checker's depth.
//! Check: `dr7-guard` and `linux`: at most one nested #DB per user #DB and
//! a #DB depth of at most 2, no corruption, and the probe's 15 GPRs and RFLAGS
//! intact in ring 3. `shift-only` and `linux-4.19` keep the two frames apart
//! on a shifted region: exactly one nested level, no corruption. `naive` is skipped: its
//! nested #DB starts at the IST top that the user #DB's handler is running
//! on and overwrites that handler's own stack (return addresses included),
//! so the kernel crashes (measured: #UD in data, every run) before the
//! checker's report can leave; the checker's guard can restore an IST stack
//! only for an entry on another stack (`db_user_nmi_db` catches that case).

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, Strategy, TestResult, tags};

use super::common::{self, Detection};
use crate::arch::damage::{Hazard, R15, Regs, Tally};
use crate::arch::percpu;
use crate::entry::breakpoint::{self, Kind};
use crate::entry::handlers::{self, DbEvent};
use crate::mm;

/// The sandbox data cell ring 3 writes (well below the damage kit's cells).
const USER_CELL: usize = 8;

static KERNEL_WATCHED: AtomicU64 = AtomicU64::new(0);
static USER_DBS: AtomicU64 = AtomicU64::new(0);
static TOUCHES: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    run: run,
    iterations: 100,
    tags: &[tags::TCG],
    expect: super::kernel_db_recursion::one_level(
        "naive: the nested #DB overwrites the user #DB handler's own stack and crashes"
    ),
}

fn on_db(event: &DbEvent) {
    if event.from_user && event.dr6 & 1 != 0 {
        USER_DBS.fetch_add(1, Ordering::Relaxed);
    }
    if event.from_user {
        TOUCHES.fetch_add(1, Ordering::Relaxed);
        KERNEL_WATCHED.fetch_add(1, Ordering::SeqCst);
    }
}

fn arm_both(user_cell: u64) -> Result<(), breakpoint::BreakpointError> {
    common::arm(&[
        common::watch(0, user_cell, Kind::Write, 8),
        common::watch(1, KERNEL_WATCHED.as_ptr() as u64, Kind::Write, 8),
    ])
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let cpu = percpu::this().index();
    let sandbox = mm::user_sandbox();
    let user_cell = sandbox.data[USER_CELL].as_ptr() as u64;
    for counter in [&USER_DBS, &TOUCHES] {
        counter.store(0, Ordering::Relaxed);
    }
    common::reset_counts(cpu);
    handlers::set_db_hook(Some(on_db));
    let (mut tally, mut bad_exits) = (Tally::default(), 0u64);
    for i in 0..u64::from(ctx.iterations) {
        // The checker disarms DR7 at its recursion cap: arm again each time.
        if let Err(e) = arm_both(user_cell) {
            handlers::set_db_hook(None);
            breakpoint::reset();
            testkit::fail!(ctx, "arming the watchpoints: {e:?}");
        }
        let mut fill = Regs::pattern(i, 0xdb);
        fill.0[R15] = user_cell;
        match sandbox.run_probe(Hazard::Store, &fill) {
            Some(Ok(seen)) => _ = tally.record(i, &fill, &seen),
            _ => bad_exits += 1,
        }
    }
    breakpoint::reset();
    handlers::set_db_hook(None);

    let evidence = common::collect(ctx, cpu);
    let n = u64::from(ctx.iterations);
    let user_dbs = USER_DBS.load(Ordering::Relaxed);
    let nested = evidence.nested_dbs(user_dbs);
    let depth = evidence.report.max_depth[0];
    ctx.note(format_args!(
        "user_dbs={user_dbs} nested_dbs={nested} touches={} max_depth={depth} bad_exits={bad_exits} \
         regs_checked={} regs_damaged={} reentries={} recovered={}",
        TOUCHES.load(Ordering::Relaxed),
        tally.checked,
        tally.damaged,
        evidence.report.reentries,
        evidence.report.recovered
    ));
    evidence.check_complete(ctx)?;
    if user_dbs != n || bad_exits != 0 {
        testkit::fail!(
            ctx,
            "{user_dbs} #DBs from ring 3 for {n} watched stores ({bad_exits} probes did not come back)"
        );
    }
    // The hazard: each user #DB's handler touched the kernel word, and where
    // the user #DB leaves DR7 armed, that touch raised a nested #DB. (Today's
    // `dr7-guard` and `linux` clear DR7 on every #DB entry, user or kernel:
    // their touches are suppressed, which is also at most one level.)
    let guarded = matches!(ctx.strategy, Strategy::Dr7Guard | Strategy::Linux);
    if TOUCHES.load(Ordering::Relaxed) < user_dbs || (!guarded && nested < user_dbs) {
        testkit::fail!(
            ctx,
            "the handlers never raised the second #DB ({nested} nested for {user_dbs})"
        );
    }
    if nested > user_dbs || depth > 2 {
        testkit::fail!(
            ctx,
            "{nested} nested #DBs for {user_dbs} user #DBs, depth {depth}: more than one level"
        );
    }
    testkit::ensure!(ctx, tally.damaged == 0, "ring-3 watched store: {tally}");
    Ok(match evidence.observed(Detection::default()) {
        Observed::Ran(mut counts) => {
            counts.damaged_registers = tally.damaged;
            Observed::Ran(counts)
        }
        other => other,
    })
}
