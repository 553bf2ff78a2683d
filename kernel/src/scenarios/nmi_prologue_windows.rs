//! nmi_prologue_windows: a second NMI aimed at each instruction of the `linux`
//! NMI stub that the first NMI executes, its prologue included, through an
//! execute breakpoint there whose #DB re-opens NMIs.
//!
//! Setup: CPU 0 (A) spins in `breakpoint::spin_anchored`, which keeps nothing
//! on its stack and puts RSP back when an NMI returns with another one. Per
//! iteration A arms DR0 (execute) on instruction k of `nmi_stub_linux`, k
//! swept over the whole stub; CPU 1 (B) sends the first NMI.
//! Hazard: the first NMI reaches k and raises a #DB; its IRET re-opens NMIs
//! with the first NMI wherever k is, its prologue included (the IRET of any
//! exception does; QEMU TCG clears NMI blocking on every IRET). The #DB hook
//! moves DR0 to an address no code runs (one shot: DR0-3 are not part of the
//! #DB entry's DR7 save/restore, and the second NMI's own prologue passes k
//! again), saves IST_NMI's top words and tells B, which sends the second NMI
//! at once: it is pending during the #DB's exit and lands on k.
//! Prediction, from the stub's layout: before `repeat_nmi` the first NMI has
//! not yet made its "outermost" copy nor set "NMI executing", so nothing
//! tells the second NMI that it is nested; it takes the `nmi_first` path,
//! overwrites the hardware frame of the first (and its rdx slot, and part of
//! its copy) and runs a body inside it: must corrupt. From `repeat_nmi` on it
//! is recognised (repeat range, "NMI executing", or RSP on IST_NMI with DF
//! set) and leaves quietly: must stay clean. This is why Linux keeps
//! breakpoints out of its entry text (`noinstr`, `within_cpu_entry`).
//! Proof: B reads each landing from the hardware frame on A's IST_NMI top;
//! the window table counts landings per instruction; A's entry counts its
//! nested branches. An instruction the first NMI runs with DR7 clear (its
//! body's DR7 save..restore) cannot hold a breakpoint: never aimed at here.
//! Check (timing verdict): a landing corrupted iff an NMI body ran with an
//! interrupted context other than the spin (a second body inside the first
//! NMI), or the checker found an incident, or the spin's RSP came back wrong;
//! every landing must match its prediction. The NMI body that overwrote the
//! first NMI writes back the saved words (not part of any checked frame), so
//! the first NMI finishes and the run goes on; the corruption is reported on
//! the wire. Only the `linux` stub nests: the plain one is skipped.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, Expect, Expectations, TestResult};

use super::aim::NmiCounts;
use super::common::{self, Window};
use crate::arch::{lapic, percpu, time};
use crate::entry::breakpoint::{self, Anchor, Breakpoint, Kind, NmiTop};
use crate::entry::checker::{self, IstFrame};
use crate::entry::counters::{self, Counter, Snapshot};
use crate::entry::handlers::{self, DbEvent};
use crate::entry::nmi;

const VICTIM: usize = 0;
const SENDER: usize = 1;
const STEP_TIMEOUT_US: u64 = 100_000;
/// How long B waits for the first NMI to reach k before it gives up (k is
/// not on the path, or runs with DR7 clear).
const REACH_TIMEOUT_US: u64 = 5_000;
const MAX_K: usize = 224;
const UNKNOWN: u8 = 0;
const REACHED: u8 = 1;
const UNREACHED: u8 = 2;

