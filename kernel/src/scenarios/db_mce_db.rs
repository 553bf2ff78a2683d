//! db_mce_db: a machine check inside a #DB handler, and the #MC handler
//! touches a watchpoint ("#DB -> #MC in the handler -> #DB": the first line
//! of the 2019 hazard list, where "the MCE code does not" get it right).
//!
//! Setup: machine checks armed on this CPU; write watchpoints on OUTER (the
//! loop's store, slot 0) and INNER (the #MC handler's touch, slot 1). The #DB
//! hook spins on every OUTER #DB, so the loop spends most of its time inside
//! #DB handlers.
//! Hazard: per iteration the kernel asks the host for a #MC ("during": db)
//! and loops watched stores until the host answers. The #MC lands, most of
//! the time, inside a #DB handler, on the #DB IST; its handler writes INNER:
//! a #DB inside the #MC. Where the #MC path leaves DR7 armed, that #DB starts
//! at the #DB IST top, which the interrupted #DB handler is still using,
//! unless the #DB IST pointer was shifted at that moment.
//! Proof: per iteration, the #MC frame's interrupted RSP (inside the #DB IST
//! stack: the #MC landed in a #DB handler), the INNER #DBs the #DB hook saw
//! (DR6.B1), and the #DB IST pointer the #MC hook read (shifted or at top),
//! and whether the debug IDT was loaded then.
//! Check: `naive` (DR7 armed, no shift): every landing in #DB that raised the
//! INNER #DB must be a checker incident (`detect`, 100%). `shift-only` and
//! `linux-4.19` (`timing`): predicted per landing: IST pointer at its top ->
//! must corrupt, shifted -> must not; and `linux-4.19` with its debug IDT
//! loaded (the #MC landed in the #DB tracing hook, `TRACE_IRQS_OFF_DEBUG`)
//! -> must not: the nested #DB takes the debug IDT's gate without IST and
//! runs on the #MC stack. `dr7-guard` and `linux` (Linux 6.6's
//! `local_db_save` in the #MC entry): the #MC handler sees DR7 = 0, no INNER
//! #DB, no incident. An iteration whose #MC landed outside any #DB handler
//! predicts clean; if no #MC at all landed in one, the hazard was not
//! produced (`not-reproduced`), and so under `timing` if every landing fell
//! in the shifted window (measured on TCG: all of them, since the handler
//! spins after the shift): the nested #DB then lands 4 KiB lower, clean.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, Expect, Expectations, Observed, Strategy, TestResult, tags};

use super::common::{self, Detection};
use crate::arch::percpu::{self, IstSlot};
use crate::arch::time;
use crate::arch::{idt, mce};
use crate::entry::breakpoint::{self, Breakpoint, Kind};
use crate::entry::handlers::{self, DbEvent};
use crate::entry::mc::{self, Landing};
use crate::inject::{self, Answer};

/// How long each OUTER #DB handler spins, in microseconds.
const SPIN_US: u64 = 200;

static OUTER: AtomicU64 = AtomicU64::new(0);
static INNER: AtomicU64 = AtomicU64::new(0);
static INNER_DBS: AtomicU64 = AtomicU64::new(0);
/// Set by the #MC hook: the #DB IST pointer was below its top (shifted).
static SHIFTED_AT_MC: AtomicBool = AtomicBool::new(false);
/// Set by the #MC hook: the debug IDT (#DB gate without IST) was loaded.
static DEBUG_IDT_AT_MC: AtomicBool = AtomicBool::new(false);

testkit::test! {
    run: run,
    iterations: 8,
    max_iterations: 100,
    timeout_ms: 60_000,
    tags: &[tags::TCG],
    expect: Expectations {
        naive: Expect::Detect,
        shift_only: Expect::Timing,
        linux_4_19: Expect::Timing,
        dr7_guard: Expect::Survive,
        linux: Expect::Survive,
    },
}

fn on_db(event: &DbEvent) {
    if event.dr6 & 0b10 != 0 {
        INNER_DBS.fetch_add(1, Ordering::Relaxed);
    } else if event.dr6 & 0b01 != 0 {
        time::delay_us(SPIN_US);
    }
}

fn on_mc(_: &Landing) {
    let cpu = percpu::this();
    let top = cpu.ist_stack(IstSlot::Db).top;
    SHIFTED_AT_MC.store(cpu.ist_pointer(IstSlot::Db) != top, Ordering::Relaxed);
    DEBUG_IDT_AT_MC.store(idt::debug_loaded(), Ordering::Relaxed);
    INNER.fetch_add(1, Ordering::SeqCst);
}

fn arm() -> Result<(), breakpoint::BreakpointError> {
    for (slot, cell) in [(0, &OUTER), (1, &INNER)] {
        let bp = Breakpoint {
            slot,
            addr: cell.as_ptr() as u64,
            kind: Kind::Write,
            len: 8,
        };
        breakpoint::arm(bp, false)?;
    }
    Ok(())
}

