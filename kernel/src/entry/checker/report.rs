//! Draining a CPU's checker from normal context: findings, counts, canaries.

use core::sync::atomic::Ordering;

use super::paint::{damaged_canary, restore_canaries};
use super::{Corruption, KINDS, Kind, checker};
use crate::arch::percpu::{self, IST_COUNT, IstSlot};

/// Counts one CPU's checker gathered since the last `take_report`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    pub frame_mismatches: u64,
    pub stack_clobbers: u64,
    pub reentries: u64,
    pub depth_overflows: u64,
    pub overlaps: u64,
    pub canaries: u64,
    /// Damaged entries and canaries: the number verdicts count.
    pub incidents: u64,
    pub recovered: u64,
    pub max_depth: [u32; IST_COUNT],
}

/// Drains one CPU's checker and calls `each` for every recorded finding (the
/// ring keeps the first 32). Judges the canaries of that CPU's IST stacks.
/// Normal context only, with no IST handler running on that CPU.
pub fn take_report(cpu: usize, mut each: impl FnMut(&Corruption)) -> Report {
    let checker = checker(cpu);
    for slot in IstSlot::ALL {
        let stack = percpu::cpu(cpu).ist_stack(slot);
        if let Some((_, seen)) = damaged_canary(stack) {
            checker.record(Corruption {
                kind: Kind::Canary,
                vector: slot.vector(),
                field: "canary",
                expected: super::paint::CANARY,
                seen,
                depth: 0,
            });
            checker.incident();
            restore_canaries(stack);
        }
    }
    let events = (checker.event_count.swap(0, Ordering::Relaxed) as usize).min(super::EVENT_SLOTS);
    for slot in &super::events(checker)[..events] {
        // SAFETY: no IST handler runs on that CPU now, so nobody writes the ring.
        if let Some(event) = unsafe { (*slot.get()).take() } {
            each(&event);
        }
    }
    let counts: [u64; KINDS] =
        core::array::from_fn(|i| checker.counts[i].swap(0, Ordering::Relaxed));
    Report {
        frame_mismatches: counts[Kind::FrameMismatch as usize],
        stack_clobbers: counts[Kind::StackClobbered as usize],
        reentries: counts[Kind::Reentry as usize],
        depth_overflows: counts[Kind::DepthOverflow as usize],
        overlaps: counts[Kind::Overlap as usize],
        canaries: counts[Kind::Canary as usize],
        incidents: checker.incidents.swap(0, Ordering::Relaxed),
        recovered: checker.recovered.swap(0, Ordering::Relaxed),
        max_depth: core::array::from_fn(|v| checker.max_depth[v].swap(0, Ordering::Relaxed)),
    }
}
