//! nmi_nesting: an NMI handler takes a #BP whose IRET unblocks NMIs, while
//! another CPU sends the next NMI.
//!
//! Setup: CPU 0 (A) arms its NMI hook; CPU 1 (B) is the sender.
//! Hazard: B's first NMI enters A's handler, which executes INT3; the #BP's IRET
//! re-enables NMIs although the NMI handler is still running. B's second NMI
//! then lands on the same IST_NMI top and overwrites the first one's frame,
//! unless the entry code repeats instead of nesting (`linux`).
//! Proof: both NMIs were handled (A's NMI count rises by 2 per iteration) and
//! the second arrived while the first was inside its handler after the IRET.
//! Check: the checker's findings against the expectation: every strategy but
//! `linux` must be caught; `linux` must run clean.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, TestResult};

use super::common;
use super::sender::{self, Counts, Hook, Link, STEP_TIMEOUT_US, VICTIM};
use crate::arch::percpu::IstSlot;
use crate::arch::user::Program;
use crate::arch::{cpu, percpu, time};
use crate::entry::checker::IstFrame;
use crate::entry::counters::Counter;
use crate::entry::handlers;
use crate::entry::strategy::{self, NMI_LATCH, USER_SWITCH};
use crate::mm;

/// How long B waits before the first NMI of a ring-3 iteration (A enters ring 3).
const USER_ENTRY_CYCLES: u64 = 200_000;

static LINK: Link = Link::new();
/// Armed per iteration; the first NMI to run the hook takes it.
static HOOK: Hook = Hook::new();
/// 1: A is inside its first NMI, after the #BP; 2: B sent the second NMI.
static STAGE: AtomicU64 = AtomicU64::new(0);
static WAIT_UNTIL: AtomicU64 = AtomicU64::new(0);
static NESTED_WINDOWS: AtomicU64 = AtomicU64::new(0);
/// Where the first NMI of an iteration is meant to land, and how the handler
/// re-opens NMIs: this file's test (kernel, INT3) or `nmi_from_user_latch`
/// (a ring-3 spin loop, ICEBP).
static FROM_USER: AtomicBool = AtomicBool::new(false);
static FIRST_FROM_USER: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Kernel,
    User,
}

/// The ring-3 spin loop of an iteration waits on this word of the sandbox.
fn user_release() -> &'static AtomicU64 {
    &mm::user_sandbox().data[1]
}

testkit::test! {
    run: run,
    iterations: 500,
    cpus: 2,
    timeout_ms: 60_000,
    tags: &[testkit::tags::TCG],
    expect: sender::NESTED_NMI,
}

/// A's NMI hook. State lives in statics: a nested NMI on the same stack may
/// overwrite this function's stack frame under the strategies that nest.
fn on_nmi(frame: &mut IstFrame) {
    HOOK.body(|| {
        FIRST_FROM_USER.fetch_add(u64::from(frame.regs.cs & 3 == 3), Ordering::Relaxed);
        // Either exception's IRET unblocks NMIs inside this NMI handler.
        if FROM_USER.load(Ordering::Relaxed) {
            cpu::icebp();
        } else {
            cpu::int3();
        }
        STAGE.store(1, Ordering::SeqCst);
        WAIT_UNTIL.store(
            cpu::rdtsc() + STEP_TIMEOUT_US * time::ticks_per_us(),
            Ordering::SeqCst,
        );
        while STAGE.load(Ordering::SeqCst) != 2 && cpu::rdtsc() < WAIT_UNTIL.load(Ordering::SeqCst)
        {
            core::hint::spin_loop();
        }
        // Give the second NMI time to land while this handler still runs.
        common::spin_cycles(20_000);
        NESTED_WINDOWS.fetch_add(
            u64::from(STAGE.load(Ordering::SeqCst) == 2),
            Ordering::Relaxed,
        );
        user_release().store(1, Ordering::SeqCst);
    });
}

/// B's job: per iteration, one NMI, then the second once A is past its #BP.
fn sender(_: u64) -> u64 {
    LINK.serve(|_| {
        if FROM_USER.load(Ordering::Relaxed) {
            common::spin_cycles(USER_ENTRY_CYCLES); // let A get into ring 3 first
        }
        LINK.send();
        if sender::wait_for(&STAGE, 1) {
            LINK.send();
            STAGE.store(2, Ordering::SeqCst);
        }
        // Whatever happened, the ring-3 spin of this iteration may end now.
        time::wait_until(STEP_TIMEOUT_US, || !HOOK.running());
        user_release().store(1, Ordering::SeqCst);
    })
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    sweep(ctx, Origin::Kernel)
}

