//! nmi_nested_off_stack: the next NMI arrives while the first NMI's handler
//! runs on the #DB stack, so only "NMI executing" can tell it is nested.
//!
//! Setup: CPU 0 (A) spins in the register damage kit's wait probe (all 15
//! GPRs and RFLAGS patterned per iteration); CPU 1 (B) sends the NMIs.
//! Hazard: B's first NMI enters A's handler, which executes ICEBP (a #DB that
//! no DR7 setting suppresses); the #DB handler executes INT3, whose IRET
//! re-opens NMIs while RSP is on IST_DB. B's second NMI lands there: its
//! interrupted RIP is not in the repeat range and its RSP is not on IST_NMI,
//! so of the three nested tests of `nmi_stub_linux` only "NMI executing" can
//! see that the first NMI still owns the IST_NMI top. Without it the second
//! NMI takes itself for a first one and overwrites the first one's frame.
//! Proof: the second NMIs' RSP on A's IST_DB (`linux`/`linux-4.19`: B reads
//! it from the hardware frame, `nmi::last_landing`; the plain stub: the nested
//! body reads its own frame); `linux`/`linux-4.19`: the entry's
//! NmiNestedByFlag count equals those landings and the RSP and repeat tests
//! never fired; the plain stub: an NMI body ran inside another. The first
//! NMIs interrupted the probe's spin (B reads their frame before the second).
//! Check: no NMI lost; `linux`, `linux-4.19`: no incident; the others: every
//! iteration with a nested body is an incident (100% detection).
//! The probe compares every register once B releases it: each must come
//! back (the damaged ones fail the run, in the evidence).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, TestResult};

use super::common;
use super::sender::{self, Counts, Hook, Link, VICTIM};
use crate::arch::damage::{self, Hazard, Regs, Tally};
use crate::arch::percpu::{self, IstSlot};
use crate::arch::{cpu, time};
use crate::entry::checker::IstFrame;
use crate::entry::counters::Counter;
use crate::entry::{Stub, handlers, nmi};

static LINK: Link = Link::new();
static HOOK: Hook = Hook::new();
/// The #DB of this iteration's ICEBP is the one that re-opens NMIs.
static DB_ARMED: AtomicBool = AtomicBool::new(false);
/// 1: A's #DB handler is past its #BP; 2: B sent the second NMI.
static STAGE: AtomicU64 = AtomicU64::new(0);
/// Second NMIs whose interrupted RSP lay on A's IST_DB.
static ON_DB_STACK: AtomicU64 = AtomicU64::new(0);
/// First NMIs that interrupted the wait probe's spin.
static FIRST_IN_PROBE: AtomicU64 = AtomicU64::new(0);
/// Nested NMI bodies whose interrupted RSP lay on A's IST_DB (A's view).
static BODY_ON_DB_STACK: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    run: run,
    iterations: 200,
    cpus: 2,
    timeout_ms: 60_000,
    tags: &[testkit::tags::TCG],
    expect: sender::NESTED_NMI,
}

fn on_nmi(frame: &mut IstFrame) {
    let db_stack = percpu::this().ist_stack(IstSlot::Db);
    if HOOK.running() && percpu::this().index() == VICTIM && db_stack.contains(frame.regs.rsp) {
        BODY_ON_DB_STACK.fetch_add(1, Ordering::Relaxed);
    }
    HOOK.body(|| {
        DB_ARMED.store(true, Ordering::SeqCst);
        cpu::icebp(); // the #DB: its handler re-opens NMIs and waits there
        DB_ARMED.store(false, Ordering::SeqCst);
    });
}

/// A's #DB hook, inside the first NMI: INT3, then wait for the second NMI.
fn on_db(_: &handlers::DbEvent) {
    if percpu::this().index() != VICTIM || !DB_ARMED.swap(false, Ordering::SeqCst) {
        return;
    }
    cpu::int3(); // its IRET re-opens NMIs; RSP stays on IST_DB
    STAGE.store(1, Ordering::SeqCst);
    sender::wait_for(&STAGE, 2);
    common::spin_cycles(20_000); // the second NMI lands here
}

