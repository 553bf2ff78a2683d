//! The entry strategies, chosen at boot with `entry=NAME`. Each is a set of
//! flag bits that the shared stubs test at run time; a stub applies on its way
//! out exactly the bits it saw at entry, so a strategy cannot change under a
//! handler. What each models, and where it departs from its model:
//!
//! | name         | bits                                   | models |
//! |--------------|----------------------------------------|--------|
//! | `naive`      | none: plain IST, plain IRET            | the textbook bug |
//! | `shift-only` | SHIFT_IST                              | the `shift_ist` idea alone |
//! | `linux-4.19` | DEBUG_IDT, NMI_NESTING, USER_SWITCH, NMI_LATCH | Linux 4.19 `entry_64.S`, `traps.c`, `nmi.c` |
//! | `dr7-guard`  | DR7_GUARD                              | the DR7 remedy alone |
//! | `linux`      | DR7_GUARD, NMI_NESTING, USER_SWITCH, NMI_LATCH | Linux 6.6 `entry_64.S`, `traps.c`, `nmi.c` |
//!
//! `linux` (6.6): #DB and NMI from ring 3 move to the kernel stack (RSP0) and
//! run there, #DB without touching DR7 (`exc_debug_user`); kernel-mode #DB
//! stays on its IST and saves/clears DR7 after its pushes (`local_db_save` in
//! `exc_debug_kernel`), and relies on the deny-list (`within_cpu_entry`) for
//! what comes before; NMI: CS first, then the three nested tests, the repeat
//! loop, DR7 saved and cleared by the body, `nmi_state` latching for NMIs that
//! nest inside a ring-3 NMI. The DR7 save is `local_db_save`'s: DR7 less bit
//! 10, written to 0 only when that leaves something armed, and written back
//! on the way out only then. Departures: no SWAPGS/CR3/mitigations (nothing to
//! protect here); the DR7 save sits in the asm right after the pushes rather
//! than in C a few calls later (both after the pushes, both before the hook);
//! Linux under a hypervisor skips even the DR7 read when its own record
//! (`hw_breakpoint_active`) says nothing is armed: here DR7 is that record, so
//! the read always happens, and with nothing armed nothing is written either way.
//!
//! `linux-4.19`: the same NMI asm and ring-3 moves, no DR7 handling; kernel
//! #DB runs the tracing hook under the debug IDT (`TRACE_IRQS_OFF_DEBUG`:
//! `debug_stack_set_zero`, hook, `debug_stack_reset`), then lowers IST1 by
//! `EXCEPTION_STKSZ` around the body; an NMI whose interrupted RSP lies on the
//! #DB stack loads the debug IDT for its whole handler. Departure: 4.19's
//! `is_debug_stack` also honours a `debug_stack_usage` count that only
//! `do_int3` raised; #BP here never runs on the #DB stack, so it is left out.

use core::sync::atomic::{AtomicU8, Ordering};

/// How far `shift-only` and `linux-4.19` lower the #DB IST pointer while a #DB
/// runs (Linux 4.19: `EXCEPTION_STKSZ`).
pub const IST_SHIFT: u64 = 4096;

pub const SHIFT_IST: u8 = 1 << 0;
pub const DR7_GUARD: u8 = 1 << 1;
/// The nested-NMI asm (`nmi_stub_linux`) for kernel-mode NMIs.
pub const NMI_NESTING: u8 = 1 << 2;
/// #DB and NMI from ring 3 leave their IST stack for RSP0.
pub const USER_SWITCH: u8 = 1 << 3;
/// Linux 4.19's debug IDT, and the IST shift around the #DB body.
pub const DEBUG_IDT: u8 = 1 << 4;
/// `exc_nmi`'s nmi_state: an NMI body that finds another running latches.
pub const NMI_LATCH: u8 = 1 << 5;

/// Read by the asm stubs (`byte ptr [rip + ENTRY_FLAGS]`).
#[unsafe(no_mangle)]
pub static ENTRY_FLAGS: AtomicU8 = AtomicU8::new(0);

pub use testkit::Strategy;

/// The bits the stubs apply for `strategy`.
pub const fn flags(strategy: Strategy) -> u8 {
    match strategy {
        Strategy::Naive => 0,
        Strategy::ShiftOnly => SHIFT_IST,
        Strategy::Linux419 => DEBUG_IDT | NMI_NESTING | USER_SWITCH | NMI_LATCH,
        Strategy::Dr7Guard => DR7_GUARD,
        Strategy::Linux => DR7_GUARD | NMI_NESTING | USER_SWITCH | NMI_LATCH,
    }
}

/// Whether the running strategy applies `bit`.
pub fn applies(bit: u8) -> bool {
    ENTRY_FLAGS.load(Ordering::Relaxed) & bit != 0
}

pub(super) fn set(strategy: Strategy) {
    ENTRY_FLAGS.store(flags(strategy), Ordering::Relaxed);
}