/// What one iteration saw.
#[derive(Default)]
struct Tally {
    landed_in_db: u64,
    inner_dbs: u64,
    shifted: u64,
    debug_idt: u64,
    must_corrupt: u64,
    mismatches: u64,
    dr7_live_in_mc: u64,
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let cpu = percpu::this().index();
    if let Err(why) = mce::enable() {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "machine checks unavailable: {why:?}"
        ))));
    }
    let db_stack = percpu::this().ist_stack(IstSlot::Db);
    common::reset_counts(cpu);
    handlers::set_db_hook(Some(on_db));
    mc::set_hook(Some(on_mc));
    let (mut det, mut t) = (Detection::default(), Tally::default());
    let mut failure = None;
    for i in 0..ctx.iterations {
        if arm().is_err() {
            failure = Some(("arming the watchpoints", i));
            break;
        }
        det.begin(cpu);
        let (before, inner_before) = (mc::landing(cpu).count, INNER_DBS.load(Ordering::Relaxed));
        let seq = inject::request(ctx, cpu, "db");
        let (answer, _) = inject::loop_until_answer(seq, || {
            OUTER.fetch_add(1, Ordering::SeqCst);
        });
        breakpoint::reset();
        let landing = mc::landing(cpu);
        if answer != Answer::Injected || landing.count != before + 1 {
            failure = Some(("injection", i));
            break;
        }
        let in_db = landing.rsp >= db_stack.bottom && landing.rsp < db_stack.top;
        let inner = INNER_DBS.load(Ordering::Relaxed) - inner_before;
        let shifted = SHIFTED_AT_MC.load(Ordering::Relaxed);
        let debug_idt = DEBUG_IDT_AT_MC.load(Ordering::Relaxed);
        let must = in_db && inner > 0 && !shifted && !debug_idt;
        let incident = det.incidents_since_begin(cpu) > 0;
        det.end(cpu, must);
        t.landed_in_db += u64::from(in_db);
        t.inner_dbs += inner;
        t.shifted += u64::from(in_db && shifted);
        t.debug_idt += u64::from(in_db && debug_idt);
        t.must_corrupt += u64::from(must);
        t.mismatches += u64::from(must != incident);
        t.dr7_live_in_mc += u64::from(landing.live_dr7 & 0xff != 0);
    }
    breakpoint::reset();
    mc::set_hook(None);
    handlers::set_db_hook(None);
    let evidence = common::collect(ctx, cpu);
    let n = u64::from(ctx.iterations);
    ctx.note(format_args!(
        "injected={n} mc_in_db={} inner_dbs={} shifted_at_mc={} debug_idt_at_mc={} must_corrupt={} incidents={} \
         mismatches={} dr7_armed_in_mc={}",
        t.landed_in_db,
        t.inner_dbs,
        t.shifted,
        t.debug_idt,
        t.must_corrupt,
        evidence.report.incidents,
        t.mismatches,
        t.dr7_live_in_mc
    ));
    if let Some((what, at)) = failure {
        return match what {
            "injection" => Ok(Observed::NotReproduced(testkit::message(format_args!(
                "iteration {at}: the host did not inject a machine check"
            )))),
            _ => Err(ctx.fail(format_args!("{what} failed in iteration {at}"))),
        };
    }
    if t.landed_in_db == 0 {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "no machine check landed inside a #DB handler in {n} injections"
        ))));
    }
    let guarded = matches!(ctx.strategy, Strategy::Dr7Guard | Strategy::Linux);
    if guarded && (t.inner_dbs != 0 || t.dr7_live_in_mc != 0) {
        return Err(ctx.fail(format_args!(
            "the #MC path left DR7 armed: {} INNER #DBs, DR7 live in {} #MCs",
            t.inner_dbs, t.dr7_live_in_mc
        )));
    }
    if !guarded && t.inner_dbs < t.landed_in_db {
        return Err(ctx.fail(format_args!(
            "the #MC handler's touch raised {} #DBs for {} landings in #DB",
            t.inner_dbs, t.landed_in_db
        )));
    }
    // `timing` needs landings on both sides of the prediction. The host picks
    // the moment and the handler spins after the shift, so a #MC before the
    // shift is rare: without one, the corrupting half was not produced.
    let timing = matches!(ctx.strategy, Strategy::ShiftOnly | Strategy::Linux419);
    if timing && t.must_corrupt == 0 {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "all {} #MCs in #DB landed with the #DB IST shifted: none where it must corrupt",
            t.landed_in_db
        ))));
    }
    Ok(match evidence.observed(det) {
        Observed::Ran(mut counts) => {
            counts.predicted_corrupt = t.must_corrupt;
            counts.predicted_clean = n - t.must_corrupt;
            counts.mismatches = t.mismatches;
            Observed::Ran(counts)
        }
        other => other,
    })
}