fn sender(_: u64) -> u64 {
    let db_stack = percpu::cpu(VICTIM).ist_stack(IstSlot::Db);
    let cell = damage::kernel_wait_cell();
    LINK.serve(|_| {
        sender::await_probe(cell);
        LINK.send();
        if sender::wait_for(&STAGE, 1) {
            let in_probe = cell.spinning_at(nmi::last_landing(VICTIM).rip);
            FIRST_IN_PROBE.fetch_add(u64::from(in_probe), Ordering::Relaxed);
            if LINK.send_then(|| STAGE.store(2, Ordering::SeqCst)) {
                let on_db = db_stack.contains(nmi::last_landing(VICTIM).rsp);
                ON_DB_STACK.fetch_add(u64::from(on_db), Ordering::Relaxed);
            }
        }
        time::wait_until(sender::STEP_TIMEOUT_US, || !HOOK.running());
        cell.release();
    })
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let nesting = crate::entry::nmi_stub(ctx.strategy) == Stub::NmiLinux;
    common::reset_counts(VICTIM);
    HOOK.reset();
    ON_DB_STACK.store(0, Ordering::Relaxed);
    BODY_ON_DB_STACK.store(0, Ordering::Relaxed);
    FIRST_IN_PROBE.store(0, Ordering::Relaxed);
    let cell = damage::kernel_wait_cell();
    let mut regs = Tally::default();
    let mut detection = common::Detection::default();
    let counts = Counts::take();
    handlers::expect_breakpoints(true);
    handlers::set_nmi_hook(Some(on_nmi));
    handlers::set_db_hook(Some(on_db));
    LINK.start(ctx, sender, 0)?;
    let mut incomplete = 0u64;
    for i in 1..=u64::from(ctx.iterations) {
        let nested_before = HOOK.nested_bodies();
        detection.begin(VICTIM);
        STAGE.store(0, Ordering::SeqCst);
        cell.arm();
        let fill = Regs::pattern(i, 0x0f);
        let done = LINK.round(i, &HOOK, || {
            regs.record(i, &fill, &damage::run_kernel(Hazard::Wait, &fill));
        });
        incomplete += u64::from(!done);
        detection.end(VICTIM, HOOK.nested_bodies() > nested_before);
    }
    LINK.stop(ctx);
    handlers::set_nmi_hook(None);
    handlers::set_db_hook(None);
    handlers::expect_breakpoints(false);

    let sent = LINK.sent();
    let entered = counts.settled(Counter::NmiEntered, sent);
    // Where the second NMIs landed: B reads the hardware frame on IST_NMI's
    // top right after each entered (the nesting stubs never rewrite it); the
    // plain stub's nested body sees its own frame, which B may read too late
    // (the checker restores the first NMI's words on the way out).
    let on_db = if nesting {
        ON_DB_STACK.load(Ordering::Relaxed)
    } else {
        BODY_ON_DB_STACK.load(Ordering::Relaxed)
    };
    let in_probe = FIRST_IN_PROBE.load(Ordering::Relaxed);
    let sender::Nested {
        by_flag,
        by_rsp,
        in_repeat,
    } = counts.nested();
    let evidence = common::collect(ctx, VICTIM);
    ctx.counters.nmis = Some(counts.count(Counter::NmiHandled));
    ctx.note(format_args!(
        "sent={sent} entered={entered} second_on_db_stack={on_db} nested_by_flag={by_flag} nested_by_rsp={by_rsp} nested_in_repeat={in_repeat} nested_bodies={} first_nmi_in_probe={in_probe} {} incomplete={incomplete} incidents={} hazards={} detected={}",
        HOOK.nested_bodies(),
        common::Registers(&regs),
        evidence.report.incidents,
        detection.hazards,
        detection.detected,
    ));
    evidence.check_complete(ctx)?;
    let iterations = u64::from(ctx.iterations);
    testkit::ensure!(
        ctx,
        in_probe * 2 >= iterations,
        "only {in_probe} of {iterations} first NMIs interrupted the wait probe"
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
    Ok(common::with_damage(
        sender::with_lost(evidence.observed(detection), sent, entered),
        &regs,
    ))
}
