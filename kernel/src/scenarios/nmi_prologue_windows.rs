//! nmi_prologue_windows: a second NMI aimed at each instruction of the `linux`
//! NMI stub that the first NMI executes, its prologue included, through an
//! execute breakpoint there whose #DB re-opens NMIs.
//!
//! Setup: CPU 0 (A) spins, in turn in ring 0 (`breakpoint::spin_anchored`,
//! which keeps nothing on its stack and puts RSP back if an NMI returns with
//! another), in ring 3 (the sandbox's spin), and in ring 0 with RSP on
//! IST_NMI, DF clear or set (the RSP test's two answers). Per iteration A
//! arms DR0 (execute) on instruction k of `nmi_stub_linux`, k swept over the
//! stub, and CPU 1 (B) sends the first NMI. An instruction the first NMI runs
//! with DR7 clear (its body's DR7 save..restore) cannot be stopped at from
//! outside: for those after the body's call of the phases, the first NMI's
//! own hook arms DR0 (no #DB entry restores DR7 over it there); those before
//! the call stay out of reach (see the window table).
//! Hazard: the first NMI reaches k and raises a #DB whose IRET re-opens NMIs
//! there, prologue included (any IRET does; QEMU TCG clears NMI blocking on
//! every IRET). The #DB hook moves DR0 to an address no code runs (one shot:
//! DR0-3 are not in the #DB entry's DR7 save/restore, and the second NMI's own
//! prologue may pass k again), saves IST_NMI's top words and tells B, which
//! sends the second NMI at once: pending through the #DB's exit, it lands on k.
//! Prediction, from the stub's labels: before `repeat_nmi` (kernel path) or
//! before the ring-3 path has copied its frame to RSP0 (`user_path_range`),
//! the first NMI still needs its hardware frame and rdx slot on IST_NMI, and
//! nothing tells the second NMI it is nested ("NMI executing" is not yet set):
//! it takes `nmi_first`, overwrites them and runs a body: must corrupt. From
//! `repeat_nmi` on it is recognised (repeat range, "NMI executing", RSP on
//! IST_NMI with DF set) and leaves quietly; after the ring-3 copy it runs on
//! an IST_NMI the first NMI has left: both clean. Linux keeps breakpoints out
//! of its entry text (`noinstr`, `within_cpu_entry`) for this reason.
//! Proof: B reads each landing from A's IST_NMI top into the window table;
//! A's entry counts its nested branches.
//! Check (timing verdict): a landing corrupted iff the first NMI read a word
//! the second overwrote: the second NMI's body writes the saved words back
//! (the rdx slot and hardware frame: in no checked frame, so the run goes
//! on) and points DR1/DR2 (read/write watchpoints) at them; a hit means the
//! first NMI still needed them. A checker incident, or the spin's RSP coming
//! back wrong, counts as corruption too. Each landing must match its
//! prediction. The plain stub does not nest: skipped; `linux-4.19` too (see
//! its expectation).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, Expect, Expectations, TestResult};

use super::aim::hold;
use super::aim::{Tally, must_corrupt, user_path_range};
use super::common::{self, Window};
use super::sender::{self, Counts, Link, VICTIM};
use crate::arch::percpu::{self, IstSlot};
use crate::arch::time;
use crate::arch::user::Program;
use crate::entry::breakpoint::{self, Anchor};
use crate::entry::checker;
use crate::entry::counters::{self, Counter};
use crate::entry::handlers;
use crate::entry::nmi;
use crate::mm;

const MAX_K: usize = 224;
const UNKNOWN: u8 = 0;
const REACHED: u8 = 1;
const UNREACHED: u8 = 2;
/// How long B waits for the first NMI to reach k: past it, k is not on that
/// NMI's path or runs with DR7 clear.
const REACH_TIMEOUT_US: u64 = 5_000;
/// How long B waits for the second NMI to enter.
const LANDING_TIMEOUT_US: u64 = 2_000_000;
/// Of this many iterations, the last two aim after a body's call of the
/// phases (ring 3, kernel), the others sweep.
const ROUND: usize = 6;
/// Time for A to get from the kernel into its ring-3 spin.
const USER_ENTRY_CYCLES: u64 = 200_000;

