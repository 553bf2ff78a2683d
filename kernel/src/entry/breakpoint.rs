//! Breakpoints for scenarios, with the deny-list: entry text and the tracing
//! hook refuse breakpoints (Linux's NOKPROBE_SYMBOL) unless the caller forces it,
//! which is exactly what the recursion tests do.

use crate::arch::debugreg;
pub use crate::arch::debugreg::{Breakpoint, BreakpointError, Kind};

/// Arms `bp` on the running CPU after the deny-list check.
pub fn arm(bp: Breakpoint, force: bool) -> Result<(), BreakpointError> {
    debugreg::validate(&bp, force, &[super::trace::text_range()])?;
    debugreg::arm(&bp);
    Ok(())
}

pub fn disarm(slot: usize) {
    debugreg::disarm(slot);
}

/// Disarms everything on the running CPU and clears DR6.
pub fn reset() {
    debugreg::reset();
}
