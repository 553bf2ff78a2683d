//! sysenter_tf: SYSENTER cannot mask TF.
//!
//! Setup: SYSENTER pointed at a test entry (three NOPs, then `int 0x81` back
//! to the parked kernel context) on its own stack (IA32_SYSENTER_ESP).
//! Hazard: TF set in ring 3 right before SYSENTER. SYSCALL has SFMASK to
//! clear TF on the way in (`syscall_tf`); SYSENTER clears only IF, VM and RF,
//! so the single-step #DB is delivered on the entry's first instruction, in
//! ring 0, on the #DB IST, before the entry has run a single instruction (no
//! stack switch of its own, no TF clearing, nothing). A kernel whose SYSENTER
//! entry assumes TF is clear, or whose #DB handler assumes a ring-0 #DB comes
//! from kernel code that chose to be traced, is wrong here.
//! Proof: the #DB hook reads the outermost #DB frame from the top of the #DB
//! IST: RIP on the entry's first instruction, CS 0x08, RSP exactly the
//! SYSENTER stack top, and the hook itself running on the #DB IST.
//! Check: per SYSENTER exactly one such #DB at the first instruction and one
//! per entry instruction (four), and every call comes back through the entry.
//! In 64-bit mode SYSENTER is Intel's: on an AMD vendor string it raises #UD,
//! and the test says the hazard cannot be produced there.
//! Registers (the damage kit): not checked here, as in `syscall_tf`: the
//! #DBs interrupt the SYSENTER entry itself, and ring 3 never resumes.

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use crate::arch::sysenter;
use crate::arch::user::{Exit, Program, SYSCALL_RETURNED};
use crate::entry::handlers::{self, DbEvent};
use crate::mm;

/// Instructions the test entry runs before leaving: three NOPs and `int 0x81`.
const ENTRY_INSTRUCTIONS: u64 = 4;
const KERNEL_CS: u64 = 0x08;
const UD: u8 = 6;

static IN_ENTRY: AtomicU64 = AtomicU64::new(0);
/// #DBs on the first instruction with the whole proof: frame and stack.
static AT_FIRST_PROVEN: AtomicU64 = AtomicU64::new(0);
static AT_FIRST_OTHER: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    run: run,
    iterations: 100,
    tags: &[tags::TCG],
}

fn on_db(event: &DbEvent) {
    let (start, end) = sysenter::entry_range();
    if event.from_user || event.rip < start || event.rip >= end {
        return;
    }
    IN_ENTRY.fetch_add(1, Ordering::Relaxed);
    if event.rip == start {
        let ((rip, cs, rsp), on_db_ist) = sysenter::outer_db_frame();
        let proven = rip == start && cs == KERNEL_CS && rsp == sysenter::stack_top() && on_db_ist;
        let counter = if proven {
            &AT_FIRST_PROVEN
        } else {
            &AT_FIRST_OTHER
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    for counter in [&IN_ENTRY, &AT_FIRST_PROVEN, &AT_FIRST_OTHER] {
        counter.store(0, Ordering::Relaxed);
    }
    sysenter::enable();
    handlers::set_db_hook(Some(on_db));
    let (mut returned, mut undefined, mut other) = (0u64, 0u64, 0u64);
    for _ in 0..ctx.iterations {
        match mm::user_sandbox().run(Program::SysenterTf, 0, 0) {
            Exit::Returned(SYSCALL_RETURNED) => returned += 1,
            Exit::Exception { vector: UD, .. } => undefined += 1,
            _ => other += 1,
        }
    }
    handlers::set_db_hook(None);
    let (dbs, proven, unproven) = (
        IN_ENTRY.load(Ordering::Relaxed),
        AT_FIRST_PROVEN.load(Ordering::Relaxed),
        AT_FIRST_OTHER.load(Ordering::Relaxed),
    );
    let n = u64::from(ctx.iterations);
    ctx.counters.dbs = Some(dbs);
    ctx.note(format_args!(
        "sysenter_returned={returned} ud={undefined} other_exits={other} dbs_in_entry={dbs} \
         at_first_on_db_ist={proven} at_first_unproven={unproven} intel={}",
        sysenter::available()
    ));
    if undefined == n && !sysenter::available() {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "SYSENTER raises #UD in 64-bit mode on this CPU (not Intel's vendor string)"
        ))));
    }
    testkit::ensure!(
        ctx,
        returned == n,
        "{} of {n} SYSENTERs did not come back through the entry ({undefined} #UD)",
        n - returned
    );
    if proven != n || unproven != 0 || dbs != ENTRY_INSTRUCTIONS * n {
        testkit::fail!(
            ctx,
            "{proven} #DBs proven on the entry's first instruction ({unproven} not) and {dbs} \
             in the entry for {n} SYSENTERs (want {n} and {})",
            ENTRY_INSTRUCTIONS * n
        );
    }
    Ok(Observed::Survived)
}
