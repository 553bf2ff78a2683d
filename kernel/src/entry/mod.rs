//! What runs after the entry stubs: the dispatcher for every exception vector.
//! (The entry strategies and the IST integrity checker grow here.)

use core::sync::atomic::Ordering;

use crate::arch::exit::{ExitCode, exit};
use crate::arch::percpu;
use crate::arch::traps::TrapFrame;
use crate::console;

const NMI: u64 = 2;

const NAMES: [&str; 32] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP",
    "#PF", "RSVD15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "RSVD22", "RSVD23", "RSVD24", "RSVD25",
    "RSVD26", "RSVD27", "#HV", "#VC", "#SX", "RSVD31",
];

/// Called by `trap_common` with the saved registers.
///
/// Reentrancy: an NMI can arrive while any other vector runs here (it has its own
/// IST stack); the NMI path only bumps an atomic counter. Everything else is
/// unexpected for now and ends the run.
pub extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    if frame.vector == NMI {
        percpu::this().nmi_count.fetch_add(1, Ordering::Relaxed);
        return;
    }
    fatal_exception(frame)
}

fn fatal_exception(frame: &TrapFrame) -> ! {
    let name = NAMES.get(frame.vector as usize).copied().unwrap_or("?");
    let cpu = percpu::try_index().map_or(-1, |i| i as i64);
    let cr2 = if frame.vector == 14 { crate::arch::cpu::read_cr2() } else { 0 };
    console::print_fatal(format_args!(
        "exception: vector={} ({}) error={:#x} rip={:#x} cs={:#x} rflags={:#x} rsp={:#x} cr2={:#x} cpu={}\n",
        frame.vector, name, frame.error_code, frame.rip, frame.cs, frame.rflags, frame.rsp, cr2, cpu
    ));
    exit(ExitCode::Failure)
}
