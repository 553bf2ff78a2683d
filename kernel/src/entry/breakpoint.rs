//! Breakpoints for scenarios, with the deny-list (Linux's NOKPROBE_SYMBOL and
//! `within_cpu_entry`): unless the caller forces it, no breakpoint may sit on
//! - entry text and the tracing hook (an execute breakpoint there recurses);
//! - what the entry code touches before it saves and clears DR7, or that it
//!   needs to get there: every CPU's IST stacks and RSP0 stack (the frames and
//!   the saved DR7 live there), its TSS, GDT and per-CPU area (IST pointers,
//!   entry counters), both IDTs, and the strategy word the stubs read first.
//!
//! `dr7-guard` and `linux` clear DR7 only after those accesses, so a watchpoint
//! on any of them would fire inside the entry; Linux survives that order by
//! refusing such breakpoints, and so does this list. The recursion tests force.

use crate::arch::debugreg;
pub use crate::arch::debugreg::{Breakpoint, BreakpointError, Kind};
use crate::arch::percpu::{self, IstSlot};
use crate::arch::{idt, smp};

/// The ranges `within_cpu_entry` covers here, one at a time, each with a name
/// (for the test that shows each is refused).
pub fn for_each_entry_range(mut each: impl FnMut(&'static str, (u64, u64))) {
    each("entry text", debugreg::entry_text_range());
    each("trace hook", super::trace::text_range());
    for range in idt::ranges() {
        each("idt", range);
    }
    let flags = &super::strategy::ENTRY_FLAGS as *const _ as u64;
    each("entry flags", (flags, flags + 1));
    for cpu in (0..smp::online_count()).map(percpu::cpu) {
        for slot in IstSlot::ALL {
            let stack = cpu.ist_stack(slot);
            each("ist stack", (stack.bottom, stack.top));
        }
        let ring0 = cpu.ring0_stack();
        each("rsp0 stack", (ring0.bottom, ring0.top));
        let [tss, gdt, percpu] = cpu.descriptor_ranges();
        each("tss", tss);
        each("gdt", gdt);
        each("per-cpu area", percpu);
    }
}

/// Which protected range `[addr, addr + len)` touches, if any.
pub fn denied_by(addr: u64, len: u64) -> Option<&'static str> {
    let mut hit = None;
    for_each_entry_range(|name, (start, end)| {
        if hit.is_none() && addr < end && addr + len > start {
            hit = Some(name);
        }
    });
    hit
}

/// Arms `bp` on the running CPU after the deny-list check.
pub fn arm(bp: Breakpoint, force: bool) -> Result<(), BreakpointError> {
    debugreg::validate(&bp, force, &[])?;
    if !force && denied_by(bp.addr, bp.len).is_some() {
        return Err(BreakpointError::Denied);
    }
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
