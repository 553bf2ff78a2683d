//! bench::nested_roundtrip: the nested #DB+NMI iteration alone, for
//! `cargo xtask bench entry`, without what `db_kernel_nmi_db` adds to aim
//! and to judge (a seeded random delay before each NMI, the register damage
//! probe, the window record, the per-iteration verdicts).
//!
//! One iteration: the CPU writes a watched word (#DB on IST_DB); its #DB hook
//! sends the CPU itself an NMI through its local APIC and waits inside the
//! #DB until the NMI has run, so every NMI lands inside a #DB; the NMI hook
//! writes the watched word again (the nested #DB, which DR7 strategies
//! suppress). The NMI comes from the CPU's own APIC, not from a second CPU:
//! the victim's entry path is the same, and what is left out is the wait for
//! a second vCPU to notice a request, which under TCG is host scheduling
//! (milliseconds on a loaded 2-core host when both vCPUs spin), not entry
//! code. The floor it is measured against is `bench::nmi_self_roundtrip`
//! (a self-sent NMI, the same delivery), in the same boot:
//! `filter=_roundtrip` runs both. With
//! stamps on, the details say where an iteration's cycles go: the checker's
//! halves and the body of the #DB and of the NMI (the #DB's body contains
//! the NMI).

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, ensure, tags};

use super::common;
use crate::arch::percpu::{self, IstSlot};
use crate::arch::{cpu, debugreg, lapic};
use crate::entry::breakpoint::{self, Kind};
use crate::entry::checker::{self, IstFrame, Stamps};
use crate::entry::handlers::{self, DbEvent};

#[repr(align(8))]
struct Watched(AtomicU64);
static WATCHED: Watched = Watched(AtomicU64::new(0));
/// The iteration A's next outer #DB publishes (0: none pending).
static PENDING: AtomicU64 = AtomicU64::new(0);
static LATE: AtomicU64 = AtomicU64::new(0);
static NMI_IN_DB: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    name: "bench::nested_roundtrip",
    run: |ctx| nested(ctx, watched_write),
    iterations: 2_000,
    tags: &[tags::BENCH],
}

testkit::test! {
    name: "bench::nested_icebp_roundtrip",
    run: |ctx| nested(ctx, cpu::icebp),
    iterations: 2_000,
    tags: &[tags::BENCH],
}

/// The write watchpoint on `WATCHED` every bench here arms.
fn arm_watched() -> Result<(), breakpoint::BreakpointError> {
    common::arm(&[common::watch(0, WATCHED.0.as_ptr() as u64, Kind::Write, 8)])
}

/// The outer #DB as the scenario raises it: a write to the watched word.
fn watched_write() {
    WATCHED.0.fetch_add(1, Ordering::SeqCst);
}

/// How long the #DB waits for its NMI.
const NMI_WAIT_US: u64 = 100_000;

/// The #DB hook: the outer #DB of an iteration sends the NMI and waits for it
/// here, inside the #DB.
fn on_db(_: &DbEvent) {
    if PENDING.swap(0, Ordering::SeqCst) == 0 {
        return; // the nested #DB, or not this bench's
    }
    let cpu = percpu::this();
    let before = cpu.nmi_count.load(Ordering::Acquire);
    lapic::send_nmi(cpu.lapic_id());
    let arrived = crate::arch::time::wait_until(NMI_WAIT_US, || {
        cpu.nmi_count.load(Ordering::Acquire) > before
    });
    LATE.fetch_add(u64::from(!arrived), Ordering::Relaxed);
}

/// The NMI hook: the nested #DB's attempt.
fn on_nmi(frame: &mut IstFrame) {
    let db_stack = percpu::this().ist_stack(IstSlot::Db);
    NMI_IN_DB.fetch_add(
        u64::from(db_stack.contains(frame.regs.rsp)),
        Ordering::Relaxed,
    );
    WATCHED.0.fetch_add(1, Ordering::SeqCst);
}

/// Average cycles per entry: checker in, body, checker out.
fn per_entry(s: Stamps) -> (u64, u64, u64) {
    let n = s.count.max(1);
    (s.checker_in / n, s.body / n, s.checker_out / n)
}

/// The nested iteration, its outer #DB raised by `raise`; the watchpoint is
/// armed either way, so the entry finds DR7 armed and the NMI's write is a
/// nested-#DB attempt.
fn nested(ctx: &mut Context<'_>, raise: fn()) -> TestResult {
    if let Err(e) = arm_watched() {
        testkit::fail!(ctx, "arming the watchpoint: {e:?}");
    }
    let cpu = percpu::this().index();
    common::reset_counts(cpu);
    LATE.store(0, Ordering::Relaxed);
    NMI_IN_DB.store(0, Ordering::Relaxed);
    handlers::set_db_hook(Some(on_db));
    handlers::set_nmi_hook(Some(on_nmi));
    let dbs = handlers::db_count(cpu);
    checker::reset_stamps();
    checker::set_stamps(true);
    for _ in 0..ctx.iterations {
        PENDING.store(1, Ordering::SeqCst);
        raise(); // the outer #DB
    }
    checker::set_stamps(false);
    handlers::set_nmi_hook(None);
    handlers::set_db_hook(None);
    breakpoint::reset();
    let n = u64::from(ctx.iterations);
    let (late, in_db) = (
        LATE.load(Ordering::Relaxed),
        NMI_IN_DB.load(Ordering::Relaxed),
    );
    let nested = handlers::db_count(cpu) - dbs - n;
    let (db, nmi) = (
        checker::stamps(cpu, IstSlot::Db),
        checker::stamps(cpu, IstSlot::Nmi),
    );
    let evidence = common::collect(ctx, cpu);
    ctx.counters.nmis = Some(nmi.count);
    ensure!(
        ctx,
        late == 0,
        "{late} NMIs did not arrive inside their #DB"
    );
    ensure!(ctx, in_db == n, "{in_db} of {n} NMIs landed inside a #DB");
    let (d_in, d_body, d_out) = per_entry(Stamps { count: n, ..db });
    let (n_in, n_body, n_out) = per_entry(nmi);
    ctx.note(format_args!(
        "db: checker_in={d_in} body={d_body} checker_out={d_out}; nmi: checker_in={n_in} body={n_body} checker_out={n_out} (cycles per outer #DB and per NMI); nmi_in_db={in_db} nested_db={nested} incidents={}",
        evidence.report.incidents
    ));
    Ok(Observed::Survived)
}

