//! Phase stamps for benches: where an IST entry's cycles go. Off by default
//! (one relaxed load per half when off); when on, the checker's two halves
//! read the TSC at their start and end, and add up per CPU and vector:
//! the checker's entry half, the body (tracing hook and handler, nested
//! entries included), and the checker's exit half. What comes before the entry
//! half (the stub's pushes and strategy work) and after the exit half (pops,
//! IRET) is the rest of a measured round trip.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::MAX_DEPTH;
use crate::arch::MAX_CPUS;
use crate::arch::cpu::rdtsc;
use crate::arch::percpu::{IST_COUNT, IstSlot};

static ENABLED: AtomicBool = AtomicBool::new(false);

const COUNT: usize = 0;
const CHECKER_IN: usize = 1;
const BODY: usize = 2;
const CHECKER_OUT: usize = 3;

static SUMS: [[[AtomicU64; 4]; IST_COUNT]; MAX_CPUS] =
    [const { [const { [const { AtomicU64::new(0) }; 4] }; IST_COUNT] }; MAX_CPUS];
static BODY_START: [[[AtomicU64; MAX_DEPTH]; IST_COUNT]; MAX_CPUS] =
    [const { [const { [const { AtomicU64::new(0) }; MAX_DEPTH] }; IST_COUNT] }; MAX_CPUS];

/// Cycles summed over `count` entries of one vector on one CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamps {
    pub count: u64,
    pub checker_in: u64,
    pub body: u64,
    pub checker_out: u64,
}

pub fn set_stamps(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Zeroes every CPU's sums. Normal context, no IST handler running.
pub fn reset_stamps() {
    for word in SUMS.iter().flatten().flatten() {
        word.store(0, Ordering::Relaxed);
    }
}

pub fn stamps(cpu: usize, slot: IstSlot) -> Stamps {
    let sums = &SUMS[cpu][slot as usize];
    let read = |i: usize| sums[i].load(Ordering::Relaxed);
    Stamps {
        count: read(COUNT),
        checker_in: read(CHECKER_IN),
        body: read(BODY),
        checker_out: read(CHECKER_OUT),
    }
}

/// The TSC when stamps are on, else 0 (and nothing is recorded).
pub(super) fn now() -> u64 {
    if ENABLED.load(Ordering::Relaxed) {
        rdtsc()
    } else {
        0
    }
}

/// End of the entry half that started at `start`.
pub(super) fn entered(cpu: usize, v: usize, depth: usize, start: u64) {
    if start == 0 || depth >= MAX_DEPTH {
        return;
    }
    let t = rdtsc();
    SUMS[cpu][v][CHECKER_IN].fetch_add(t - start, Ordering::Relaxed);
    BODY_START[cpu][v][depth].store(t, Ordering::Relaxed);
}

/// End of the exit half that started at `start`.
pub(super) fn exited(cpu: usize, v: usize, depth: usize, start: u64) {
    if start == 0 || depth >= MAX_DEPTH {
        return;
    }
    let body_start = BODY_START[cpu][v][depth].load(Ordering::Relaxed);
    let sums = &SUMS[cpu][v];
    if body_start != 0 && start > body_start {
        sums[BODY].fetch_add(start - body_start, Ordering::Relaxed);
    }
    sums[CHECKER_OUT].fetch_add(rdtsc() - start, Ordering::Relaxed);
    sums[COUNT].fetch_add(1, Ordering::Relaxed);
}