static GO: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static SENT: AtomicU64 = AtomicU64::new(0);
static ANCHOR: Anchor = Anchor {
    rsp: AtomicU64::new(0),
    repairs: AtomicU64::new(0),
    spinning: AtomicU64::new(0),
    stop: AtomicU64::new(0),
    rdx: AtomicU64::new(0),
};
/// The instruction DR0 is on this iteration.
static K: AtomicU64 = AtomicU64::new(0);
/// 1: the first NMI hit k (the #DB hook ran).
static STAGE: AtomicU64 = AtomicU64::new(0);
/// IST_NMI's top words, saved by the #DB hook, and whether they were restored.
static SAVED: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
static RESTORED: AtomicBool = AtomicBool::new(false);
/// NMI bodies that ran inside another NMI this iteration, and where.
static NESTED_BODIES: AtomicU64 = AtomicU64::new(0);
static NESTED_RIP: AtomicU64 = AtomicU64::new(0);
/// Where B saw the second NMI land (0: it did not).
static LANDED: AtomicU64 = AtomicU64::new(0);
static WINDOW: Window = Window::new();

testkit::test! {
    run: run,
    iterations: 700,
    cpus: 2,
    timeout_ms: 120_000,
    tags: &[testkit::tags::TCG],
    expect: Expectations {
        naive: Expect::Skip("the plain NMI stub has no nesting prologue to aim at"),
        shift_only: Expect::Skip("the plain NMI stub has no nesting prologue to aim at"),
        linux_4_19: Expect::Timing,
        dr7_guard: Expect::Skip("the plain NMI stub has no nesting prologue to aim at"),
        linux: Expect::Timing,
    },
}

/// The first NMI at k: save what a second NMI would overwrite, take DR0 off
/// (DR7 is the #DB entry's to restore), let B send.
fn on_db(event: &DbEvent) {
    if percpu::this().index() != VICTIM || event.rip != K.load(Ordering::Relaxed) {
        return;
    }
    if STAGE.load(Ordering::SeqCst) != 0 {
        return;
    }
    for (saved, word) in SAVED.iter().zip(NmiTop::read().0) {
        saved.store(word, Ordering::Relaxed);
    }
    let parked = Breakpoint {
        slot: 0,
        addr: breakpoint::parking_address(),
        kind: Kind::Execute,
        len: 1,
    };
    let _ = breakpoint::arm(parked, true);
    STAGE.store(1, Ordering::SeqCst);
}

/// A body whose interrupted context is not the spin ran inside another NMI.
/// If that NMI is still in its prologue, write its words back.
fn on_nmi(frame: &mut IstFrame) {
    if percpu::this().index() != VICTIM {
        return;
    }
    let rip = frame.regs.rip;
    let (spin_start, spin_end) = breakpoint::spin_range();
    if (spin_start..spin_end).contains(&rip) {
        return;
    }
    NESTED_BODIES.fetch_add(1, Ordering::SeqCst);
    NESTED_RIP.store(rip, Ordering::SeqCst);
    let prologue = nmi::linux_range().0..nmi::repeat_range().0;
    if prologue.contains(&rip) && STAGE.load(Ordering::SeqCst) == 1 {
        let mut words: [u64; 6] = core::array::from_fn(|i| SAVED[i].load(Ordering::Relaxed));
        words[0] = &ANCHOR as *const Anchor as u64; // the spin's rdx
        NmiTop(words).write();
        RESTORED.store(true, Ordering::SeqCst);
    }
}

/// B: per iteration, the first NMI, then the second as soon as the first
/// has hit k.
fn sender(_: u64) -> u64 {
    let victim = percpu::cpu(VICTIM).lapic_id();
    let entered = || counters::read(VICTIM, Counter::NmiEntered);
    let mut seen = 0;
    while !STOP.load(Ordering::Acquire) {
        let go = GO.load(Ordering::Acquire);
        if go == seen {
            core::hint::spin_loop();
            continue;
        }
        seen = go;
        time::wait_until(STEP_TIMEOUT_US, || {
            ANCHOR.spinning.load(Ordering::SeqCst) == 1
        });
        lapic::send_nmi(victim);
        SENT.fetch_add(1, Ordering::SeqCst);
        if time::wait_until(REACH_TIMEOUT_US, || STAGE.load(Ordering::SeqCst) == 1) {
            let before = entered();
            lapic::send_nmi(victim);
            SENT.fetch_add(1, Ordering::SeqCst);
            if time::wait_until(STEP_TIMEOUT_US, || entered() > before) {
                LANDED.store(nmi::last_landing(VICTIM).rip, Ordering::SeqCst);
            }
        }
        ANCHOR.stop.store(1, Ordering::Release);
        DONE.store(go, Ordering::Release);
    }
    seen
}

