//! nmi_nested_windows: NMIs re-opened inside an NMI by a #BP, and the next
//! NMIs aimed at every instruction of the NMI entry and exit.
//!
//! Setup: CPU 0 (A) spins in kernel code; CPU 1 (B) sends the NMIs and aims.
//! Hazard: B's first NMI enters A's handler, which executes INT3: the #BP's
//! IRET re-opens NMIs with the first NMI still running. Under the strategies
//! that nest (`linux`, `linux-4.19`) B then sends up to three more NMIs, one
//! in flight at a time, each after a delay learned from where earlier ones
//! landed (`aim.rs`): they land on the rest of the first NMI's handler and
//! exit, and on the repeat pass that each nested NMI asks for, which runs
//! `repeat_nmi`, the whole body and the exit again with NMIs open. The plain
//! stub gets one more NMI, while the first NMI's hook still runs: one that
//! landed in its exit (after the checker's compare) would loop on the
//! overwritten frame (the NMI-at-IRET livelock), a hang and no finding.
//! Reachable: an NMI is blocked from its delivery to its IRET, so no NMI can
//! land on the instructions that run only in a freshly delivered NMI (the
//! ring-3 path, the nested tests, the `first_nmi` copy): the landable part of
//! `nmi_stub_linux` is `repeat_nmi..nmi_stub_linux_end`. Both coverages print.
//! Proof: B reads each landing from the hardware frame on A's IST_NMI top
//! (`nmi::last_landing`) into the window table; A's entry counts its nested
//! branches itself: "NMI executing", interrupted RSP on IST_NMI with DF set
//! (the final IRETQ) and RIP in `repeat_nmi..end_repeat_nmi` must each be
//! taken under `linux`/`linux-4.19`; the plain stub must see an NMI body run
//! inside another.
//! Check: every NMI sent entered A's stub (none lost); `linux`, `linux-4.19`:
//! no incident; the others: every iteration with a nested body is an
//! incident (100% detection).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, Expect, Expectations, Observed, TestResult};

use super::aim::{AFTER, Aim, BEFORE, INSIDE, NOT_LANDED};
use super::common::{self, Window};
use super::sender::{self, Counts, Hook, Link, STEP_TIMEOUT_US, VICTIM};
use crate::arch::percpu::IstSlot;
use crate::arch::{cpu, percpu, time};
use crate::entry::checker::IstFrame;
use crate::entry::counters::{self, Counter};
use crate::entry::{Stub, handlers, nmi};

/// Follow-up NMIs per iteration after the #BP (nesting stubs).
const FOLLOW_UPS: usize = 3;

static LINK: Link = Link::new();
static HOOK: Hook = Hook::new();
/// Whether the running strategy nests NMIs through `nmi_stub_linux`.
static NESTING: AtomicBool = AtomicBool::new(false);
/// 1: A's first NMI is past its #BP; 2: B sent the follow-up (plain stub).
static STAGE: AtomicU64 = AtomicU64::new(0);
/// The delays A drew for this iteration's follow-ups, and where B saw them land.
static DELAYS: [AtomicU64; FOLLOW_UPS] = [const { AtomicU64::new(0) }; FOLLOW_UPS];
static RIPS: [AtomicU64; FOLLOW_UPS] = [const { AtomicU64::new(0) }; FOLLOW_UPS];
static CLASSES: [AtomicU64; FOLLOW_UPS] = [const { AtomicU64::new(NOT_LANDED) }; FOLLOW_UPS];
static WINDOW: Window = Window::new();
/// Bytes of IRETQ (REX.W CF).
const IRETQ_LEN: u64 = 2;

testkit::test! {
    run: run,
    iterations: 1_500,
    cpus: 2,
    timeout_ms: 120_000,
    tags: &[testkit::tags::TCG],
    expect: Expectations {
        naive: Expect::Detect,
        shift_only: Expect::Detect,
        linux_4_19: Expect::Survive,
        dr7_guard: Expect::Detect,
        linux: Expect::Survive,
    },
}

/// A's NMI hook: the first body of an iteration re-opens NMIs with INT3.
fn on_nmi(_: &mut IstFrame) {
    HOOK.body(|| {
        cpu::int3(); // its IRET re-opens NMIs inside this one
        STAGE.store(1, Ordering::SeqCst);
        if !NESTING.load(Ordering::Relaxed) {
            // The plain stub: keep the hook running until the next NMI is in.
            sender::wait_for(&STAGE, 2);
            common::spin_cycles(20_000);
        }
    });
}

/// Where a follow-up NMI landed, for the aim: in the stub, in Rust code
/// inside an NMI (too early), or in A's own code after the NMI (too late).
fn classify(landing: nmi::Landing, stub: (u64, u64)) -> u64 {
    let nmi_stack = percpu::cpu(VICTIM).ist_stack(IstSlot::Nmi);
    if landing.rip >= stub.0 && landing.rip < stub.1 {
        INSIDE
    } else if landing.rsp >= nmi_stack.bottom && landing.rsp < nmi_stack.top {
        BEFORE
    } else {
        AFTER
    }
}

