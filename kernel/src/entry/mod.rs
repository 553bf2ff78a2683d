//! The entry layer: strategies, the IST stubs, the integrity checker, and the
//! dispatcher for the vectors that use the plain stubs in `traps`.

pub mod breakpoint;
pub mod checker;
pub mod df;
pub mod handlers;
pub mod strategy;
mod stubs;
pub mod trace;
pub mod traps;

use core::sync::atomic::Ordering;

use crate::arch::exit::{ExitCode, exit};
use crate::arch::idt;
use crate::arch::percpu::{self, IST_DB, IST_NMI};
use crate::arch::vectors::{self, TrapFrame};
use crate::console;
pub use strategy::Strategy;

const NMI: u64 = 2;
const DOUBLE_FAULT: u64 = 8;
const BREAKPOINT: u64 = 3;

const NAMES: [&str; 32] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
    "#GP", "#PF", "RSVD15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "RSVD22", "RSVD23", "RSVD24",
    "RSVD25", "RSVD26", "RSVD27", "#HV", "#VC", "#SX", "RSVD31",
];

/// Installs `strategy`'s #DB and NMI stubs in the shared IDT. BSP, before APs.
pub fn install(strategy: Strategy) {
    strategy::set(strategy);
    idt::set_gate(1, stubs::db_entry(), IST_DB);
    idt::set_gate(
        2,
        stubs::nmi_entry(strategy::flags(strategy) & strategy::NMI_NESTING != 0),
        IST_NMI,
    );
}

pub use stubs::{WindowEntry, db_window};

/// Called by `trap_common` (the plain stubs) with the saved registers.
///
/// Reentrancy: an NMI can arrive while any other vector runs here (own IST).
/// #DF runs on its own IST and either lands in a `df::catch` or ends the run.
pub extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    if frame.vector == NMI {
        // Only before `install`: count it like the real NMI body does.
        percpu::this().nmi_count.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if frame.vector == DOUBLE_FAULT && df::land(frame) {
        return;
    }
    if frame.vector == u64::from(vectors::WAKEUP_VECTOR) {
        crate::arch::lapic::end_of_interrupt();
        return;
    }
    if frame.vector == u64::from(vectors::TIMER_VECTOR) {
        crate::arch::lapic::end_of_interrupt();
        crate::watchdog::tick();
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
    if frame.vector == BREAKPOINT && handlers::breakpoint() {
        return;
    }
    // Ring 3 runs only test programs: any other exception there ends the
    // program and is handed to the test that ran it.
    if frame.cs & 3 == 3 && crate::arch::user::land(frame) {
        return;
    }
    fatal_exception(frame)
}

fn fatal_exception(frame: &TrapFrame) -> ! {
    let name = NAMES.get(frame.vector as usize).copied().unwrap_or("?");
    let cpu = percpu::try_index().map_or(-1, |i| i as i64);
    let cr2 = if frame.vector == 14 {
        crate::arch::cpu::read_cr2()
    } else {
        0
    };
    console::print_fatal(format_args!(
        "exception: vector={} ({}) error={:#x} rip={:#x} cs={:#x} rflags={:#x} rsp={:#x} cr2={:#x} cpu={}\n",
        frame.vector,
        name,
        frame.error_code,
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        cr2,
        cpu
    ));
    let mut text: heapless::String<64> = heapless::String::new();
    let _ = core::fmt::Write::write_fmt(&mut text, format_args!("unexpected exception {name}"));
    crate::harness::report_fatal(&text, Some(frame.rip), Some(frame.vector as u8));
    exit(ExitCode::Failure)
}