/// What the first NMI interrupts: the kernel spin, the ring-3 spin, and the
/// kernel spin with RSP on IST_NMI (below anything an NMI uses) and DF clear
/// (what the SYSCALL gap shows the entry: `nmi_first` through the RSP test)
/// or set (what its own final IRETQ window shows: taken for nested).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Kernel = 0,
    User = 1,
    NmiStack = 2,
    NmiStackDf = 3,
}
const ORIGINS: [Origin; 4] = [
    Origin::Kernel,
    Origin::User,
    Origin::NmiStack,
    Origin::NmiStackDf,
];

static LINK: Link = Link::new();
static ANCHOR: Anchor = Anchor::new();
/// Where the first NMI of this iteration comes from (for B), and the word
/// that ends the ring-3 spin.
static FROM_USER: AtomicBool = AtomicBool::new(false);
/// Where B saw the second NMI land.
static LANDED: AtomicU64 = AtomicU64::new(0);
/// The last iteration A came back from its spin in.
static BACK: AtomicU64 = AtomicU64::new(0);
/// How long B waits for A to leave its spin before calling it a livelock.
const STUCK_US: u64 = 10_000_000;

static WINDOW: Window = Window::new();

testkit::test! {
    run: run,
    iterations: 1_500,
    cpus: 2,
    timeout_ms: 120_000,
    tags: &[testkit::tags::TCG],
    expect: Expectations {
        naive: Expect::Skip("the plain NMI stub has no nesting prologue to aim at"),
        shift_only: Expect::Skip("the plain NMI stub has no nesting prologue to aim at"),
        linux_4_19: Expect::Skip(
            "linux-4.19 keeps DR7 armed inside its #DB: when the first NMI touches a watched IST_NMI word, the checker's stack guard in that #DB's entry copies the same words before 4.19's IST shift, a second #DB lands on the unshifted #DB stack and overwrites the first (traced: the #DB returned to 0x56 and faulted); the reads are this test's instrumentation, not 4.19's code",
        ),
        dr7_guard: Expect::Skip("the plain NMI stub has no nesting prologue to aim at"),
        linux: Expect::Timing,
    },
}

/// B: the first NMI once A spins, then the second as soon as the first has
/// hit k; then A's spin ends.
fn send(_: u64) -> u64 {
    LINK.serve(|go| {
        if FROM_USER.load(Ordering::SeqCst) {
            common::spin_cycles(USER_ENTRY_CYCLES);
        } else {
            time::wait_until(sender::STEP_TIMEOUT_US, || {
                ANCHOR.spinning.load(Ordering::SeqCst) == 1
            });
        }
        LINK.send();
        let reached = hold::reached(REACH_TIMEOUT_US);
        let before = counters::read(VICTIM, Counter::NmiEntered);
        if reached {
            LINK.send();
            hold::sent();
        }
        // Long: a starved CPU of a loaded host may take that long to run the
        // #DB's exit; a landing missed here is missed for good.
        let entered = || counters::read(VICTIM, Counter::NmiEntered) > before;
        if reached && time::wait_until(LANDING_TIMEOUT_US, entered) {
            LANDED.store(nmi::last_landing(VICTIM).rip, Ordering::SeqCst);
        }
        ANCHOR.stop.store(1, Ordering::SeqCst);
        release().store(1, Ordering::SeqCst);
        if !time::wait_until(STUCK_US, || BACK.load(Ordering::SeqCst) >= go) {
            stuck();
        }
    })
}

/// B: A never came back from its spin: the first NMI loops on a frame the
/// second left (an IRET into its own stub, with or without a body). Ends the
/// run now, saying where the second NMI landed and what was predicted there.
fn stuck() -> ! {
    panic!(
        "the first NMI never returned: the entry livelocks after a second NMI landed at {}",
        hold::landing(LANDED.load(Ordering::SeqCst))
    );
}

/// The sandbox word A's ring-3 spin waits on.
fn release() -> &'static AtomicU64 {
    &mm::user_sandbox().data[1]
}