/// Landings tallied against their prediction.
#[derive(Default)]
struct Tally {
    corrupt: u64,
    clean: u64,
    mismatches: u64,
    first_mismatch: Option<(u64, bool)>,
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let stub = crate::entry::nmi_stub(ctx.strategy);
    let flags = u64::from(crate::entry::strategy::flags(ctx.strategy));
    WINDOW.reset(stub, flags);
    let (start, end) = stub.range();
    let mut ks: heapless::Vec<u64, MAX_K> = heapless::Vec::new();
    for e in crate::entry::window() {
        if e.addr >= start && e.addr < end && e.flags & flags == e.flags {
            let _ = ks.push(e.addr);
        }
    }
    let mut reach = [UNKNOWN; MAX_K];
    let repeat = nmi::repeat_range().0;
    common::reset_counts(VICTIM);
    SENT.store(0, Ordering::SeqCst);
    DONE.store(0, Ordering::SeqCst);
    STOP.store(false, Ordering::Release);
    GO.store(0, Ordering::Release);
    let before = Snapshot::take(VICTIM);
    handlers::set_db_hook(Some(on_db));
    handlers::set_nmi_hook(Some(on_nmi));
    ctx.platform().start_on(SENDER, sender, 0)?;
    let (mut tally, mut next, mut reports) = (Tally::default(), 0usize, 0u32);
    let (mut repairs, mut rdx_damaged, mut unreached) = (0u64, 0u64, 0u64);
    for i in 1..=u64::from(ctx.iterations) {
        // Every instruction once, then only those the first NMI reached.
        let index = (0..ks.len())
            .map(|d| (next + d) % ks.len())
            .find(|&x| reach[x] != UNREACHED)
            .unwrap_or(0);
        next = index + 1;
        let k = ks[index];
        K.store(k, Ordering::Relaxed);
        STAGE.store(0, Ordering::SeqCst);
        RESTORED.store(false, Ordering::SeqCst);
        NESTED_BODIES.store(0, Ordering::SeqCst);
        LANDED.store(0, Ordering::SeqCst);
        ANCHOR.stop.store(0, Ordering::SeqCst);
        ANCHOR.repairs.store(0, Ordering::SeqCst);
        let incidents = checker::incidents_total(VICTIM);
        let bp = Breakpoint {
            slot: 0,
            addr: k,
            kind: Kind::Execute,
            len: 1,
        };
        if breakpoint::arm(bp, true).is_err() {
            testkit::fail!(ctx, "could not arm DR0 at {k:#x}");
        }
        GO.store(i, Ordering::Release);
        breakpoint::spin_anchored(&ANCHOR);
        time::wait_until(4 * STEP_TIMEOUT_US, || DONE.load(Ordering::Acquire) == i);
        breakpoint::reset();
        let reached = STAGE.load(Ordering::SeqCst) == 1;
        if reach[index] == UNKNOWN {
            reach[index] = if reached { REACHED } else { UNREACHED };
        }
        unreached += u64::from(!reached);
        repairs += ANCHOR.repairs.load(Ordering::SeqCst);
        let anchor = &ANCHOR as *const Anchor as u64;
        rdx_damaged += u64::from(ANCHOR.rdx.load(Ordering::SeqCst) != anchor);
        let nested = NESTED_BODIES.load(Ordering::SeqCst);
        let corrupted = nested > 0
            || checker::incidents_total(VICTIM) > incidents
            || ANCHOR.repairs.load(Ordering::SeqCst) > 0;
        // The body that overwrote the first NMI may have put its frame back
        // before B read it: then the body's own record says where it landed.
        let mut rip = LANDED.load(Ordering::SeqCst);
        if RESTORED.load(Ordering::SeqCst) {
            rip = NESTED_RIP.load(Ordering::SeqCst);
        }
        if reached && rip >= start && rip < end {
            let at = WINDOW.record(rip);
            let must = rip < repeat;
            if corrupted && let Some(at) = at {
                WINDOW.corrupted(at);
            }
            if must {
                tally.corrupt += 1;
            } else {
                tally.clean += 1;
            }
            if must != corrupted {
                tally.mismatches += 1;
                tally.first_mismatch.get_or_insert((rip - start, corrupted));
            }
            if corrupted && reports < 8 {
                reports += 1;
                ctx.report_corruption(testkit::Corruption {
                    cpu: Some(VICTIM as u32),
                    iteration: i as u32,
                    vector: 2,
                    field: "nmi_original_rip",
                    expected: SAVED[1].load(Ordering::Relaxed),
                    seen: rip,
                });
            }
        }
        if i % 100 == 0 {
            ctx.progress(i as u32);
        }
    }
    STOP.store(true, Ordering::Release);
    let _ = ctx.platform().join(SENDER, 1000);
    handlers::set_nmi_hook(None);
    handlers::set_db_hook(None);

