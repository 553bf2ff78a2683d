//! db_kernel_nmi_db: a #DB from kernel code, an NMI from another CPU landing
//! inside the #DB handler, and a second #DB raised by the NMI handler.
//!
//! Setup: CPU 0 (A) arms a write watchpoint on `WATCHED`. Its NMI hook writes
//! `WATCHED` too, so every NMI on A tries to raise a #DB from NMI context.
//! Hazard: each iteration A writes `WATCHED` (#DB on IST_DB); CPU 1 (B) waits a
//! seeded random number of cycles and sends A an NMI through its local APIC, so
//! over the run the NMI lands on every instruction of A's #DB entry and exit
//! path. Under `naive` the NMI handler's #DB lands on the same IST_DB top and
//! overwrites the outer #DB's frame.
//! Proof: NMIs counted landing inside the #DB (interrupted RSP on IST_DB), the
//! nested #DBs raised from them, or (DR7 strategies) the writes suppressed.
//! Check: `naive`: every NMI that landed inside a #DB and raised a nested #DB
//! must be an incident (detection rate 100%). `shift-only`: each landing is
//! predicted from where it landed (before the shift or after the un-shift it
//! must corrupt, between them it must not; outside the #DB it must not), and
//! every prediction is checked against the checker. The others: no incident.
//! The outer #DB's store is the register damage kit's probe: the code the #DB
//! interrupted gets all 15 GPRs and RFLAGS back (counted in the evidence).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, Expect, Expectations, TestResult};

use super::aim::{AFTER, Aim, BEFORE, INSIDE, NOT_LANDED};
use super::common::{self, Window};
use super::sender::{Link, VICTIM};
use crate::arch::damage::{self, Hazard, R15, Regs, Tally};
use crate::arch::percpu::{self, IstSlot};
use crate::entry::breakpoint::{self, Kind};
use crate::entry::checker::IstFrame;
use crate::entry::counters::{self, Counter};
use crate::entry::{Stub, handlers};
use crate::mm;

const NMI_WAIT_US: u64 = 50_000;
const LATE_NMI_WAIT_US: u64 = 1_000_000;

#[repr(align(8))]
struct Watched(AtomicU64);
static WATCHED: Watched = Watched(AtomicU64::new(0));

/// Iteration handshake: A publishes (iteration, delay); B answers with an NMI.
/// B counts the NMIs it sent; the victim's entry counts what arrived.
static LINK: Link = Link::new();
static DELAY: AtomicU64 = AtomicU64::new(0);

/// Where the outer #DB comes from: this file's test, or `db_user_nmi_db`'s.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Kernel,
    User,
}

static FROM_USER: AtomicBool = AtomicBool::new(false);
static USER_DBS: AtomicU64 = AtomicU64::new(0);

/// The watched word: a kernel static, or a word of the ring-3 sandbox.
fn watched() -> &'static AtomicU64 {
    if FROM_USER.load(Ordering::Relaxed) {
        &mm::user_sandbox().data[0]
    } else {
        &WATCHED.0
    }
}

/// The outer #DB: a write to the watched word from ring 0 or ring 3, by the
/// register damage kit's store probe (all 15 GPRs and RFLAGS patterned before
/// it, compared after the #DB and whatever nested in it returned).
fn trigger(iteration: u64, tally: &mut Tally) {
    let mut fill = Regs::pattern(iteration, 0xd8);
    fill.0[R15] = watched().as_ptr() as u64;
    let seen = if FROM_USER.load(Ordering::Relaxed) {
        match mm::user_sandbox().run_probe(Hazard::Store, &fill) {
            Some(Ok(seen)) => seen,
            _ => Regs([0; 16]),
        }
    } else {
        damage::run_kernel(Hazard::Store, &fill)
    };
    tally.record(iteration, &fill, &seen);
}

fn on_db(event: &handlers::DbEvent) {
    USER_DBS.fetch_add(u64::from(event.from_user), Ordering::Relaxed);
}