/// B: per iteration, the first NMI, then the follow-ups once A is past its #BP.
fn send(stub_start: u64) -> u64 {
    let stub = (stub_start, nmi::linux_range().1.max(nmi::plain_range().1));
    let entered = || counters::read(VICTIM, Counter::NmiEntered);
    LINK.serve(|_| {
        let before = entered();
        LINK.send();
        let reopened =
            sender::wait_for(&STAGE, 1) && time::wait_until(STEP_TIMEOUT_US, || entered() > before);
        let follow_ups = if NESTING.load(Ordering::Relaxed) {
            FOLLOW_UPS
        } else {
            1
        };
        for k in 0..follow_ups.min(usize::from(reopened) * FOLLOW_UPS) {
            common::spin_cycles(DELAYS[k].load(Ordering::Relaxed));
            if !LINK.send_then(|| STAGE.store(2, Ordering::SeqCst)) {
                break;
            }
            let landing = nmi::last_landing(VICTIM);
            RIPS[k].store(landing.rip, Ordering::Relaxed);
            CLASSES[k].store(classify(landing, stub), Ordering::Relaxed);
        }
    })
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let stub = crate::entry::nmi_stub(ctx.strategy);
    let nesting = stub == Stub::NmiLinux;
    NESTING.store(nesting, Ordering::Relaxed);
    WINDOW.reset(stub, u64::from(crate::entry::strategy::flags(ctx.strategy)));
    common::reset_counts(VICTIM);
    HOOK.reset();
    handlers::expect_breakpoints(true);
    // The first follow-up aims at the rest of one NMI, the later ones at a
    // repeat pass: a few INT3 round trips to start with, learned from there.
    let span = common::measure(cpu::int3) * 8;
    let mut aims: [Aim; FOLLOW_UPS] = core::array::from_fn(|_| Aim::new(span));
    let mut detection = common::Detection::default();
    let counts = Counts::take();
    handlers::set_nmi_hook(Some(on_nmi));
    LINK.start(ctx, send, stub.range().0)?;
    let mut incomplete = 0u64;
    for i in 1..=u64::from(ctx.iterations) {
        for (k, aim) in aims.iter_mut().enumerate() {
            DELAYS[k].store(aim.next_delay(&mut ctx.rng), Ordering::Relaxed);
            CLASSES[k].store(NOT_LANDED, Ordering::Relaxed);
        }
        let nested_before = HOOK.nested_bodies();
        detection.begin(VICTIM);
        STAGE.store(0, Ordering::SeqCst);
        // A runs its own code here only when no NMI is running on it.
        let done = LINK.round(i, &HOOK, || {});
        incomplete += u64::from(!done);
        let incidents = detection.incidents_since_begin(VICTIM);
        for (k, aim) in aims.iter_mut().enumerate() {
            let class = CLASSES[k].load(Ordering::Relaxed);
            if class == INSIDE
                && let Some(index) = WINDOW.record(RIPS[k].load(Ordering::Relaxed))
                && incidents > 0
            {
                WINDOW.corrupted(index);
            }
            aim.learn(DELAYS[k].load(Ordering::Relaxed), class);
        }
        detection.end(VICTIM, HOOK.nested_bodies() > nested_before);
        if i % 500 == 0 {
            ctx.progress(i as u32);
        }
    }
    LINK.stop(ctx);
    handlers::set_nmi_hook(None);
    handlers::expect_breakpoints(false);

    let sent = LINK.sent();
    let count = |c: Counter| counts.count(c);
    let entered = counts.settled(Counter::NmiEntered, sent);
    let nested = counts.nested();
    let (by_flag, by_rsp, in_repeat) = (nested.by_flag, nested.by_rsp, nested.in_repeat);
    let evidence = common::collect(ctx, VICTIM);
    let all = WINDOW.coverage();
    let reachable = WINDOW.coverage_within(nmi::repeat_range().0, nmi::linux_range().1);
    ctx.counters.nmis = Some(count(Counter::NmiHandled));
    ctx.note(format_args!(
        "sent={sent} entered={entered} nested_by_flag={by_flag} nested_by_rsp={by_rsp} nested_in_repeat={in_repeat} first={} passes={} user_rsp_on_stack={} nested_bodies={} incomplete={incomplete} incidents={} hazards={} detected={} stub={} {all} reachable={}/{}",
        count(Counter::NmiFirst),
        count(Counter::NmiPasses),
        count(Counter::NmiUserRspOnStack),
        HOOK.nested_bodies(),
        evidence.report.incidents,
        detection.hazards,
        detection.detected,
        stub.symbol(),
        reachable.hit,
        reachable.total,
    ));
    WINDOW.emit(ctx, stub, |_| None);

    evidence.check_complete(ctx)?;
    // The RSP test's only window here is the stub's final IRETQ ("executing"
    // clear, RSP still on IST_NMI, DF set): without single-stepping (Bochs)
    // no landing may reach it, and then the branch had nothing to catch.
    let (_, end) = nmi::linux_range();
    let at_iret = WINDOW.coverage_within(end - IRETQ_LEN, end).hit > 0;
    if nesting && (by_flag == 0 || in_repeat == 0 || (by_rsp == 0 && at_iret)) {
        testkit::fail!(
            ctx,
            "a nested branch never taken: by_flag={by_flag} by_rsp={by_rsp} in_repeat={in_repeat}"
        );
    }
    if nesting && by_rsp == 0 {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "no NMI landed on the final IRETQ, the only place the RSP test can catch here \
             (by_flag={by_flag} in_repeat={in_repeat}; {all} without single-stepping)"
        ))));
    }
    if !nesting && detection.hazards == 0 {
        testkit::fail!(ctx, "no NMI body ran inside another ({sent} NMIs sent)");
    }
    Ok(sender::with_lost(
        evidence.observed(detection),
        sent,
        entered,
    ))
}