/// The two NMI bodies' instructions with DR7 clear (no breakpoint can stop
/// there), ring-3 body first, split at the call of the phases: per body,
/// (the instruction that clears DR7: the aim's k, the call, the one that
/// restores it). The DR7 guard's own instructions are the window entries
/// whose only flag is DR7_GUARD, in runs: per body a run from `DR7_SAVE`
/// ending with its DR7 write, then one from `DR7_RESTORE` ending with its own.
fn dark_ranges(ks: &[u64], start: u64, end: u64) -> [(u64, u64, u64); 2] {
    let guard = u64::from(crate::entry::strategy::DR7_GUARD);
    // The last instruction of each run of DR7-guard-only entries: save,
    // restore, save, restore.
    let mut ends = [0u64; 4];
    let mut found = 0;
    let mut run_end = None;
    let entries = crate::entry::window()
        .iter()
        .filter(|e| e.addr >= start && e.addr < end);
    for e in entries {
        if e.flags == guard {
            run_end = Some(e.addr);
        } else if let Some(addr) = run_end.take()
            && let Some(slot) = ends.get_mut(found)
        {
            *slot = addr;
            found += 1;
        }
    }
    let body = |b: usize| {
        let (clear, restore) = (ends[2 * b], ends[2 * b + 1]);
        // RUN_PHASES calls through r15 after 5 instructions of setup.
        let at = ks.iter().position(|&a| a == clear).unwrap_or(0);
        (clear, ks.get(at + 6).copied().unwrap_or(0), restore)
    };
    [body(0), body(1)]
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
    let user_path = user_path_range(&ks);
    hold::set_user_path(user_path);
    BACK.store(0, Ordering::SeqCst);
    let mut reach = [[UNKNOWN; MAX_K]; ORIGINS.len()];
    let mut next = [0usize; ORIGINS.len()];
    // A second NMI before the CLD (the first two instructions) sees the
    // spin's DF set too, takes itself for nested and IRETs to the first
    // NMI's frame, which is its own: a loop without a body to catch it in.
    reach[Origin::NmiStackDf as usize][..2].fill(UNREACHED);
    // 4 KiB above IST_NMI's bottom (its canaries), far below its top frames.
    let nmi_stack_spot = percpu::cpu(VICTIM).ist_stack(IstSlot::Nmi).bottom + 0x1000;
    let sandbox = mm::user_sandbox();
    common::reset_counts(VICTIM);
    let counts = Counts::take();
    handlers::set_db_hook(Some(hold::on_db));
    handlers::set_nmi_hook(Some(hold::on_nmi));
    LINK.start(ctx, send, 0)?;
    let (mut tally, mut reports, mut missed) = (Tally::default(), 0u32, 0u64);
    let (mut repairs, mut rdx_damaged) = (0u64, 0u64);
    // The instructions after each body's call that run with DR7 clear: the
    // first NMI's hook arms DR0 there (ring-3 body, kernel body).
    let dark = dark_ranges(&ks, start, end);
    let late = |b: usize| {
        ks.iter()
            .copied()
            .filter(move |&a| a > dark[b].1 && a <= dark[b].2)
    };
    let mut late_next = [0usize; 2];
    for i in 1..=u64::from(ctx.iterations) {
        let turn = i as usize % ROUND;
        let body = turn.checked_sub(ROUND - 2);
        let origin = match body {
            Some(b) => [Origin::User, Origin::Kernel][b],
            None => ORIGINS[turn % ORIGINS.len()],
        };
        let o = origin as usize;
        // Every instruction once, then only those the first NMI reached.
        let index = (0..ks.len())
            .map(|d| (next[o] + d) % ks.len())
            .find(|&x| reach[o][x] != UNREACHED)
            .unwrap_or(0);
        let k = match body {
            Some(b) => {
                let n = late(b).count().max(1);
                late_next[b] += 1;
                late(b).nth(late_next[b] % n).unwrap_or(0)
            }
            None => {
                next[o] = index + 1;
                ks[index]
            }
        };
        let rdx = match origin {
            Origin::User => release().as_ptr() as u64,
            _ => &ANCHOR as *const Anchor as u64,
        };
        let on_nmi_stack = matches!(origin, Origin::NmiStack | Origin::NmiStackDf);
        ANCHOR.stack.store(
            if on_nmi_stack { nmi_stack_spot } else { 0 },
            Ordering::SeqCst,
        );
        ANCHOR
            .df
            .store(u64::from(origin == Origin::NmiStackDf), Ordering::SeqCst);
        FROM_USER.store(origin == Origin::User, Ordering::SeqCst);
        ANCHOR.stop.store(0, Ordering::SeqCst);
        ANCHOR.repairs.store(0, Ordering::SeqCst);
        release().store(0, Ordering::SeqCst);
        LANDED.store(0, Ordering::SeqCst);
        let incidents = checker::incidents_total(VICTIM);
        hold::arm(k, rdx, body.is_some());
        LINK.go(i);
        match origin {
            Origin::Kernel | Origin::NmiStack | Origin::NmiStackDf => {
                breakpoint::spin_anchored(&ANCHOR)
            }
            Origin::User => {
                let _ = sandbox.run(Program::Spin, rdx, 0);
            }
        }
        BACK.store(i, Ordering::SeqCst);
        // B may be starved by a loaded host: an iteration it has not finished
        // must not run into the next one.
        let mut rounds = 0;
        while !LINK.wait_done(i) && rounds < 10 {
            rounds += 1;
        }
        breakpoint::reset();
        let reached = hold::hit();
        if body.is_none() && reach[o][index] == UNKNOWN {
            reach[o][index] = if reached { REACHED } else { UNREACHED };
        }
        let kernel = origin != Origin::User;
        let repaired = kernel && ANCHOR.repairs.load(Ordering::SeqCst) > 0;
        repairs += u64::from(repaired);
        rdx_damaged += u64::from(kernel && ANCHOR.rdx.load(Ordering::SeqCst) != rdx);
        let corrupted = hold::live() || checker::incidents_total(VICTIM) > incidents || repaired;
        // The body that overwrote the first NMI put its frame back, maybe
        // before B read it: then the body's own record says where it landed.
        let rip = hold::nested_rip().unwrap_or_else(|| LANDED.load(Ordering::SeqCst));
        if !reached || rip < start || rip >= end {
            missed += u64::from(reached);
            continue;
        }
        let at = WINDOW.record(rip);
        if corrupted && let Some(at) = at {
            WINDOW.corrupted(at);
        }
        tally.count(rip - start, must_corrupt(rip, user_path), corrupted);
        if corrupted && reports < 8 {
            reports += 1;
            ctx.report_corruption(testkit::Corruption {
                cpu: Some(VICTIM as u32),
                iteration: i as u32,
                vector: 2,
                field: "nmi_original_rip",
                expected: hold::saved_rip(),
                seen: rip,
            });
        }
        if i % 100 == 0 {
            ctx.progress(i as u32);
        }
    }
    LINK.stop(ctx);
    handlers::set_nmi_hook(None);
    handlers::set_db_hook(None);

    let sent = LINK.sent();
    let entered = counts.settled(Counter::NmiEntered, sent);
    let nested = counts.nested();
    let evidence = common::collect(ctx, VICTIM);
    let aimed = |o: Origin| reach[o as usize].iter().filter(|r| **r == REACHED).count();
    let repeat = nmi::repeat_range().0;
    let landable = WINDOW.coverage_within(repeat, end);
    ctx.counters.nmis = Some(counts.count(Counter::NmiHandled));
    WINDOW.emit(ctx, stub, |i| {
        ks.get(i).map(|&a| must_corrupt(a, user_path))
    });
    ctx.note(format_args!(
        "{}{} landable={}/{} nested: flag={} rsp={} repeat={}; sent={sent} entered={entered} from_user={} aimed={}+{}+{}+{} missed={missed} rsp_repairs={repairs} rdx_damaged={rdx_damaged} incidents={}",
        tally.first_wrong(),
        WINDOW.coverage(),
        landable.hit,
        landable.total,
        nested.by_flag,
        nested.by_rsp,
        nested.in_repeat,
        counts.count(Counter::NmiFromUser),
        aimed(Origin::Kernel),
        aimed(Origin::User),
        aimed(Origin::NmiStack),
        aimed(Origin::NmiStackDf),
        evidence.report.incidents,
    ));
    evidence.check_complete(ctx)?;
    let mut observed = evidence.observed(common::Detection::default());
    if let testkit::Observed::Ran(e) = &mut observed {
        tally.fill(e);
    }
    Ok(sender::with_lost(observed, sent, entered))
}