/// What A's NMI hook saw, per run.
static NMI_IN_DB: AtomicU64 = AtomicU64::new(0);
/// A's #DB count when the current iteration began, and where its NMI landed.
static ITERATION_DB_BASE: AtomicU64 = AtomicU64::new(0);
static LANDING: AtomicU64 = AtomicU64::new(NOT_LANDED);
static NMI_TOUCHES: AtomicU64 = AtomicU64::new(0);
static WINDOW: Window = Window::new();

testkit::test! {
    run: run,
    iterations: 10_000,
    cpus: 2,
    timeout_ms: 120_000,
    tags: &[testkit::tags::TCG],
    expect: EXPECT,
}

/// Per strategy, for a #DB from ring 0 or ring 3 alike.
pub(super) const EXPECT: Expectations = Expectations {
    naive: Expect::Detect,
    shift_only: Expect::Timing,
    linux_4_19: Expect::Survive,
    dr7_guard: Expect::Survive,
    linux: Expect::Survive,
};

/// Where this iteration's NMI landed in the window (`NO_INDEX`: elsewhere),
/// and whether its touch raised a nested #DB.
static LANDED_AT: AtomicU64 = AtomicU64::new(NO_INDEX);
const NO_INDEX: u64 = u64::MAX;
static NESTED: AtomicBool = AtomicBool::new(false);

/// A's NMI hook: note where the NMI landed, then touch the watched address.
fn on_nmi(frame: &mut IstFrame) {
    if percpu::this().index() != VICTIM {
        return;
    }
    let db_stack = percpu::this().ist_stack(IstSlot::Db);
    let landing = if frame.regs.rsp >= db_stack.bottom && frame.regs.rsp < db_stack.top {
        NMI_IN_DB.fetch_add(1, Ordering::Relaxed);
        INSIDE
    } else if handlers::db_count(VICTIM) == ITERATION_DB_BASE.load(Ordering::Relaxed) {
        BEFORE
    } else {
        AFTER
    };
    LANDING.store(landing, Ordering::Relaxed);
    let index = WINDOW.record(frame.regs.rip);
    LANDED_AT.store(index.map_or(NO_INDEX, |i| i as u64), Ordering::Relaxed);
    NMI_TOUCHES.fetch_add(1, Ordering::Relaxed);
    let dbs = handlers::db_count(VICTIM);
    watched().fetch_add(1, Ordering::SeqCst); // a #DB here, unless DR7 is guarded
    NESTED.store(handlers::db_count(VICTIM) > dbs, Ordering::Relaxed);
}

/// B's job: for each iteration A publishes, wait the given delay, send the NMI.
fn sender(_: u64) -> u64 {
    LINK.serve(|_| {
        common::spin_cycles(DELAY.load(Ordering::Relaxed));
        LINK.send();
    })
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    sweep(ctx, Origin::Kernel)
}

