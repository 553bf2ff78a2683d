//! nmi_mce: a machine check inside an NMI handler, and an NMI inside a
//! machine-check handler.
//!
//! Setup: machine checks armed on CPU 1 (the victim), which idles in kernel
//! code; CPU 0 sends the NMIs, asks the host for the #MCs and judges.
//! Hazard, part A (#MC in NMI): CPU 0's NMI enters the victim's handler, which
//! says so and loops; CPU 0 then asks the host for a #MC on the victim
//! ("during": nmi) and the host picks the moment. The #MC is masked by
//! nothing, lands inside the NMI handler, and its IRETQ unblocks NMIs while
//! that handler still runs. CPU 0's next NMI then starts at the IST_NMI top
//! again: the plain stub (`naive`, `shift-only`, `dr7-guard`) overwrites the
//! first NMI's frame; Linux's nested-NMI entry finds "NMI executing" set and
//! repeats instead. Part B (NMI in #MC): the host's #MC enters the victim's
//! #MC handler, which loops until CPU 0's NMI has come and gone.
//! Proof: A, per iteration: the #MC frame's interrupted RSP lies on the
//! victim's IST_NMI in ring 0 (it landed in the NMI handler), and the next
//! NMI arrived inside the first (a nested NMI body, or the entry's nested
//! branches). B: the NMI's interrupted RSP lies on the victim's IST_MC.
//! Check: A under `naive`, `shift-only`, `dr7-guard`: every landing followed
//! by a nested NMI body is a checker incident (`detect`, 100%); under `linux`
//! and `linux-4.19`: no incident. B: no incident under any strategy (#MC and
//! NMI each on their own IST stack); the mutant that puts the #MC gate on
//! IST_NMI (`mc-on-nmi-ist`) breaks both parts.
//! Not aimed, and known not clean in Linux 6.6: a #MC on the first
//! instructions of `asm_exc_nmi`, before "NMI executing" is set and the frame
//! copied ("Everything up to here is safe from nested NMIs" holds only while
//! NMIs stay masked, and the #MC's IRETQ unmasks them; the next NMI's DF test
//! then takes it for a first NMI and it overwrites the unsaved frame). The
//! host's moment cannot be aimed at those ten instructions: here the victim
//! waits for the #MC deep inside its handler.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use super::common::{self, Detection};
use super::sender;
use crate::arch::percpu::{self, IstSlot};
use crate::arch::{cpu, lapic, mce, time};
use crate::entry::checker::IstFrame;
use crate::entry::counters::{self, Counter};
use crate::entry::handlers;
use crate::entry::mc::{self, Landing};
use crate::inject::{self, ANSWER_TIMEOUT_US, Answer};

const VICTIM: usize = 1;
const CPU_TIMEOUT_MS: u32 = 5_000;
const STEP_US: u64 = 100_000;
/// How long the victim's handler waits for what CPU 0 or the host sends.
const HOLD_US: u64 = ANSWER_TIMEOUT_US + STEP_US;

/// Which part the hooks play (A: #MC in NMI, B: NMI in #MC).
static PART_B: AtomicBool = AtomicBool::new(false);
static ARMED: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);
static IN_NMI_HOOK: AtomicBool = AtomicBool::new(false);
/// A: 1 the victim is in its first NMI, 2 its #MC landed, 3 the next NMI is sent.
/// B: 1 the victim is in its #MC handler, 2 it left the wait.
static STAGE: AtomicU64 = AtomicU64::new(0);
static MC_BEFORE: AtomicU64 = AtomicU64::new(0);
static DEADLINE: AtomicU64 = AtomicU64::new(0);
/// NMI bodies that started while the hook of another was running.
static NESTED_BODIES: AtomicU64 = AtomicU64::new(0);
/// B: NMIs whose interrupted RSP lay on the victim's IST_MC.
static NMI_IN_MC: AtomicU64 = AtomicU64::new(0);
/// Rounds of the victim's idle loop: it moves only outside every handler.
static IDLE_ROUNDS: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    run: run,
    iterations: 8,
    max_iterations: 100,
    cpus: 2,
    timeout_ms: 120_000,
    tags: &[tags::TCG],
    // Part A is a nested NMI: caught where the NMI stub is plain.
    expect: sender::NESTED_NMI,
}

/// Spins (state in statics: a nested NMI may overwrite this stack frame)
/// until `done` or `HOLD_US` passed.
fn hold(done: impl Fn() -> bool) {
    DEADLINE.store(
        cpu::rdtsc() + HOLD_US * time::ticks_per_us(),
        Ordering::SeqCst,
    );
    while !done() && !STOP.load(Ordering::SeqCst) && cpu::rdtsc() < DEADLINE.load(Ordering::SeqCst)
    {
        core::hint::spin_loop();
    }
}