    let sent = SENT.load(Ordering::SeqCst);
    let count = |c: Counter| Snapshot::take(VICTIM).since(&before, c);
    let nmis = NmiCounts::settle(VICTIM, &before, sent);
    let (entered, by_flag, by_rsp, in_repeat) =
        (nmis.entered, nmis.by_flag, nmis.by_rsp, nmis.in_repeat);
    let evidence = common::collect(ctx, VICTIM);
    let aimed = ks.iter().zip(&reach).filter(|(_, r)| **r == REACHED);
    let prologue_aimed = aimed.clone().filter(|(a, _)| **a < repeat).count();
    let landable = WINDOW.coverage_within(repeat, end);
    let prologue = WINDOW.coverage_within(start, repeat);
    ctx.counters.nmis = Some(count(Counter::NmiHandled));
    ctx.note(format_args!(
        "sent={sent} entered={entered} nested_by_flag={by_flag} nested_by_rsp={by_rsp} nested_in_repeat={in_repeat} first={} user_rsp_on_stack={} aimed_at={} (prologue {prologue_aimed}) unreached={unreached} rsp_repairs={repairs} rdx_damaged={rdx_damaged} incidents={} {} prologue={}/{} landable={}/{} predicted_corrupt={} predicted_clean={} mismatches={}",
        nmis.first,
        count(Counter::NmiUserRspOnStack),
        aimed.count(),
        evidence.report.incidents,
        WINDOW.coverage(),
        prologue.hit,
        prologue.total,
        landable.hit,
        landable.total,
        tally.corrupt,
        tally.clean,
        tally.mismatches,
    ));
    WINDOW.emit(ctx, stub, |i| {
        let addr = ks.get(i).copied().unwrap_or(end);
        Some(addr < repeat)
    });
    if let Some((offset, corrupted)) = tally.first_mismatch {
        ctx.note(format_args!(
            "first wrong prediction: nmi_stub_linux+{offset:#x} {}",
            if corrupted {
                "corrupted, predicted clean"
            } else {
                "clean, predicted to corrupt"
            }
        ));
    }
    testkit::ensure!(
        ctx,
        evidence.complete(),
        "nesting went deeper than the checker tracks"
    );
    let mut observed = evidence.observed(common::Detection::default());
    if let testkit::Observed::Ran(e) = &mut observed {
        e.lost_nmis = sent.saturating_sub(entered);
        e.predicted_corrupt = tally.corrupt;
        e.predicted_clean = tally.clean;
        e.mismatches = tally.mismatches;
    }
    Ok(observed)
}
