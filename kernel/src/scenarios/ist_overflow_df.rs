//! ist_overflow_df: overflow the #DB IST stack into its guard page.
//!
//! Setup: a #DB hook that recurses, eating stack, once armed.
//! Hazard: ICEBP raises #DB; the hook runs IST_DB down into the unmapped guard
//! page; the #PF cannot be pushed there, so the CPU raises #DF, which has its
//! own IST stack. With a shared stack, or no guard page, this would be a triple
//! fault or silent corruption of whatever lies below.
//! Proof: the #DF arrived, with the faulting RSP inside the guard page.
//! Check: every iteration ends in a clean, caught #DF; the canaries at the
//! bottom of IST_DB were reached (the overflow really went all the way).
//! Registers (the damage kit): not checked here. The #DB never returns to the
//! code it interrupted: the #DF abandons it, by design of the hazard.

use core::sync::atomic::{AtomicBool, Ordering};

use testkit::{Context, Observed, TestResult};

use crate::arch::{cpu, percpu};
use crate::entry::{checker, df, handlers};

static OVERFLOW: AtomicBool = AtomicBool::new(false);

testkit::test! {
    run: run,
    iterations: 5,
    max_iterations: 50,
    tags: &[testkit::tags::TCG],
}

/// Eats 512 bytes of stack per level until the guard page stops it.
#[inline(never)]
fn burn(level: u64) -> u64 {
    let mut pad = [level; 64];
    core::hint::black_box(&mut pad);
    if level < 1_000_000 {
        burn(level + 1).wrapping_add(pad[7])
    } else {
        pad[0]
    }
}

fn on_db(_: &handlers::DbEvent) {
    if OVERFLOW.load(Ordering::Relaxed) {
        core::hint::black_box(burn(0));
    }
}

extern "C" fn raise_db() {
    cpu::icebp();
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let stack = percpu::this().ist_stacks()[0];
    let guard_page = (stack.bottom - 4096, stack.bottom);
    handlers::set_db_hook(Some(on_db));
    OVERFLOW.store(true, Ordering::Relaxed);
    let mut caught = 0;
    let mut last_rip = 0;
    let mut bottom_reached = 0;
    for _ in 0..ctx.iterations {
        let Some(fault) = df::catch(raise_db) else {
            break;
        };
        if fault.rsp >= guard_page.0 && fault.rsp < guard_page.1 + 64 && fault.error_code == 0 {
            caught += 1;
            last_rip = fault.rip;
        }
        // The recursion must have used the stack down to its last page.
        let (used, _) = checker::stack_usage(stack);
        bottom_reached += u32::from(used + 4096 >= stack.top - stack.bottom);
        checker::paint(stack); // the stack is idle again: fresh paint for the next round
    }
    OVERFLOW.store(false, Ordering::Relaxed);
    handlers::set_db_hook(None);
    ctx.note(format_args!(
        "double_faults={caught} bottom_reached={bottom_reached} guard={:#x} faulting_rip={last_rip:#x}",
        guard_page.0
    ));
    let iterations = ctx.iterations;
    if caught != iterations || bottom_reached != iterations {
        testkit::fail!(
            ctx,
            "{caught} of {iterations} overflows ended in a #DF at the guard page"
        );
    }
    Ok(Observed::Survived)
}