/// The victim's NMI hook.
fn on_nmi(frame: &mut IstFrame) {
    if percpu::this().index() != VICTIM {
        return;
    }
    if PART_B.load(Ordering::SeqCst) {
        let mc_stack = percpu::this().ist_stack(IstSlot::Mc);
        let inside = frame.regs.cs & 3 == 0 && mc_stack.contains(frame.regs.rsp);
        NMI_IN_MC.fetch_add(u64::from(inside), Ordering::SeqCst);
        return;
    }
    if IN_NMI_HOOK.swap(true, Ordering::SeqCst) {
        NESTED_BODIES.fetch_add(1, Ordering::SeqCst);
        return;
    }
    if ARMED.swap(false, Ordering::SeqCst) {
        STAGE.store(1, Ordering::SeqCst);
        // Loop inside the NMI handler until the host's #MC has landed ...
        hold(|| mc::landing(VICTIM).count > MC_BEFORE.load(Ordering::SeqCst));
        STAGE.store(2, Ordering::SeqCst);
        // ... and until CPU 0's next NMI is sent, then give it time to land.
        hold(|| STAGE.load(Ordering::SeqCst) == 3);
        common::spin_cycles(20_000);
    }
    IN_NMI_HOOK.store(false, Ordering::SeqCst);
}

/// The victim's #MC hook (part B): stay in the handler until the NMI came.
fn on_mc(_: &Landing) {
    if !PART_B.load(Ordering::SeqCst) || !ARMED.swap(false, Ordering::SeqCst) {
        return;
    }
    let before = NMI_IN_MC.load(Ordering::SeqCst);
    STAGE.store(1, Ordering::SeqCst);
    hold(|| NMI_IN_MC.load(Ordering::SeqCst) > before);
    common::spin_cycles(20_000);
    STAGE.store(2, Ordering::SeqCst);
}

fn enable(_: u64) -> u64 {
    u64::from(mce::enable().is_ok())
}

fn idle(_: u64) -> u64 {
    while !STOP.load(Ordering::SeqCst) {
        IDLE_ROUNDS.fetch_add(1, Ordering::SeqCst);
        core::hint::spin_loop();
    }
    0
}

/// Waits until the victim is back in its idle loop: every handler of the
/// iteration (a repeat or a nested body included) has returned, and what the
/// checker found is counted in this iteration.
fn settle() {
    let seen = IDLE_ROUNDS.load(Ordering::SeqCst);
    time::wait_until(HOLD_US, || IDLE_ROUNDS.load(Ordering::SeqCst) > seen + 1);
}

/// What the iterations saw.
#[derive(Default)]
struct Tally {
    /// A: #MCs whose frame says they interrupted ring 0 on the victim's IST_NMI.
    mc_in_nmi: u64,
    /// A: of those, the next NMI came in while the first still ran.
    nmi_after_mc: u64,
    /// A: of those, a second NMI body started (the stack was shared).
    nested_bodies: u64,
    /// A: the entry's own nested-NMI branches (Linux's asm).
    asm_nested: u64,
    /// B: #MCs taken, and NMIs that landed inside their handler.
    mc_b: u64,
    nmi_in_mc: u64,
    /// B: incidents, which no strategy may have.
    incidents_b: u64,
}

fn asm_nested() -> u64 {
    [
        Counter::NmiNestedByFlag,
        Counter::NmiNestedByRsp,
        Counter::NmiNestedInRepeat,
    ]
    .into_iter()
    .map(|c| counters::read(VICTIM, c))
    .sum()
}

/// Part A once: #MC in the NMI handler, then the next NMI. `None`: the host
/// did not inject.
fn part_a(ctx: &mut Context<'_>, t: &mut Tally, det: &mut Detection) -> Option<()> {
    let victim = percpu::cpu(VICTIM);
    let nmi_stack = victim.ist_stack(IstSlot::Nmi);
    PART_B.store(false, Ordering::SeqCst);
    MC_BEFORE.store(mc::landing(VICTIM).count, Ordering::SeqCst);
    let (bodies, nested) = (NESTED_BODIES.load(Ordering::SeqCst), asm_nested());
    det.begin(VICTIM);
    STAGE.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    lapic::send_nmi(victim.lapic_id());
    time::wait_until(STEP_US, || STAGE.load(Ordering::SeqCst) == 1);
    let seq = inject::request(ctx, VICTIM, "nmi");
    let (answer, _) = inject::loop_until_answer(seq, || {});
    let landed = time::wait_until(STEP_US, || STAGE.load(Ordering::SeqCst) == 2);
    if answer != Answer::Injected || !landed {
        STAGE.store(3, Ordering::SeqCst);
        settle();
        return None;
    }
    lapic::send_nmi(victim.lapic_id());
    STAGE.store(3, Ordering::SeqCst);
    settle();
    let landing = mc::landing(VICTIM);
    let in_nmi = landing.cs & 3 == 0 && nmi_stack.contains(landing.rsp);
    let body = NESTED_BODIES.load(Ordering::SeqCst) > bodies;
    let branch = asm_nested() > nested;
    t.mc_in_nmi += u64::from(in_nmi);
    t.nmi_after_mc += u64::from(in_nmi && (body || branch));
    t.nested_bodies += u64::from(in_nmi && body);
    t.asm_nested += u64::from(in_nmi && branch);
    det.end(VICTIM, in_nmi && body);
    Some(())
}

