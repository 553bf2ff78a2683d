//! Catching a double fault on purpose. `catch(f)` runs `f`; if a #DF arrives on
//! this CPU meanwhile, the #DF handler (on its own IST stack) records it and
//! IRETs to a landing point that returns from `catch` as if `f` had returned.
//! This is how `ist_overflow_df` proves an IST overflow ends in a clean #DF
//! report, not a triple fault, and still lets the run go on.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::MAX_CPUS;
use crate::arch::park::{self, Parked};
use crate::arch::percpu;
use crate::arch::vectors::TrapFrame;

/// What the #DF handler saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct DoubleFault {
    pub rip: u64,
    pub rsp: u64,
    pub error_code: u64,
}

static SEEN: [[AtomicU64; 3]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; 3] }; MAX_CPUS];

/// Runs `f`; returns the #DF it caused, if any.
pub fn catch(f: extern "C" fn()) -> Option<DoubleFault> {
    let cpu = percpu::this().index();
    // SAFETY: `f` is an `extern "C" fn()` (extra arguments are ignored); a
    // #DF on this CPU lands through `land` below.
    let parked = unsafe { park::call_parked(f as *const () as u64, [0; 4]) };
    matches!(parked, Parked::Landed(_)).then(|| DoubleFault {
        rip: SEEN[cpu][0].load(Ordering::Relaxed),
        rsp: SEEN[cpu][1].load(Ordering::Relaxed),
        error_code: SEEN[cpu][2].load(Ordering::Relaxed),
    })
}

/// Called by the dispatcher on #DF: redirects the IRET to the `catch` that is
/// running on this CPU, if any. The abandoned context is never resumed.
pub(super) fn land(frame: &mut TrapFrame) -> bool {
    let Some(cpu) = percpu::try_index() else {
        return false;
    };
    let (rip, rsp, error_code) = (frame.rip, frame.rsp, frame.error_code);
    if !park::land(frame, 1) {
        return false;
    }
    SEEN[cpu][0].store(rip, Ordering::Relaxed);
    SEEN[cpu][1].store(rsp, Ordering::Relaxed);
    SEEN[cpu][2].store(error_code, Ordering::Relaxed);
    super::checker::reset_after_abandon(cpu);
    true
}