/// The whole experiment, with the first NMI of each iteration meant to land in
/// kernel code or in a ring-3 spin loop.
pub(super) fn sweep(ctx: &mut Context<'_>, origin: Origin) -> TestResult {
    FROM_USER.store(origin == Origin::User, Ordering::Relaxed);
    FIRST_FROM_USER.store(0, Ordering::Relaxed);
    common::reset_counts(VICTIM);
    NESTED_WINDOWS.store(0, Ordering::Relaxed);
    HOOK.reset();
    let counts = Counts::take();
    let mut detection = common::Detection::default();
    handlers::expect_breakpoints(true);
    handlers::set_nmi_hook(Some(on_nmi));
    LINK.start(ctx, sender, 0)?;
    let victim = percpu::cpu(VICTIM);
    let nmis_before = victim.nmi_count.load(Ordering::Acquire);
    let mut incomplete = 0u64;
    for i in 1..=u64::from(ctx.iterations) {
        let before = victim.nmi_count.load(Ordering::Acquire);
        let nested_before = HOOK.nested_bodies();
        detection.begin(VICTIM);
        STAGE.store(0, Ordering::SeqCst);
        user_release().store(0, Ordering::SeqCst);
        HOOK.arm();
        LINK.go(i);
        if origin == Origin::User {
            mm::user_sandbox().run(Program::Spin, user_release().as_ptr() as u64, 0);
        }
        let done = time::wait_until(sender::ROUND_TIMEOUT_US, || {
            victim.nmi_count.load(Ordering::Acquire) >= before + 2 && !HOOK.running()
        });
        incomplete += u64::from(!done);
        // Let a late second NMI finish before the iteration is judged.
        time::wait_until(STEP_TIMEOUT_US, || !HOOK.running());
        detection.end(VICTIM, HOOK.nested_bodies() > nested_before);
    }
    LINK.stop(ctx);
    handlers::set_nmi_hook(None);
    handlers::expect_breakpoints(false);

    let nmis = victim.nmi_count.load(Ordering::Acquire) - nmis_before;
    let windows = NESTED_WINDOWS.load(Ordering::Relaxed);
    let evidence = common::collect(ctx, VICTIM);
    // What the victim's entry code counted itself.
    let count = |c: Counter| counts.count(c);
    let sent = LINK.sent();
    let entered = count(Counter::NmiEntered);
    let nested = counts.nested().total();
    let repeats = count(Counter::NmiPasses).saturating_sub(count(Counter::NmiFirst));
    let bodies = HOOK.nested_bodies();
    ctx.counters.nmis = Some(nmis);
    ctx.note(format_args!(
        "sent={sent} entered={entered} handled={nmis} second_nmi_in_handler={windows} nested_bodies={bodies} asm_nested={nested} repeats={repeats} latched={} first_nmi_from_user={} incomplete={incomplete} max_nmi_depth={} recovered={} hazards={} detected={}",
        count(Counter::NmiLatched),
        FIRST_FROM_USER.load(Ordering::Relaxed),
        evidence.report.max_depth[IstSlot::Nmi as usize],
        evidence.report.recovered,
        detection.hazards,
        detection.detected,
    ));
    let iterations = u64::from(ctx.iterations);
    testkit::ensure!(
        ctx,
        windows != 0,
        "the second NMI never arrived inside the first ({windows} windows)"
    );
    let from_user = FIRST_FROM_USER.load(Ordering::Relaxed);
    if origin == Origin::User && from_user * 2 < iterations {
        testkit::fail!(
            ctx,
            "only {from_user} of {iterations} first NMIs interrupted ring 3"
        );
    }
    // Linux checks CS first: an NMI from ring 3 runs on the kernel stack and
    // never goes through the nesting tests. The entry's own count must show it.
    let user_path = count(Counter::NmiFromUser);
    if strategy::applies(USER_SWITCH) && user_path < from_user {
        testkit::fail!(
            ctx,
            "{from_user} NMIs interrupted ring 3 but only {user_path} took the ring-3 path: the rest went through the nesting tests"
        );
    }
    // exc_nmi's nmi_state (the 64-bit half of the CVE-2015-3290 fixes): under
    // it no NMI body may start while another runs on this CPU.
    if strategy::applies(NMI_LATCH) && bodies > 0 {
        testkit::fail!(
            ctx,
            "{bodies} NMI bodies started inside another although nmi_state latches ({} latched)",
            count(Counter::NmiLatched)
        );
    }
    evidence.check_complete(ctx)?;
    // Nesting proven from the victim's side: nested NMI bodies (strategies that
    // nest), or the entry's own nested-NMI branches and repeats (`linux`).
    if detection.hazards == 0 && nested == 0 && count(Counter::NmiLatched) == 0 {
        testkit::fail!(
            ctx,
            "the victim never saw an NMI inside an NMI ({sent} sent)"
        );
    }
    Ok(sender::with_lost(
        evidence.observed(detection),
        sent,
        entered,
    ))
}
