//! syscall_tf: SYSCALL with RFLAGS.TF set (the `sysenter_tf` and
//! `kernel_tf_leak` hazards of the design, with SYSCALL).
//!
//! Setup: SYSCALL enabled on this CPU into a test entry that runs three NOPs
//! on the *user* stack, then goes back to the parked kernel context.
//! Hazard: TF set in ring 3 right before SYSCALL. Unless SFMASK clears TF,
//! TF leaks into the kernel: a #DB lands on the first instruction of the
//! entry, before any stack switch (kernel CS, user RSP), and on every entry
//! instruction after it (SYSENTER cannot mask TF at all: same hazard).
//! Proof: the #DB hook counts #DBs in ring 0 whose RIP lies in the SYSCALL
//! entry; the leaking phase must show them, so the hazard really happened.
//! Check: with TF in SFMASK (Linux's setting) not one #DB in the entry (QEMU
//! 10 TCG measured: 0 per call); without it, exactly one per entry
//! instruction (four: three NOPs and the INT), the first at its start.
//! Registers (the damage kit): not checked here. The single-steps interrupt
//! the SYSCALL entry itself, and ring 3 never resumes after SYSCALL (the test
//! entry goes back to the parked kernel context), so no patterned code is
//! interrupted and comes back to compare.

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use crate::arch::user::{self, Exit, Program, SYSCALL_RETURNED};
use crate::entry::handlers::{self, DbEvent};
use crate::mm;

/// Instructions the test entry runs before leaving: three NOPs and `int 0x81`.
const ENTRY_INSTRUCTIONS: u64 = 4;

static AT_FIRST: AtomicU64 = AtomicU64::new(0);
static IN_ENTRY: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    run: run,
    iterations: 100,
    tags: &[tags::TCG],
}

fn on_db(event: &DbEvent) {
    let (start, end) = user::syscall_entry_range();
    if event.rip >= start && event.rip < end && !event.from_user {
        IN_ENTRY.fetch_add(1, Ordering::Relaxed);
        AT_FIRST.fetch_add(u64::from(event.rip == start), Ordering::Relaxed);
    }
}

/// Runs the program `iterations` times; returns (#DBs in the entry, of them at
/// its first instruction, calls that did not come back through SYSCALL).
fn calls(iterations: u32) -> (u64, u64, u32) {
    AT_FIRST.store(0, Ordering::Relaxed);
    IN_ENTRY.store(0, Ordering::Relaxed);
    let mut wrong = 0;
    for _ in 0..iterations {
        let exit = mm::user_sandbox().run(Program::SyscallTf, 0, 0);
        wrong += u32::from(exit != Exit::Returned(SYSCALL_RETURNED));
    }
    (
        IN_ENTRY.load(Ordering::Relaxed),
        AT_FIRST.load(Ordering::Relaxed),
        wrong,
    )
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let iterations = ctx.iterations;
    handlers::set_db_hook(Some(on_db));
    user::enable_syscall(true);
    let (masked_dbs, masked_first, masked_wrong) = calls(iterations);
    user::enable_syscall(false);
    let (leaked_dbs, leaked_first, leaked_wrong) = calls(iterations);
    user::enable_syscall(true);
    handlers::set_db_hook(None);

    let n = u64::from(iterations);
    ctx.counters.dbs = Some(masked_dbs + leaked_dbs);
    ctx.note(format_args!(
        "tf_masked: dbs_in_entry={masked_dbs} at_first={masked_first}; \
         tf_leaked: dbs_in_entry={leaked_dbs} at_first={leaked_first}; bad_exits={}",
        masked_wrong + leaked_wrong
    ));
    testkit::ensure!(
        ctx,
        masked_wrong + leaked_wrong == 0,
        "{} calls did not come back through SYSCALL",
        masked_wrong + leaked_wrong
    );
    testkit::ensure!(
        ctx,
        masked_dbs == 0,
        "with TF in SFMASK: {masked_dbs} #DBs in the entry ({masked_first} at its start) for {n} calls"
    );
    if leaked_dbs != ENTRY_INSTRUCTIONS * n || leaked_first != n {
        testkit::fail!(
            ctx,
            "with TF leaking: {leaked_dbs} #DBs in the entry for {n} calls (want {})",
            ENTRY_INSTRUCTIONS * n
        );
    }
    Ok(Observed::Survived)
}