/// The whole experiment, for a #DB raised from ring 0 or from ring 3.
pub(super) fn sweep(ctx: &mut Context<'_>, origin: Origin) -> TestResult {
    let iterations = ctx.iterations;
    FROM_USER.store(origin == Origin::User, Ordering::Relaxed);
    USER_DBS.store(0, Ordering::Relaxed);
    if let Err(e) = common::arm(&[common::watch(0, watched().as_ptr() as u64, Kind::Write, 8)]) {
        testkit::fail!(ctx, "arming the watchpoint: {e:?}");
    }
    // The sweep spans about two #DB round trips, measured here without NMIs.
    let db_cycles = common::measure(|| trigger(0, &mut Tally::default()));
    let mut aim = Aim::new(db_cycles * 2);
    common::reset_counts(VICTIM);
    WINDOW.reset(
        Stub::Db,
        u64::from(crate::entry::strategy::flags(ctx.strategy)),
    );
    let timing = Timing::new(ctx.expect_timing());
    let mut detection = common::Detection::default();
    let mut regs = Tally::default();
    NMI_IN_DB.store(0, Ordering::Relaxed);
    NMI_TOUCHES.store(0, Ordering::Relaxed);
    let entered_before = counters::read(VICTIM, Counter::NmiEntered);
    let db_from_user_before = counters::read(VICTIM, Counter::DbFromUser);
    handlers::set_nmi_hook(Some(on_nmi));
    handlers::set_db_hook(Some(on_db));
    LINK.start(ctx, sender, 0)?;

    let nmis_before = percpu::cpu(VICTIM).nmi_count.load(Ordering::Acquire);
    let mut lost = 0u64;
    for i in 1..=u64::from(iterations) {
        let nmis = percpu::cpu(VICTIM).nmi_count.load(Ordering::Acquire);
        let delay = aim.next_delay(&mut ctx.rng);
        DELAY.store(delay, Ordering::Relaxed);
        ITERATION_DB_BASE.store(handlers::db_count(VICTIM), Ordering::Relaxed);
        LANDING.store(NOT_LANDED, Ordering::Relaxed);
        LANDED_AT.store(NO_INDEX, Ordering::Relaxed);
        NESTED.store(false, Ordering::Relaxed);
        detection.begin(VICTIM);
        LINK.go(i);
        trigger(i, &mut regs); // the outer #DB
        // The NMI runs on this CPU: once its count moved, it has returned.
        let landed = crate::arch::time::wait_until(NMI_WAIT_US, || {
            percpu::cpu(VICTIM).nmi_count.load(Ordering::Acquire) > nmis
        });
        lost += u64::from(!landed);
        // One NMI in flight at a time: a late one (a busy host) is waited for,
        // so that it cannot meet the next one pending and be merged.
        if !landed {
            crate::arch::time::wait_until(LATE_NMI_WAIT_US, || {
                LINK.sent() >= i
                    && counters::read(VICTIM, Counter::NmiEntered) - entered_before >= LINK.sent()
            });
        }
        let landing = LANDING.load(Ordering::Relaxed);
        let inside_and_nested = landing == INSIDE && NESTED.load(Ordering::Relaxed);
        let incidents = detection.incidents_since_begin(VICTIM);
        detection.end(VICTIM, inside_and_nested);
        let at = LANDED_AT.load(Ordering::Relaxed);
        if at != NO_INDEX && incidents > 0 {
            WINDOW.corrupted(at as usize);
        }
        if landed {
            timing.check(landing, at, incidents > 0);
        }
        aim.learn(delay, landing);
        if i % 1000 == 0 {
            ctx.progress_nmis(i as u32, NMI_IN_DB.load(Ordering::Relaxed));
        }
    }
    LINK.stop(ctx);
    handlers::set_nmi_hook(None);
    handlers::set_db_hook(None);
    breakpoint::reset();

    // A late NMI is not a lost one: wait for the entry's own count to catch up.
    let sent = LINK.sent();
    let entered = || counters::read(VICTIM, Counter::NmiEntered) - entered_before;
    crate::arch::time::wait_until(1_000_000, || entered() >= sent);
    let lost_nmis = sent.saturating_sub(entered());
    let nmis = percpu::cpu(VICTIM).nmi_count.load(Ordering::Acquire) - nmis_before;
    let evidence = common::collect(ctx, VICTIM);
    let in_db = NMI_IN_DB.load(Ordering::Relaxed);
    let touches = NMI_TOUCHES.load(Ordering::Relaxed);
    let coverage = WINDOW.coverage();
    ctx.counters.nmis = Some(nmis);
    ctx.note(format_args!(
        "nmi_in_db={in_db} nested_db={} suppressed={} late_nmis={lost} lost_nmis={lost_nmis} recovered={} incidents={} hazards={} detected={} unexplained={} regs_checked={} regs_damaged={} {timing} db_span={db_cycles}cyc {coverage}",
        evidence.nested_dbs(u64::from(iterations)),
        evidence.suppressed(touches, u64::from(iterations)),
        evidence.report.recovered,
        evidence.report.incidents,
        detection.hazards,
        detection.detected,
        detection.unexplained,
        regs.checked,
        regs.damaged,
    ));
    WINDOW.emit(ctx, Stub::Db, |i| timing.predict(Some(i)));

    // Proof the hazard happened: NMIs really landed inside #DB handlers, and
    // each of them either raised a nested #DB or had it suppressed by DR7.
    let user_dbs = USER_DBS.load(Ordering::Relaxed);
    if origin == Origin::User && user_dbs < u64::from(iterations) {
        testkit::fail!(ctx, "only {user_dbs} #DBs came from ring 3");
    }
    // Linux moves a ring-3 #DB to the kernel stack: the entry's own count.
    let moved = counters::read(VICTIM, Counter::DbFromUser) - db_from_user_before;
    if crate::entry::strategy::applies(crate::entry::strategy::USER_SWITCH) && moved < user_dbs {
        testkit::fail!(
            ctx,
            "{user_dbs} #DBs came from ring 3 but only {moved} moved to the kernel stack"
        );
    }
    evidence.check_complete(ctx)?;
    testkit::ensure!(
        ctx,
        in_db != 0,
        "no NMI landed inside a #DB handler in {iterations} iterations"
    );
    let mut observed = evidence.observed(detection);
    if let testkit::Observed::Ran(e) = &mut observed {
        timing.fill(e);
        e.lost_nmis = lost_nmis;
        e.damaged_registers = regs.damaged;
    }
    Ok(observed)
}

