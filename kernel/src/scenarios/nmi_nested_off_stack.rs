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

use testkit::{Context, TestResult};

use super::common;
use super::sender::{self, Counts, Hook, Link, VICTIM};
use crate::arch::cpu;
use crate::arch::percpu::{self, IstSlot};
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

testkit::test! {
    run: run,
    iterations: 200,
    cpus: 2,
    timeout_ms: 60_000,
    tags: &[testkit::tags::TCG],
    expect: sender::NESTED_NMI,
}

fn on_nmi(_: &mut IstFrame) {
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
    LINK.serve(|_| {
        LINK.send();
        if sender::wait_for(&STAGE, 1) && LINK.send_then(|| STAGE.store(2, Ordering::SeqCst)) {
            let on_db = db_stack.contains(nmi::last_landing(VICTIM).rsp);
            ON_DB_STACK.fetch_add(u64::from(on_db), Ordering::Relaxed);
        }
    })
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let nesting = crate::entry::nmi_stub(ctx.strategy) == Stub::NmiLinux;
    common::reset_counts(VICTIM);
    HOOK.reset();
    ON_DB_STACK.store(0, Ordering::Relaxed);
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
        incomplete += u64::from(!LINK.round(i, &HOOK));
        detection.end(VICTIM, HOOK.nested_bodies() > nested_before);
    }
    LINK.stop(ctx);
    handlers::set_nmi_hook(None);
    handlers::set_db_hook(None);
    handlers::expect_breakpoints(false);

    let sent = LINK.sent();
    let entered = counts.settled(Counter::NmiEntered, sent);
    let on_db = ON_DB_STACK.load(Ordering::Relaxed);
    let sender::Nested {
        by_flag,
        by_rsp,
        in_repeat,
    } = counts.nested();
    let evidence = common::collect(ctx, VICTIM);
    ctx.counters.nmis = Some(counts.count(Counter::NmiHandled));
    ctx.note(format_args!(
        "sent={sent} entered={entered} second_on_db_stack={on_db} nested_by_flag={by_flag} nested_by_rsp={by_rsp} nested_in_repeat={in_repeat} nested_bodies={} incomplete={incomplete} incidents={} hazards={} detected={}",
        HOOK.nested_bodies(),
        evidence.report.incidents,
        detection.hazards,
        detection.detected,
    ));
    evidence.check_complete(ctx)?;
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
    Ok(sender::with_lost(
        evidence.observed(detection),
        sent,
        entered,
    ))
}
