//! entry_deny_list: no breakpoint may sit on what the entry code touches
//! before it has saved and cleared DR7 (Linux's `within_cpu_entry`).
//!
//! Setup: none; the list is `breakpoint::for_each_entry_range`.
//! Hazard: `dr7-guard` and `linux` clear DR7 only after they have pushed onto
//! their IST stack and read the per-CPU area and the strategy word; a
//! watchpoint on any of those would fire inside the entry, before the guard.
//! Proof: every range of the list (entry text, trace hook, both IDTs, the
//! strategy word, and per CPU: IST stacks, RSP0 stack, TSS, GDT, per-CPU area)
//! was asked for a watchpoint on its first and its last word.
//! Check: each request is refused unless forced, and a forced one is armed
//! (so the refusals come from the list, not from a broken `arm`).

use testkit::{Context, Observed, TestResult, fail};

use crate::entry::breakpoint::{self, Breakpoint, BreakpointError, Kind};

testkit::test! {
    run: run,
    tags: &[testkit::tags::TCG],
}

fn watch(addr: u64) -> Breakpoint {
    Breakpoint {
        slot: 0,
        addr: addr & !7,
        kind: Kind::Write,
        len: 8,
    }
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let (mut ranges, mut refused) = (0u64, 0u64);
    let mut let_through: Option<(&'static str, u64)> = None;
    breakpoint::for_each_entry_range(|name, (start, end)| {
        ranges += 1;
        for addr in [start, end - 1] {
            match breakpoint::arm(watch(addr), false) {
                Err(BreakpointError::Denied) => refused += 1,
                _ => {
                    breakpoint::reset();
                    let_through.get_or_insert((name, addr));
                }
            }
        }
    });
    ctx.note(format_args!("ranges={ranges} refused={refused}"));
    if let Some((name, addr)) = let_through {
        fail!(
            ctx,
            "the deny-list let a watchpoint on the {name} through at {addr:#x}"
        );
    }
    // The strategy word: never written during a test, safe to arm for real.
    let flags = &crate::entry::strategy::ENTRY_FLAGS as *const _ as u64;
    let forced = breakpoint::arm(watch(flags), true);
    breakpoint::reset();
    if forced.is_err() {
        fail!(ctx, "a forced watchpoint was refused too: {forced:?}");
    }
    if ranges < 8 {
        fail!(ctx, "the deny-list named only {ranges} ranges");
    }
    Ok(Observed::Survived)
}