/// Part B once: the NMI inside the #MC handler.
fn part_b(ctx: &mut Context<'_>, t: &mut Tally) -> Option<()> {
    let victim = percpu::cpu(VICTIM);
    PART_B.store(true, Ordering::SeqCst);
    let (before, in_mc) = (mc::landing(VICTIM).count, NMI_IN_MC.load(Ordering::SeqCst));
    let mut det = Detection::default();
    det.begin(VICTIM);
    STAGE.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    let seq = inject::request(ctx, VICTIM, "idle");
    let (answer, _) = inject::loop_until_answer(seq, || {});
    let held = time::wait_until(STEP_US, || STAGE.load(Ordering::SeqCst) == 1);
    if answer != Answer::Injected || !held {
        ARMED.store(false, Ordering::SeqCst);
        return None;
    }
    lapic::send_nmi(victim.lapic_id());
    time::wait_until(HOLD_US, || STAGE.load(Ordering::SeqCst) == 2);
    settle();
    t.mc_b += mc::landing(VICTIM).count - before;
    t.nmi_in_mc += NMI_IN_MC.load(Ordering::SeqCst) - in_mc;
    t.incidents_b += det.incidents_since_begin(VICTIM);
    Some(())
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    for flag in [&STOP, &ARMED, &IN_NMI_HOOK] {
        flag.store(false, Ordering::SeqCst);
    }
    NESTED_BODIES.store(0, Ordering::SeqCst);
    NMI_IN_MC.store(0, Ordering::SeqCst);
    if ctx.run_on(VICTIM, enable, 0, CPU_TIMEOUT_MS)? == 0 {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "machine checks unavailable on CPU {VICTIM}"
        ))));
    }
    common::reset_counts(VICTIM);
    handlers::set_nmi_hook(Some(on_nmi));
    mc::set_hook(Some(on_mc));
    ctx.platform().start_on(VICTIM, idle, 0)?;
    let (mut t, mut det) = (Tally::default(), Detection::default());
    let mut refused = None;
    for i in 0..ctx.iterations {
        if part_a(ctx, &mut t, &mut det).is_none() || part_b(ctx, &mut t).is_none() {
            refused = Some(i);
            break;
        }
    }
    STOP.store(true, Ordering::SeqCst);
    let _ = ctx.platform().join(VICTIM, CPU_TIMEOUT_MS);
    mc::set_hook(None);
    handlers::set_nmi_hook(None);
    let evidence = common::collect(ctx, VICTIM);
    ctx.note(format_args!(
        "A: mc_in_nmi={} nmi_after_mc={} nested_bodies={} asm_nested={} hazards={} detected={} | \
         B: mc={} nmi_in_mc={} incidents={} | incidents={}",
        t.mc_in_nmi,
        t.nmi_after_mc,
        t.nested_bodies,
        t.asm_nested,
        det.hazards,
        det.detected,
        t.mc_b,
        t.nmi_in_mc,
        t.incidents_b,
        evidence.report.incidents
    ));
    if let Some(at) = refused {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "iteration {at}: the host did not inject a machine check, or it never landed \
             (mc_in_nmi={} nmi_in_mc={})",
            t.mc_in_nmi, t.nmi_in_mc
        ))));
    }
    if t.mc_in_nmi == 0 || t.nmi_in_mc == 0 {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "no landing inside the other handler: {} #MCs in NMI, {} NMIs in #MC",
            t.mc_in_nmi, t.nmi_in_mc
        ))));
    }
    testkit::ensure!(
        ctx,
        t.nmi_after_mc > 0,
        "no NMI came in after the #MC's IRETQ while the first NMI still ran"
    );
    testkit::ensure!(
        ctx,
        t.incidents_b == 0,
        "an NMI inside the #MC handler damaged it: {} incidents (#MC and NMI share no stack)",
        t.incidents_b
    );
    testkit::ensure!(
        ctx,
        evidence.complete(),
        "nesting went deeper than the checker tracks"
    );
    Ok(evidence.observed(det))
}
