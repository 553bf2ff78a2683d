//! nmi_nested_off_stack: the next NMI arrives while the first NMI's handler
//! runs on the #DB stack, so only "NMI executing" can tell it is nested.
//!
//! Setup: CPU 0 (A) spins in kernel code; CPU 1 (B) sends the NMIs.
//! Hazard: B's first NMI enters A's handler, which executes ICEBP (a #DB that
//! no DR7 setting suppresses); the #DB handler executes INT3, whose IRET
//! re-opens NMIs while RSP is on IST_DB. B's second NMI lands there: its
//! interrupted RIP is not in the repeat range and its RSP is not on IST_NMI,
//! so of the three nested tests of `nmi_stub_linux` only "NMI executing" can
//! see that the first NMI still owns the IST_NMI top. Without it the second
//! NMI takes itself for a first one and overwrites the first one's frame.
//! Proof: B reads where each second NMI landed (`nmi::last_landing`): its RSP
//! on A's IST_DB; `linux`/`linux-4.19`: the entry's NmiNestedByFlag count
//! equals those landings and the RSP and repeat tests never fired; the plain
//! stub: an NMI body ran inside another.
//! Check: no NMI lost; `linux`, `linux-4.19`: no incident; the others: every
//! iteration with a nested body is an incident (100% detection).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, Expect, Expectations, TestResult};

use super::common;
use crate::arch::percpu::IstSlot;
use crate::arch::{cpu, lapic, percpu, time};
use crate::entry::checker::IstFrame;
use crate::entry::counters::{self, Counter, Snapshot};
use crate::entry::{Stub, handlers, nmi};

const VICTIM: usize = 0;
const SENDER: usize = 1;
const STEP_TIMEOUT_US: u64 = 100_000;

static GO: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static SENT: AtomicU64 = AtomicU64::new(0);
static ARMED: AtomicBool = AtomicBool::new(false);
/// The #DB of this iteration's ICEBP is the one that re-opens NMIs.
static DB_ARMED: AtomicBool = AtomicBool::new(false);
static IN_HOOK: AtomicBool = AtomicBool::new(false);
/// 1: A's #DB handler is past its #BP; 2: B sent the second NMI.
static STAGE: AtomicU64 = AtomicU64::new(0);
static NESTED_BODIES: AtomicU64 = AtomicU64::new(0);
/// Second NMIs whose interrupted RSP lay on A's IST_DB.
static ON_DB_STACK: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    run: run,
    iterations: 200,
    cpus: 2,
    timeout_ms: 60_000,
    tags: &[testkit::tags::TCG],
    expect: Expectations {
        naive: Expect::Detect,
        shift_only: Expect::Detect,
        linux_4_19: Expect::Survive,
        dr7_guard: Expect::Detect,
        linux: Expect::Survive,
    },
}

