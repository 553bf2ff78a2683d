//! The entry layer: strategies, the IST stubs, the integrity checker, and the
//! dispatcher for the vectors that use the plain stubs in `traps`.

pub mod breakpoint;
pub mod checker;
pub mod counters;
mod db;
pub mod df;
pub mod frame;
pub mod handlers;
pub mod mc;
pub mod mutant;
pub mod nmi;
mod phases;
pub mod strategy;
pub mod trace;
pub mod traps;

use core::sync::atomic::Ordering;

use crate::arch::idt;
use crate::arch::percpu::{self, IST_DB, IST_NMI};
use crate::arch::vectors::{self, TrapFrame};
pub use strategy::Strategy;

/// The NMI stub `strategy` installs.
pub fn nmi_stub(strategy: Strategy) -> Stub {
    if strategy::flags(strategy) & strategy::NMI_NESTING != 0 {
        Stub::NmiLinux
    } else {
        Stub::NmiPlain
    }
}

/// Installs `strategy`'s #DB and NMI stubs in the shared IDT, then builds the
/// debug IDT from it. BSP, before APs.
pub fn install(strategy: Strategy) {
    strategy::set(strategy);
    // Mutant db-gate-without-ist: the #DB gate has no IST (CVE-2018-8897's shape).
    let db_ist = if mutant::is(mutant::catalog::DB_GATE_WITHOUT_IST) {
        0
    } else {
        IST_DB
    };
    idt::set_gate(1, db::range().0, db_ist);
    idt::set_gate(2, nmi_stub(strategy).range().0, IST_NMI);
    mc::install();
    idt::build_debug();
}

pub use frame::window;

/// An entry stub NMI sweeps can aim at, by its symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stub {
    Db,
    /// The plain NMI stub (`naive`, `shift-only`, `dr7-guard`).
    NmiPlain,
    /// The nested-NMI stub (`linux`, `linux-4.19`).
    NmiLinux,
}

impl Stub {
    /// The symbol, as reports and the host's disassembly name it.
    pub const fn symbol(self) -> &'static str {
        match self {
            Stub::Db => "db_stub",
            Stub::NmiPlain => "nmi_stub",
            Stub::NmiLinux => "nmi_stub_linux",
        }
    }

    /// The stub's code, as [start, end).
    pub fn range(self) -> (u64, u64) {
        match self {
            Stub::Db => db::range(),
            Stub::NmiPlain => nmi::plain_range(),
            Stub::NmiLinux => nmi::linux_range(),
        }
    }
}

/// What the local APIC timer interrupt runs: the watchdog's tick, set by the
/// watchdog before it starts the timer (it sits above this layer).
static TIMER_HOOK: spin::Once<fn()> = spin::Once::new();

/// Sets what the timer interrupt runs; the first caller wins.
pub fn set_timer_hook(hook: fn()) {
    TIMER_HOOK.call_once(|| hook);
}

/// Called by `trap_common` (the plain stubs) with the saved registers.
///
/// Reentrancy: an NMI can arrive while any other vector runs here (own IST).
/// #DF runs on its own IST and either lands in a `df::catch` or ends the run.
pub extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    if frame.vector == u64::from(vectors::NMI) {
        // Only before `install`: count it like the real NMI body does.
        percpu::this().nmi_count.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if frame.vector == u64::from(vectors::DOUBLE_FAULT) && df::land(frame) {
        return;
    }
    if frame.vector == u64::from(vectors::WAKEUP_VECTOR) {
        crate::arch::lapic::end_of_interrupt();
        return;
    }
    if frame.vector == u64::from(vectors::TIMER_VECTOR) {
        crate::arch::lapic::end_of_interrupt();
        if let Some(tick) = TIMER_HOOK.get() {
            tick();
        }
        return;
    }
    if frame.vector == u64::from(crate::arch::user::RETURN_VECTOR) && crate::arch::user::land(frame)
    {
        return;
    }
    if frame.vector == u64::from(crate::arch::user::SYSCALL_LANDING_VECTOR)
        && crate::arch::user::land_syscall(frame)
    {
        return;
    }
    if frame.vector == u64::from(vectors::BREAKPOINT) && handlers::breakpoint() {
        return;
    }
    // Ring 3 runs only test programs: any other exception there ends the
    // program and is handed to the test that ran it.
    if frame.cs & 3 == 3 && crate::arch::user::land(frame) {
        return;
    }
    crate::report::exception(frame)
}