/// `shift-only`'s prediction, per landing: an NMI that lands inside the #DB
/// before the IST shift has executed, or after the un-shift, raises its nested
/// #DB at the stack top the outer frame still uses (it must corrupt); between
/// the two, including every landing in the Rust phases, the nested #DB lands
/// 4 KiB lower (it must not); an NMI outside the #DB has nothing to corrupt.
struct Timing {
    /// Window indexes of the shift and un-shift instructions.
    bracket: Option<(usize, usize)>,
    corrupt: AtomicU64,
    clean: AtomicU64,
    mismatches: AtomicU64,
}

impl Timing {
    fn new(enabled: bool) -> Self {
        let bracket = enabled
            .then(|| WINDOW.bracket(u64::from(crate::entry::strategy::SHIFT_IST)))
            .flatten();
        Self {
            bracket,
            corrupt: AtomicU64::new(0),
            clean: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
        }
    }

    /// Whether a landing inside the #DB at window index `at` (None: in the
    /// Rust phases, between the shift and the un-shift) must corrupt.
    fn predict(&self, at: Option<usize>) -> Option<bool> {
        let (shift, unshift) = self.bracket?;
        Some(at.is_some_and(|i| i <= shift || i > unshift))
    }

    fn check(&self, landing: u64, at: u64, incident: bool) {
        if self.bracket.is_none() {
            return;
        }
        let index = (at != NO_INDEX).then_some(at as usize);
        let must = landing == INSIDE && self.predict(index) == Some(true);
        let counter = if must { &self.corrupt } else { &self.clean };
        counter.fetch_add(1, Ordering::Relaxed);
        if must != incident {
            self.mismatches.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fill(&self, e: &mut testkit::Evidence) {
        e.predicted_corrupt = self.corrupt.load(Ordering::Relaxed);
        e.predicted_clean = self.clean.load(Ordering::Relaxed);
        e.mismatches = self.mismatches.load(Ordering::Relaxed);
    }
}

impl core::fmt::Display for Timing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.bracket.is_none() {
            return Ok(());
        }
        write!(
            f,
            "predicted_corrupt={} predicted_clean={} mismatches={}",
            self.corrupt.load(Ordering::Relaxed),
            self.clean.load(Ordering::Relaxed),
            self.mismatches.load(Ordering::Relaxed)
        )
    }
}
