//! kernel_db_recursion: a kernel #DB whose body hits a second #DB.
//!
//! Setup: write watchpoints on two kernel words, OUTER (slot 0) and INNER
//! (slot 1); the #DB hook writes INNER whenever it handles the #DB of OUTER,
//! as a #DB body that touches watched data would (Linux 4.19: kprobes and kgdb
//! inside `do_debug`).
//! Hazard: kernel code writes OUTER: a #DB from ring 0 on IST_DB, whose body
//! raises a second #DB from ring 0. Through the IST gate it starts at the IST
//! top, over the running body's own stack, unless the first #DB moved the
//! IST pointer down (`shift-only` in its stub, `linux-4.19` around the body:
//! `shift_ist`) or cleared DR7 first (`dr7-guard`, `linux`: the touch raises
//! nothing). `trace_irq_recursion` breaks on the tracing hook, which
//! `linux-4.19` runs under its debug IDT; this test breaks in the body, where
//! only the shift keeps `linux-4.19` apart.
//! The write of OUTER is the register damage kit's store probe: all 15 GPRs
//! and RFLAGS patterned per iteration, compared after both #DBs returned.
//! Proof: one #DB per write of OUTER (DR6.B0), the hook's touches of INNER,
//! the #DBs beyond the outer ones (nested), and the probes checked.
//! Check: `shift-only`, `linux-4.19`: exactly one nested #DB per outer one,
//! depth 2, no incident; `dr7-guard`, `linux`: every touch suppressed, no
//! incident. `naive` is skipped: the nested frame lands on the running
//! body's stack and the kernel crashes (as in `user_db_recursion`).

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Expect, Expectations, Strategy, TestResult, tags};

use super::common::{self, Detection};
use crate::arch::damage::{self, Hazard, R15, Regs, Tally};
use crate::arch::percpu;
use crate::entry::breakpoint::{self, Kind};
use crate::entry::handlers::{self, DbEvent};

testkit::test! {
    run: run,
    iterations: 100,
    tags: &[tags::TCG],
    expect: one_level(
        "naive: the nested #DB overwrites the running #DB body's own stack and crashes"
    ),
}

/// A #DB whose body raises one more: `naive` crashes (`why`, skipped), every
/// other strategy keeps the two frames apart or suppresses the second #DB.
pub(super) const fn one_level(why: &'static str) -> Expectations {
    Expectations {
        naive: Expect::Skip(why),
        shift_only: Expect::Survive,
        linux_4_19: Expect::Survive,
        dr7_guard: Expect::Survive,
        linux: Expect::Survive,
    }
}

static OUTER: AtomicU64 = AtomicU64::new(0);
static INNER: AtomicU64 = AtomicU64::new(0);
static OUTER_DBS: AtomicU64 = AtomicU64::new(0);
static TOUCHES: AtomicU64 = AtomicU64::new(0);

fn on_db(event: &DbEvent) {
    if !event.from_user && event.dr6 & 1 != 0 {
        OUTER_DBS.fetch_add(1, Ordering::Relaxed);
        TOUCHES.fetch_add(1, Ordering::Relaxed);
        INNER.fetch_add(1, Ordering::SeqCst);
    }
}

fn arm_both() -> Result<(), breakpoint::BreakpointError> {
    common::arm(&[
        common::watch(0, OUTER.as_ptr() as u64, Kind::Write, 8),
        common::watch(1, INNER.as_ptr() as u64, Kind::Write, 8),
    ])
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let cpu = percpu::this().index();
    OUTER_DBS.store(0, Ordering::Relaxed);
    TOUCHES.store(0, Ordering::Relaxed);
    common::reset_counts(cpu);
    handlers::set_db_hook(Some(on_db));
    let mut regs = Tally::default();
    for i in 0..u64::from(ctx.iterations) {
        // The checker disarms DR7 at its recursion cap: arm again each time.
        if let Err(e) = arm_both() {
            handlers::set_db_hook(None);
            breakpoint::reset();
            testkit::fail!(ctx, "arming the watchpoints: {e:?}");
        }
        let mut fill = Regs::pattern(i, 0xd2);
        fill.0[R15] = OUTER.as_ptr() as u64;
        regs.record(i, &fill, &damage::run_kernel(Hazard::Store, &fill));
    }
    breakpoint::reset();
    handlers::set_db_hook(None);

    let evidence = common::collect(ctx, cpu);
    let n = u64::from(ctx.iterations);
    let outer = OUTER_DBS.load(Ordering::Relaxed);
    let touches = TOUCHES.load(Ordering::Relaxed);
    let nested = evidence.nested_dbs(outer);
    let depth = evidence.report.max_depth[0];
    ctx.note(format_args!(
        "outer_dbs={outer} touches={touches} nested_dbs={nested} suppressed={} max_depth={depth} \
         incidents={} recovered={} {}",
        evidence.suppressed(touches, outer),
        evidence.report.incidents,
        evidence.report.recovered,
        common::Registers(&regs),
    ));
    evidence.check_complete(ctx)?;
    if outer != n || touches != n {
        testkit::fail!(
            ctx,
            "{outer} #DBs and {touches} touches for {n} watched kernel writes"
        );
    }
    let guarded = matches!(ctx.strategy, Strategy::Dr7Guard | Strategy::Linux);
    if !guarded && nested < outer {
        testkit::fail!(
            ctx,
            "the bodies never raised the second #DB ({nested} nested for {outer})"
        );
    }
    if nested > outer || depth > 2 {
        testkit::fail!(
            ctx,
            "{nested} nested #DBs for {outer} outer #DBs, depth {depth}: more than one level"
        );
    }
    Ok(common::with_damage(
        evidence.observed(Detection::default()),
        &regs,
    ))
}
