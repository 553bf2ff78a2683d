//! watchpoints: the debug-register API on every CPU. Write and read/write
//! watchpoints of 1, 2, 4 and 8 bytes fire on accesses inside their range and
//! stay silent on accesses next to it; disarming a slot silences it.
//!
//! Setup: on each CPU in turn (through `run_on`), one watchpoint at a time on an
//! aligned word of `BUFFER`.
//! Hazard: a wrong LEN or R/W encoding, or a stale DR6, misattributes or misses
//! the trap.
//! Proof: the #DB hook counts traps whose DR6 names the armed slot.
//! Check: exactly one trap per access inside, none for accesses outside or
//! after `disarm`, and reads trap only for read/write watchpoints. On each CPU
//! the register damage kit's store probe then hits an 8-byte watchpoint:
//! every GPR and RFLAGS as they were after the trap returned.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult};

use crate::arch::damage::{self, Hazard, R15, Regs, Tally};
use crate::arch::percpu;
use crate::entry::breakpoint::{self, Breakpoint, Kind};
use crate::entry::handlers::{self, DbEvent};

const SLOT: usize = 2;
const CPU_TIMEOUT_MS: u32 = 5_000;

#[repr(align(64))]
struct Buffer([AtomicU8; 32]);
/// Byte-wide atomics: each access is a real one-byte load or store.
static BUFFER: Buffer = Buffer([const { AtomicU8::new(0) }; 32]);
static TRAPS: AtomicU64 = AtomicU64::new(0);
/// The damage kit's account across CPUs (probes run on one CPU at a time).
static TALLY: spin::Mutex<Tally> = spin::Mutex::new(Tally {
    checked: 0,
    damaged: 0,
    first: None,
});
const PROBES_PER_CPU: u64 = 8;

testkit::test! {
    run: run,
    iterations: 10,
    tags: &[testkit::tags::TCG],
}

fn on_db(event: &DbEvent) {
    if event.dr6 & (1 << SLOT) != 0 {
        TRAPS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Traps seen for one read or write of one byte at `offset`.
fn traps_for(offset: u64, write: bool) -> u64 {
    let before = TRAPS.load(Ordering::Relaxed);
    let cell = &BUFFER.0[offset as usize];
    if write {
        cell.store(0x5a, Ordering::SeqCst);
    } else {
        core::hint::black_box(cell.load(Ordering::SeqCst));
    }
    TRAPS.load(Ordering::Relaxed) - before
}

/// Every length and kind on the running CPU; returns the number of mismatches.
fn check_this_cpu(_: u64) -> u64 {
    let base = 8; // an 8-aligned word with neighbours on both sides
    let mut wrong = 0;
    for kind in [Kind::Write, Kind::ReadWrite] {
        for len in [1u64, 2, 4, 8] {
            let bp = Breakpoint {
                slot: SLOT,
                addr: BUFFER.0.as_ptr() as u64 + base,
                kind,
                len,
            };
            if breakpoint::arm(bp, false).is_err() {
                return 1_000;
            }
            let expect_read = u64::from(kind == Kind::ReadWrite);
            wrong += u64::from(traps_for(base, true) != 1);
            wrong += u64::from(traps_for(base + len - 1, true) != 1);
            wrong += u64::from(traps_for(base + len - 1, false) != expect_read);
            wrong += u64::from(traps_for(base + len, true) != 0);
            wrong += u64::from(traps_for(base - 1, true) != 0);
            breakpoint::disarm(SLOT);
            wrong += u64::from(traps_for(base, true) != 0);
        }
    }
    wrong + probe_store(BUFFER.0.as_ptr() as u64 + base)
}

/// The damage kit's store probe under an 8-byte write watchpoint at `addr`;
/// returns the mismatches (a probe without its one trap, or with damage).
fn probe_store(addr: u64) -> u64 {
    let bp = Breakpoint {
        slot: SLOT,
        addr,
        kind: Kind::Write,
        len: 8,
    };
    if breakpoint::arm(bp, false).is_err() {
        return 1_000;
    }
    let mut wrong = 0;
    let mut tally = TALLY.lock();
    for i in 0..PROBES_PER_CPU {
        let mut fill = Regs::pattern(tally.checked + i, 0x77);
        fill.0[R15] = addr;
        let before = TRAPS.load(Ordering::Relaxed);
        let seen = damage::run_kernel(Hazard::Store, &fill);
        wrong += u64::from(TRAPS.load(Ordering::Relaxed) - before != 1);
        let iteration = tally.checked;
        wrong += u64::from(!tally.record(iteration, &fill, &seen));
    }
    breakpoint::disarm(SLOT);
    wrong
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    *TALLY.lock() = Tally::default();
    handlers::set_db_hook(Some(on_db));
    let cpus = ctx.cpu_count();
    let mut wrong = 0;
    for _ in 0..ctx.iterations {
        for cpu in 0..cpus {
            wrong += ctx.run_on(cpu, check_this_cpu, 0, CPU_TIMEOUT_MS)?;
        }
    }
    handlers::set_db_hook(None);
    let traps = TRAPS.load(Ordering::Relaxed);
    ctx.counters.dbs = Some(traps);
    let tally = *TALLY.lock();
    ctx.note(format_args!(
        "cpus={cpus} traps={traps} mismatches={wrong} (this cpu {}) regs_checked={} regs_damaged={}",
        percpu::this().index(),
        tally.checked,
        tally.damaged
    ));
    testkit::ensure!(ctx, tally.damaged == 0, "watched store: {tally}");
    testkit::ensure!(
        ctx,
        wrong == 0,
        "{wrong} watchpoint checks gave the wrong number of traps"
    );
    Ok(Observed::Survived)
}
