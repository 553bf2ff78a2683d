//! The irq-state tracing hook: the analogue of Linux's TRACE_IRQS_OFF, which
//! #DB and NMI entry called before 5.8 (and which could hit a breakpoint and
//! recurse). It records, per CPU, how often it ran and whether the interrupted
//! context had interrupts enabled.
//!
//! It lives in `.text.trace` so that the deny-list can protect it.

use core::sync::atomic::{AtomicU64, Ordering};

use super::checker::IstFrame;
use crate::arch::MAX_CPUS;
use crate::arch::percpu;

const RFLAGS_IF: u64 = 1 << 9;

static CALLS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static IRQS_WERE_ON: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Called by the #DB and NMI stubs with their frame, and by tests directly.
#[inline(never)]
#[unsafe(link_section = ".text.trace")]
pub extern "C" fn trace_irqs_off(frame: &IstFrame) {
    let cpu = percpu::this().index();
    CALLS[cpu].fetch_add(1, Ordering::Relaxed);
    if frame.regs.rflags & RFLAGS_IF != 0 {
        IRQS_WERE_ON[cpu].fetch_add(1, Ordering::Relaxed);
    }
}

pub fn calls(cpu: usize) -> u64 {
    CALLS[cpu].load(Ordering::Relaxed)
}

/// The hook's address: where a breakpoint on it goes.
pub fn hook_address() -> u64 {
    trace_irqs_off as *const () as u64
}

unsafe extern "C" {
    static __trace_text_start: u8;
    static __trace_text_end: u8;
}

/// The hook's text, for the deny-list.
pub fn text_range() -> (u64, u64) {
    (
        &raw const __trace_text_start as u64,
        &raw const __trace_text_end as u64,
    )
}
