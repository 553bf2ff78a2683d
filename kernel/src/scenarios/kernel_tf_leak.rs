//! kernel_tf_leak: TF set in ring 3 must never be left set in kernel code.
//!
//! Setup: the ring-3 sandbox and a #DB hook that sorts single-steps by ring.
//! Hazard: ring 3 sets TF with POPF, steps a NOP, executes INT3 (the gate
//! clears TF for the #BP handler; its IRET gives ring 3 its TF back), steps
//! another NOP, and leaves through `int 0x80` with TF still set. The return
//! path to the parked kernel context is an IRET into ring 0 built from the
//! user's frame: a path that copies the user's RFLAGS into it (or a POPF of
//! them) leaves TF set in kernel code, which then single-steps. The same
//! holds for any exit that restores flags the user chose.
//! Proof: single-step #DBs from ring 3 (DR6.BS, user CS) in every run: TF
//! really was live across the #BP entry and exit and up to the kernel entry.
//! Check: not one single-step #DB in ring 0, and TF clear in the kernel's own
//! RFLAGS after every run. (`syscall_tf` and `sysenter_tf` cover the two
//! system-call entries, where TF leaks by the instruction's own rules.)
//! Registers (the damage kit): not checked here. Its probes keep TF clear
//! (setting it would single-step the probe's own loads and stores, and the
//! ring-0 probe would return to Rust code with TF set); `int3_forms` checks
//! a ring-3 INT3's registers without TF.

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use crate::arch::cpu;
use crate::arch::user::{Exit, Program};
use crate::entry::handlers::{self, DbEvent};
use crate::mm;

/// DR6.BS: the #DB is a single-step.
const DR6_BS: u64 = 1 << 14;
const RFLAGS_TF: u64 = 1 << 8;

static USER_STEPS: AtomicU64 = AtomicU64::new(0);
static KERNEL_STEPS: AtomicU64 = AtomicU64::new(0);
static FIRST_KERNEL_RIP: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    run: run,
    iterations: 100,
    tags: &[tags::TCG],
}

fn on_db(event: &DbEvent) {
    if event.dr6 & DR6_BS == 0 {
        return;
    }
    if event.from_user {
        USER_STEPS.fetch_add(1, Ordering::Relaxed);
    } else {
        KERNEL_STEPS.fetch_add(1, Ordering::Relaxed);
        let _ =
            FIRST_KERNEL_RIP.compare_exchange(0, event.rip, Ordering::Relaxed, Ordering::Relaxed);
    }
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    for counter in [&USER_STEPS, &KERNEL_STEPS, &FIRST_KERNEL_RIP] {
        counter.store(0, Ordering::Relaxed);
    }
    handlers::expect_breakpoints(true);
    handlers::set_db_hook(Some(on_db));
    let (mut bad_exits, mut tf_in_kernel, mut runs_without_steps) = (0u64, 0u64, 0u64);
    for _ in 0..ctx.iterations {
        let before = USER_STEPS.load(Ordering::Relaxed);
        let exit = mm::user_sandbox().run(Program::TfExit, 0, 0);
        tf_in_kernel += u64::from(cpu::rflags() & RFLAGS_TF != 0);
        bad_exits += u64::from(!matches!(exit, Exit::Returned(_)));
        runs_without_steps += u64::from(USER_STEPS.load(Ordering::Relaxed) == before);
    }
    handlers::set_db_hook(None);
    handlers::expect_breakpoints(false);
    let (user, kernel) = (
        USER_STEPS.load(Ordering::Relaxed),
        KERNEL_STEPS.load(Ordering::Relaxed),
    );
    ctx.counters.dbs = Some(user + kernel);
    ctx.note(format_args!(
        "user_steps={user} kernel_steps={kernel} tf_in_kernel={tf_in_kernel} \
         runs_without_user_steps={runs_without_steps} bad_exits={bad_exits}"
    ));
    if bad_exits != 0 || runs_without_steps != 0 {
        testkit::fail!(
            ctx,
            "the hazard did not happen: {runs_without_steps} runs without a ring-3 \
             single-step, {bad_exits} runs that did not return"
        );
    }
    if kernel != 0 || tf_in_kernel != 0 {
        testkit::fail!(
            ctx,
            "TF leaked into ring 0: {kernel} kernel single-steps (first at {:#x}), \
             TF set after {tf_in_kernel} runs",
            FIRST_KERNEL_RIP.load(Ordering::Relaxed)
        );
    }
    Ok(Observed::Survived)
}