testkit::test! {
    name: "bench::db_roundtrip",
    run: |ctx| db_alone(ctx, watched_write),
    iterations: 2_000,
    tags: &[tags::BENCH],
}

testkit::test! {
    name: "bench::db_icebp_roundtrip",
    run: |ctx| db_alone(ctx, cpu::icebp),
    iterations: 2_000,
    tags: &[tags::BENCH],
}

/// The nested iteration's outer #DB alone: the same watched write, the same
/// strategy's #DB entry and checker, no NMI. With `bench::nmi_self_roundtrip`
/// it is the floor the nested iteration cannot go under: what is left above
/// their sum is the nesting itself (the hook's send and wait, the NMI's
/// nested-#DB attempt).
fn db_alone(ctx: &mut Context<'_>, raise: fn()) -> TestResult {
    if let Err(e) = arm_watched() {
        testkit::fail!(ctx, "arming the watchpoint: {e:?}");
    }
    let cpu = percpu::this().index();
    common::reset_counts(cpu);
    let dbs = handlers::db_count(cpu);
    checker::reset_stamps();
    checker::set_stamps(true);
    for _ in 0..ctx.iterations {
        raise();
    }
    checker::set_stamps(false);
    breakpoint::reset();
    let (d_in, d_body, d_out) = per_entry(checker::stamps(cpu, IstSlot::Db));
    let (seen, n) = (handlers::db_count(cpu) - dbs, u64::from(ctx.iterations));
    let evidence = common::collect(ctx, cpu);
    ensure!(ctx, seen == n, "{seen} #DB for {n} raised");
    ensure!(
        ctx,
        evidence.report.incidents == 0,
        "the checker found {} incidents",
        evidence.report.incidents
    );
    ctx.note(format_args!(
        "db: checker_in={d_in} body={d_body} checker_out={d_out} (cycles per #DB)"
    ));
    Ok(Observed::Survived)
}

testkit::test! {
    name: "bench::dr7_roundtrip",
    run: dr7_roundtrip,
    iterations: 10_000,
    tags: &[tags::BENCH],
}

/// Pages `dr7_roundtrip` touches between the writes of its second loop.
const TOUCHED_PAGES: usize = 16;
const WORDS_PER_PAGE: usize = 4096 / 8;
static PAGES: [AtomicU64; TOUCHED_PAGES * WORDS_PER_PAGE] =
    [const { AtomicU64::new(0) }; TOUCHED_PAGES * WORDS_PER_PAGE];

/// One write to each of the touched pages.
fn touch_pages() {
    for page in PAGES.iter().step_by(WORDS_PER_PAGE) {
        page.fetch_add(1, Ordering::Relaxed);
    }
}

/// DR7 cleared and put back, with the nested iteration's watchpoint armed:
/// the two DR7 writes a Linux-style #DB entry makes when it finds a
/// breakpoint armed (`local_db_save`/`local_db_restore`), alone, without an
/// exception. Its details give the pair alone (`pair`), and the pair with
/// 16 pages touched after each write against the touches alone: what the
/// writes cost the code that runs after them (under QEMU's TCG, a
/// watchpoint that changes inside a 2 MiB page empties the whole software
/// TLB, and every page is walked again).
fn dr7_roundtrip(ctx: &mut Context<'_>) -> TestResult {
    if let Err(e) = arm_watched() {
        testkit::fail!(ctx, "arming the watchpoint: {e:?}");
    }
    let armed = debugreg::read_dr7();
    let n = u64::from(ctx.iterations);
    let per_pair = |f: &dyn Fn()| {
        let start = cpu::rdtsc();
        for _ in 0..n {
            f();
        }
        (cpu::rdtsc() - start) / n
    };
    let touches = per_pair(&|| {
        touch_pages();
        touch_pages();
    });
    let with_touches = per_pair(&|| {
        debugreg::write_dr7(0);
        touch_pages();
        debugreg::write_dr7(armed);
        touch_pages();
    });
    let pair = per_pair(&|| {
        debugreg::write_dr7(0);
        debugreg::write_dr7(armed);
    });
    let after = debugreg::read_dr7();
    breakpoint::reset();
    ensure!(
        ctx,
        armed & 0b11 != 0 && after == armed,
        "DR7 was {armed:#x} armed and {after:#x} after the loop"
    );
    ctx.note(format_args!(
        "pair={pair} with_touches={with_touches} touches_alone={touches} (cycles per pair; {} page writes per pair with touches)",
        2 * TOUCHED_PAGES
    ));
    Ok(Observed::Survived)
}
