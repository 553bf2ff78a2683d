//! Interrupt vectors the kernel uses, and the frame the plain entry stubs
//! (`entry/traps.rs`) build: the shapes shared by the stubs, the dispatcher, and
//! the code that lands or redirects a trap (`park`, `user`).

use super::percpu::{IST_DB, IST_DF, IST_MC, IST_NMI};

pub const EXCEPTION_VECTORS: usize = 32;
pub const DEBUG: u8 = 1;
pub const NMI: u8 = 2;
pub const BREAKPOINT: u8 = 3;
pub const DOUBLE_FAULT: u8 = 8;
pub const PAGE_FAULT: u8 = 14;
pub const MACHINE_CHECK: u8 = 18;

const NAMES: [&str; EXCEPTION_VECTORS] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
    "#GP", "#PF", "RSVD15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "RSVD22", "RSVD23", "RSVD24",
    "RSVD25", "RSVD26", "RSVD27", "#HV", "#VC", "#SX", "RSVD31",
];

/// The SDM's short name of an exception vector (`#DB`, `NMI`...), `?` above 31.
pub fn name(vector: u64) -> &'static str {
    usize::try_from(vector)
        .ok()
        .and_then(|v| NAMES.get(v))
        .copied()
        .unwrap_or("?")
}
/// The LAPIC's spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// The registers as `trap_common` leaves them, lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);
const _: () = assert!(core::mem::size_of::<TrapFrame>().is_multiple_of(16));

/// The wake-up IPI an idle AP sleeps for (`smp::start_on` sends it).
pub const WAKEUP_VECTOR: u8 = 0xf0;
/// The local APIC timer, which drives the watchdog.
pub const TIMER_VECTOR: u8 = 0xfd;

/// The IST slot an exception vector's gate uses: #DB, NMI, #DF and #MC each
/// get their own stack; everything else runs on the stack it interrupted.
pub fn ist_for(vector: usize) -> u8 {
    match u8::try_from(vector) {
        Ok(DEBUG) => IST_DB,
        Ok(NMI) => IST_NMI,
        Ok(DOUBLE_FAULT) => IST_DF,
        Ok(MACHINE_CHECK) => IST_MC,
        _ => 0,
    }
}
