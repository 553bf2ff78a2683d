//! trace_irq_recursion: a breakpoint on the tracing hook that #DB entry calls.
//!
//! Setup: the deny-list must refuse an execute breakpoint on the hook; then the
//! test forces one (as a careless kprobe would).
//! Hazard: a #DB (ICEBP) makes #DB entry call the hook, which raises #DB
//! inside the entry; that #DB's entry calls the hook again, and so on, on the
//! same IST stack unless the strategy prevents it. The checker stops the
//! recursion at `RECURSION_CAP` levels by disarming DR7. The ICEBP runs inside
//! the register damage kit's probe: all 15 GPRs and RFLAGS patterned per
//! iteration, compared once the whole recursion has unwound.
//! Proof: the #DB depth the checker saw, the #DB count, and (DR7 strategies) the
//! hook calls made inside #DB entry that did not trap; the probes checked.
//! Check: naive recurses on one IST top and must be caught (`detect`);
//! shift-only and linux-4.19 recurse on lowered regions or, under the debug IDT, on the current stack (depth > 1,
//! no corruption); dr7-guard
//! and linux never recurse (depth 1, every in-entry hook call suppressed).

use testkit::{Context, Expect, Expectations, TestResult};

use super::common;
use crate::arch::damage::{self, Hazard, Regs, Tally};
use crate::arch::percpu;
use crate::entry::breakpoint::{self, Breakpoint, BreakpointError, Kind};
use crate::entry::checker::RECURSION_CAP;
use crate::entry::handlers;
use crate::entry::strategy::{self, DR7_GUARD};
use crate::entry::trace;

testkit::test! {
    run: run,
    iterations: 200,
    tags: &[testkit::tags::TCG],
    expect: Expectations {
        naive: Expect::Detect,
        shift_only: Expect::Survive,
        linux_4_19: Expect::Survive,
        dr7_guard: Expect::Survive,
        linux: Expect::Survive,
    },
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let bp = Breakpoint {
        slot: 0,
        addr: trace::hook_address(),
        kind: Kind::Execute,
        len: 1,
    };
    if breakpoint::arm(bp, false) != Err(BreakpointError::Denied) {
        breakpoint::reset();
        testkit::fail!(
            ctx,
            "deny-list let a breakpoint on the tracing hook through"
        );
    }
    let cpu = percpu::this().index();
    common::reset_counts(cpu);
    let calls_before = trace::calls(cpu);
    let iterations = u64::from(ctx.iterations);
    let mut detection = common::Detection::default();
    let mut regs = Tally::default();
    for i in 0..iterations {
        // The checker disarms DR7 at the recursion cap, so arm again each time.
        if let Err(e) = breakpoint::arm(bp, true) {
            testkit::fail!(ctx, "forcing the breakpoint: {e:?}");
        }
        let dbs = handlers::db_count(cpu);
        detection.begin(cpu);
        let fill = Regs::pattern(i, 0x7e);
        regs.record(i, &fill, &damage::run_kernel(Hazard::Icebp, &fill));
        // The hazard: a #DB raised inside the #DB entry (the first #DB is the
        // ICEBP's).
        detection.end(cpu, handlers::db_count(cpu) - dbs >= 2);
    }
    breakpoint::reset();

    let evidence = common::collect(ctx, cpu);
    let depth = evidence.report.max_depth[0];
    let hook_calls = trace::calls(cpu) - calls_before;
    // One call per #DB entry: entries that did not trap again are the
    // suppressed ones.
    let suppressed = hook_calls.saturating_sub(evidence.nested_dbs(iterations));
    evidence.check_complete(ctx)?;
    testkit::ensure!(
        ctx,
        evidence.dbs >= iterations,
        "only {} #DBs for {iterations} ICEBPs",
        evidence.dbs
    );
    let recursed = depth as usize >= RECURSION_CAP;
    let guarded = strategy::applies(DR7_GUARD);
    if guarded && (depth != 1 || suppressed < iterations) {
        testkit::fail!(
            ctx,
            "DR7 guard still recursed: depth {depth}, suppressed {suppressed}"
        );
    }
    if !guarded && !recursed {
        testkit::fail!(ctx, "the hook breakpoint never recursed (depth {depth})");
    }
    ctx.note(format_args!(
        "dbs={} max_depth={depth} hook_calls={hook_calls} suppressed={suppressed} reentries={} recovered={} hazards={} detected={} {}",
        evidence.dbs,
        evidence.report.reentries,
        evidence.report.recovered,
        detection.hazards,
        detection.detected,
        common::Registers(&regs),
    ));
    Ok(common::with_damage(evidence.observed(detection), &regs))
}