fn on_nmi(_: &mut IstFrame) {
    if percpu::this().index() != VICTIM {
        return;
    }
    if IN_HOOK.swap(true, Ordering::SeqCst) {
        NESTED_BODIES.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if ARMED.swap(false, Ordering::SeqCst) {
        DB_ARMED.store(true, Ordering::SeqCst);
        cpu::icebp(); // the #DB: its handler re-opens NMIs and waits there
        DB_ARMED.store(false, Ordering::SeqCst);
    }
    IN_HOOK.store(false, Ordering::SeqCst);
}

/// A's #DB hook, inside the first NMI: INT3, then wait for the second NMI.
fn on_db(_: &handlers::DbEvent) {
    if percpu::this().index() != VICTIM || !DB_ARMED.swap(false, Ordering::SeqCst) {
        return;
    }
    cpu::int3(); // its IRET re-opens NMIs; RSP stays on IST_DB
    STAGE.store(1, Ordering::SeqCst);
    time::wait_until(STEP_TIMEOUT_US, || STAGE.load(Ordering::SeqCst) == 2);
    common::spin_cycles(20_000); // the second NMI lands here
}

fn sender(_: u64) -> u64 {
    let victim = percpu::cpu(VICTIM).lapic_id();
    let db_stack = percpu::cpu(VICTIM).ist_stack(IstSlot::Db);
    let entered = || counters::read(VICTIM, Counter::NmiEntered);
    let mut seen = 0;
    while !STOP.load(Ordering::Acquire) {
        let go = GO.load(Ordering::Acquire);
        if go == seen {
            core::hint::spin_loop();
            continue;
        }
        seen = go;
        lapic::send_nmi(victim);
        SENT.fetch_add(1, Ordering::SeqCst);
        if time::wait_until(STEP_TIMEOUT_US, || STAGE.load(Ordering::SeqCst) == 1) {
            let before = entered();
            lapic::send_nmi(victim);
            SENT.fetch_add(1, Ordering::SeqCst);
            STAGE.store(2, Ordering::SeqCst);
            if time::wait_until(STEP_TIMEOUT_US, || entered() > before) {
                let rsp = nmi::last_landing(VICTIM).rsp;
                let on_db = rsp >= db_stack.bottom && rsp < db_stack.top;
                ON_DB_STACK.fetch_add(u64::from(on_db), Ordering::Relaxed);
            }
        }
        DONE.store(go, Ordering::Release);
    }
    seen
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let nesting = crate::entry::nmi_stub(ctx.strategy) == Stub::NmiLinux;
    common::reset_counts(VICTIM);
    NESTED_BODIES.store(0, Ordering::Relaxed);
    ON_DB_STACK.store(0, Ordering::Relaxed);
    SENT.store(0, Ordering::SeqCst);
    DONE.store(0, Ordering::SeqCst);
    STOP.store(false, Ordering::Release);
    GO.store(0, Ordering::Release);
    let mut detection = common::Detection::default();
    let before = Snapshot::take(VICTIM);
    handlers::expect_breakpoints(true);
    handlers::set_nmi_hook(Some(on_nmi));
    handlers::set_db_hook(Some(on_db));
    ctx.platform().start_on(SENDER, sender, 0)?;
    let mut incomplete = 0u64;
    for i in 1..=u64::from(ctx.iterations) {
        let nested_before = NESTED_BODIES.load(Ordering::Relaxed);
        detection.begin(VICTIM);
        STAGE.store(0, Ordering::SeqCst);
        ARMED.store(true, Ordering::SeqCst);
        GO.store(i, Ordering::Release);
        let done = time::wait_until(4 * STEP_TIMEOUT_US, || DONE.load(Ordering::Acquire) == i);
        incomplete += u64::from(!done);
        ARMED.store(false, Ordering::SeqCst);
        detection.end(
            VICTIM,
            NESTED_BODIES.load(Ordering::Relaxed) > nested_before,
        );
    }
    STOP.store(true, Ordering::Release);
    let _ = ctx.platform().join(SENDER, 1000);
    handlers::set_nmi_hook(None);
    handlers::set_db_hook(None);
    handlers::expect_breakpoints(false);

    let sent = SENT.load(Ordering::SeqCst);
    let count = |c: Counter| Snapshot::take(VICTIM).since(&before, c);
    time::wait_until(1_000_000, || count(Counter::NmiEntered) >= sent);
    let entered = count(Counter::NmiEntered);
    let on_db = ON_DB_STACK.load(Ordering::Relaxed);
    let (by_flag, by_rsp, in_repeat) = (
        count(Counter::NmiNestedByFlag),
        count(Counter::NmiNestedByRsp),
        count(Counter::NmiNestedInRepeat),
    );
    let evidence = common::collect(ctx, VICTIM);
    ctx.counters.nmis = Some(count(Counter::NmiHandled));
    ctx.note(format_args!(
        "sent={sent} entered={entered} second_on_db_stack={on_db} nested_by_flag={by_flag} nested_by_rsp={by_rsp} nested_in_repeat={in_repeat} nested_bodies={} incomplete={incomplete} incidents={} hazards={} detected={}",
        NESTED_BODIES.load(Ordering::Relaxed),
        evidence.report.incidents,
        detection.hazards,
        detection.detected,
    ));
    testkit::ensure!(
        ctx,
        evidence.complete(),
        "nesting went deeper than the checker tracks"
    );
    testkit::ensure!(
        ctx,
        on_db != 0,
        "no second NMI landed on the #DB stack ({sent} NMIs sent)"
    );
    if nesting && (by_flag != on_db || by_rsp != 0 || in_repeat != 0) {
        testkit::fail!(
            ctx,
            "{on_db} NMIs landed on the #DB stack, but by_flag={by_flag} by_rsp={by_rsp} in_repeat={in_repeat}"
        );
    }
    if !nesting && detection.hazards == 0 {
        testkit::fail!(ctx, "no NMI body ran inside another");
    }
    let mut observed = evidence.observed(detection);
    if let testkit::Observed::Ran(e) = &mut observed {
        e.lost_nmis = sent.saturating_sub(entered);
    }
    Ok(observed)
}
