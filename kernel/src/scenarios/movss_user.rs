//! movss_user: CVE-2018-8897's own shape. Ring 3 loads SS from an address
//! with a watchpoint, and the very next instruction enters the kernel.
//!
//! Setup: a read/write watchpoint on a word of the ring-3 sandbox that holds
//! the user data selector; SYSCALL enabled (TF in SFMASK) for the `syscall`
//! case; #BP expected for the INT3 cases (the gate has DPL 3).
//! Hazard: MOV SS holds the watchpoint's #DB back for one instruction. When
//! that instruction is INT3, `int 3` or SYSCALL, silicon delivers the #DB on
//! the first instruction of the kernel entry (the #BP stub, or the SYSCALL
//! entry still on the user's RSP), in ring 0, where the entry code did not
//! expect a #DB: the case Linux got wrong in 2018.
//! Proof: one #DB per iteration at the entry's first instruction, from ring 0,
//! with DR6.B<slot>. None at all is `not-reproduced`: QEMU TCG does not hold a
//! data watchpoint back after MOV SS (hw-only there), Bochs drops it when INT3
//! or INT n follows.
//! Check: that count, the program came back, and the checker (drained by the
//! runner after the test) found nothing under any strategy.
//! Registers (the damage kit): the `int3` and `int_n` programs are the kit's
//! ring-3 probes (all 15 GPRs and RFLAGS patterned per iteration, compared
//! in ring 3 after the #BP and the #DB returned). `syscall` cannot: ring 3
//! never resumes after its SYSCALL (the test entry goes back to the kernel).

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use super::common;
use crate::arch::damage::{Hazard, R15, Regs, Tally};
use crate::arch::gdt::USER_DATA_SELECTOR;
use crate::arch::user::{self, Exit, Program, SYSCALL_RETURNED};
use crate::entry::breakpoint::{self, Kind};
use crate::entry::handlers::{self, DbEvent};
use crate::entry::traps;
use crate::mm;

const SLOT: usize = 2;
/// The sandbox word that holds the selector MOV SS loads.
const SELECTOR_CELL: usize = 8;

static AT_ENTRY: AtomicU64 = AtomicU64::new(0);
static ELSEWHERE: AtomicU64 = AtomicU64::new(0);
static ENTRY_RIP: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    case: "int3",
    run: |ctx| run(ctx, Program::MovSsInt3),
    iterations: 50,
    tags: &[tags::HW_ONLY],
}

testkit::test! {
    case: "int_n",
    run: |ctx| run(ctx, Program::MovSsIntN3),
    iterations: 50,
    tags: &[tags::HW_ONLY],
}

testkit::test! {
    case: "syscall",
    run: |ctx| run(ctx, Program::MovSsSyscall),
    iterations: 50,
    tags: &[tags::HW_ONLY],
}

fn on_db(event: &DbEvent) {
    if event.rip == ENTRY_RIP.load(Ordering::Relaxed)
        && !event.from_user
        && event.dr6 & (1 << SLOT) != 0
    {
        AT_ENTRY.fetch_add(1, Ordering::Relaxed);
    } else {
        ELSEWHERE.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(ctx: &mut Context<'_>, program: Program) -> TestResult {
    let sandbox = mm::user_sandbox();
    let selector = &sandbox.data[SELECTOR_CELL];
    selector.store(USER_DATA_SELECTOR, Ordering::SeqCst);
    let (entry, came_back) = match program {
        Program::MovSsSyscall => (
            user::syscall_entry_range().0,
            Exit::Returned(SYSCALL_RETURNED),
        ),
        _ => (traps::stub_address(3), Exit::Returned(0)),
    };
    ENTRY_RIP.store(entry, Ordering::Relaxed);
    AT_ENTRY.store(0, Ordering::Relaxed);
    ELSEWHERE.store(0, Ordering::Relaxed);
    user::enable_syscall(true);
    handlers::set_db_hook(Some(on_db));
    handlers::expect_breakpoints(true);
    let bp = common::watch(SLOT, selector.as_ptr() as u64, Kind::ReadWrite, 2);
    if let Err(e) = common::arm(&[bp]) {
        testkit::fail!(ctx, "arming the watchpoint: {e:?}");
    }
    let (mut wrong_exits, mut regs) = (0, Tally::default());
    for i in 0..u64::from(ctx.iterations) {
        let came_back_right = match probe(program) {
            Some(hazard) => {
                let mut fill = Regs::pattern(i, 0x55);
                fill.0[R15] = selector.as_ptr() as u64;
                match sandbox.run_probe(hazard, &fill) {
                    Some(Ok(seen)) => {
                        regs.record(i, &fill, &seen);
                        true
                    }
                    _ => false,
                }
            }
            None => same_end(sandbox.run(program, selector.as_ptr() as u64, 0), came_back),
        };
        wrong_exits += u32::from(!came_back_right);
    }
    breakpoint::reset();
    handlers::expect_breakpoints(false);
    handlers::set_db_hook(None);

    let iterations = u64::from(ctx.iterations);
    let at_entry = AT_ENTRY.load(Ordering::Relaxed);
    let elsewhere = ELSEWHERE.load(Ordering::Relaxed);
    ctx.counters.dbs = Some(at_entry + elsewhere);
    ctx.note(format_args!(
        "db_at_entry={at_entry} db_elsewhere={elsewhere} wrong_exits={wrong_exits} {}",
        common::Registers(&regs)
    ));
    testkit::ensure!(ctx, regs.damaged == 0, "ring-3 MOV SS: {regs}");
    testkit::ensure!(
        ctx,
        wrong_exits == 0,
        "{wrong_exits} of {iterations} programs did not come back as expected"
    );
    if at_entry == 0 {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "no MOV SS #DB reached the entry's first instruction in {iterations} tries ({elsewhere} elsewhere)"
        ))));
    }
    testkit::ensure!(
        ctx,
        at_entry == iterations,
        "{at_entry} of {iterations} #DBs landed on the entry's first instruction"
    );
    Ok(common::with_damage(
        Observed::Ran(Default::default()),
        &regs,
    ))
}

/// The damage kit's ring-3 probe with the same two instructions, if any.
fn probe(program: Program) -> Option<Hazard> {
    match program {
        Program::MovSsInt3 => Some(Hazard::MovSsInt3),
        Program::MovSsIntN3 => Some(Hazard::MovSsIntN3),
        _ => None,
    }
}

/// INT3 programs come back through `int 0x80` with whatever RAX held; only
/// the kind of ending matters for them.
fn same_end(seen: Exit, want: Exit) -> bool {
    match (seen, want) {
        (Exit::Returned(_), Exit::Returned(0)) => true,
        _ => seen == want,
    }
}
