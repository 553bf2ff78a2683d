//! The entry strategies, chosen at boot with `entry=NAME`. Each is a set of
//! flag bits that the shared stubs test at run time; the stubs apply exactly the
//! bits they saw at entry on the way out, so a strategy cannot change under a
//! handler.
//!
//! | name        | bits                         |
//! |-------------|------------------------------|
//! | `naive`     | none: plain IST, plain IRET  |
//! | `shift-ist` | SHIFT_IST (#DB only)         |
//! | `dr7-guard` | DR7_GUARD (#DB and NMI)      |
//! | `linux`     | DR7_GUARD + NMI_NESTING      |

use core::sync::atomic::{AtomicU8, Ordering};

pub const SHIFT_IST: u8 = 1 << 0;
pub const DR7_GUARD: u8 = 1 << 1;
pub const NMI_NESTING: u8 = 1 << 2;

/// Read by the asm stubs (`byte ptr [rip + ENTRY_FLAGS]`).
#[unsafe(no_mangle)]
pub static ENTRY_FLAGS: AtomicU8 = AtomicU8::new(0);

pub use testkit::Strategy;

/// The bits the stubs apply for `strategy`.
pub fn flags(strategy: Strategy) -> u8 {
    match strategy {
        Strategy::Naive => 0,
        Strategy::ShiftIst => SHIFT_IST,
        Strategy::Dr7Guard => DR7_GUARD,
        Strategy::Linux => DR7_GUARD | NMI_NESTING,
    }
}

pub(super) fn set(strategy: Strategy) {
    ENTRY_FLAGS.store(flags(strategy), Ordering::Relaxed);
}
