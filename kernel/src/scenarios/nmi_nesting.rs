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
use crate::arch::damage::{self, Hazard, Regs, Tally, WaitCell};
use crate::arch::percpu::IstSlot;
use crate::arch::{cpu, percpu, time};
use crate::entry::checker::IstFrame;
use crate::entry::counters::Counter;
use crate::entry::strategy::{self, NMI_LATCH, USER_SWITCH};
use crate::entry::{handlers, nmi};
use crate::mm;

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
/// First NMIs that interrupted the damage kit's wait probe in its spin.
static FIRST_IN_PROBE: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Kernel,
    User,
}

/// The cell the iteration's wait probe (ring 0 or ring 3) spins on.
fn wait_cell() -> &'static WaitCell {
    if FROM_USER.load(Ordering::Relaxed) {
        mm::user_sandbox().wait_cell()
    } else {
        damage::kernel_wait_cell()
    }
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
        // Nothing more here: under the strategies that nest, the second NMI
        // has overwritten this hook's stack, and only statics are safe (B
        // ends the probe once the hook has returned).
    });
}

/// B's job: per iteration, one NMI, then the second once A is past its #BP.
fn sender(_: u64) -> u64 {
    LINK.serve(|_| {
        sender::await_probe(wait_cell()); // and into ring 3
        LINK.send();
        if sender::wait_for(&STAGE, 1) {
            // The first NMI's hardware frame, still whole on A's IST_NMI top.
            let in_probe = wait_cell().spinning_at(nmi::last_landing(VICTIM).rip);
            FIRST_IN_PROBE.fetch_add(u64::from(in_probe), Ordering::Relaxed);
            LINK.send();
            STAGE.store(2, Ordering::SeqCst);
        }
        // Whatever happened, the probe of this iteration may end now.
        time::wait_until(STEP_TIMEOUT_US, || !HOOK.running());
        wait_cell().release();
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
    FIRST_IN_PROBE.store(0, Ordering::Relaxed);
    let (mut regs, mut bad_exits) = (Tally::default(), 0u64);
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
        wait_cell().arm();
        HOOK.arm();
        LINK.go(i);
        // A's code while the NMIs come: the damage kit's wait probe, every
        // register patterned, until the first NMI's hook (or B) releases it.
        let fill = Regs::pattern(i, 0x4e);
        let seen = match origin {
            Origin::Kernel => Some(damage::run_kernel(Hazard::Wait, &fill)),
            Origin::User => mm::user_sandbox()
                .run_probe(Hazard::Wait, &fill)
                .and_then(Result::ok),
        };
        match seen {
            Some(seen) => _ = regs.record(i, &fill, &seen),
            None => bad_exits += 1,
        }
        let done = time::wait_until(sender::ROUND_TIMEOUT_US, || {
            victim.nmi_count.load(Ordering::Acquire) >= before + 2 && !HOOK.running()
        });
        incomplete += u64::from(!done);
        // Let a late second NMI finish before the iteration is judged.
        time::wait_until(STEP_TIMEOUT_US, || !HOOK.running());
        detection.end(VICTIM, HOOK.nested_bodies() > nested_before);
        // B's release of this probe is behind it: it cannot end the next one.
        LINK.wait_done(i);
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
    let in_probe = FIRST_IN_PROBE.load(Ordering::Relaxed);
    ctx.counters.nmis = Some(nmis);
    ctx.note(format_args!(
        "sent={sent} entered={entered} handled={nmis} second_nmi_in_handler={windows} nested_bodies={bodies} asm_nested={nested} repeats={repeats} latched={} first_nmi_from_user={} first_nmi_in_probe={in_probe} {} bad_exits={bad_exits} incomplete={incomplete} max_nmi_depth={} recovered={} hazards={} detected={}",
        count(Counter::NmiLatched),
        FIRST_FROM_USER.load(Ordering::Relaxed),
        common::Registers(&regs),
        evidence.report.max_depth[IstSlot::Nmi as usize],
        evidence.report.recovered,
        detection.hazards,
        detection.detected,
    ));
    let iterations = u64::from(ctx.iterations);
    // The register check means something only where the NMIs interrupted
    // the patterned probe (and every probe came back).
    if in_probe * 2 < iterations || bad_exits != 0 {
        testkit::fail!(
            ctx,
            "only {in_probe} of {iterations} first NMIs interrupted the wait probe ({bad_exits} probes did not come back)"
        );
    }
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
    Ok(common::with_damage(
        sender::with_lost(evidence.observed(detection), sent, entered),
        &regs,
    ))
}
