//! The bodies the IST stubs call between `ist_enter` and `ist_exit`, and the
//! hooks through which a scenario sees each #DB and NMI on its CPU.
//!
//! Hooks are plain function pointers in atomics: an NMI or #DB handler may read
//! them at any instant, so they are set before the hazard is armed and cleared
//! after it is disarmed, never swapped while one could run.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use super::checker;
use super::counters::Counter;
use super::frame::IstFrame;
use super::mutant::{self, catalog};
use super::strategy::{DEBUG_IDT, DR7_GUARD, NMI_LATCH};
use crate::arch::MAX_CPUS;
use crate::arch::debugreg::{self, RFLAGS_RF};
use crate::arch::percpu::{self, IstSlot};

/// What a #DB hook learns: DR6 as read (then cleared), the frame's RIP.
#[derive(Clone, Copy, Debug)]
pub struct DbEvent {
    pub dr6: u64,
    pub rip: u64,
    /// The #DB interrupted ring 3.
    pub from_user: bool,
}

pub type DbHook = fn(&DbEvent);
pub type NmiHook = fn(&mut IstFrame);

static DB_HOOK: AtomicUsize = AtomicUsize::new(0);
static NMI_HOOK: AtomicUsize = AtomicUsize::new(0);

/// #DB deliveries per CPU, counted by the body (nested ones included).
static DB_COUNT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

static BP_COUNT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static BP_EXPECTED: AtomicBool = AtomicBool::new(false);

/// Whether an INT3 is part of the test (else #BP is an unexpected exception).
pub fn expect_breakpoints(expected: bool) {
    BP_EXPECTED.store(expected, Ordering::SeqCst);
}

pub fn bp_count(cpu: usize) -> u64 {
    BP_COUNT[cpu].load(Ordering::Relaxed)
}

/// #BP from the plain stubs: counted when expected; true if handled.
pub fn breakpoint() -> bool {
    if !BP_EXPECTED.load(Ordering::SeqCst) {
        return false;
    }
    BP_COUNT[percpu::this().index()].fetch_add(1, Ordering::Relaxed);
    true
}

/// The watchdog asks a CPU where it is: the next NMI there records its RIP.
static PROBE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static PROBED_RIP: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

pub fn request_probe(cpu: usize) {
    PROBED_RIP[cpu].store(0, Ordering::SeqCst);
    PROBE[cpu].store(true, Ordering::SeqCst);
}

pub fn probed_rip(cpu: usize) -> u64 {
    PROBED_RIP[cpu].load(Ordering::SeqCst)
}

pub fn set_db_hook(hook: Option<DbHook>) {
    DB_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::SeqCst);
}

pub fn set_nmi_hook(hook: Option<NmiHook>) {
    NMI_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::SeqCst);
}

pub fn db_count(cpu: usize) -> u64 {
    DB_COUNT[cpu].load(Ordering::Relaxed)
}

/// Slots whose breakpoint is an execute breakpoint in `dr7`.
fn execute_slots(dr7: u64) -> u64 {
    (0..debugreg::SLOTS)
        .filter(|&s| dr7 & (0b11 << (2 * s)) != 0 && (dr7 >> (16 + 4 * s)) & 0b11 == 0)
        .fold(0, |mask, s| mask | (1 << s))
}

pub extern "C" fn db_body(frame: &mut IstFrame) {
    let dr6 = debugreg::read_dr6();
    debugreg::clear_dr6(); // the CPU never clears DR6; stale bits would mislead the next #DB
    let cpu = percpu::this().index();
    DB_COUNT[cpu].fetch_add(1, Ordering::Relaxed);
    // Under DR7_GUARD the live DR7 is 0 here; the armed value is the saved one.
    let dr7 = if frame.applied & u64::from(DR7_GUARD) != 0 {
        frame.dr7
    } else {
        debugreg::read_dr7()
    };
    if dr6 & execute_slots(dr7) != 0 {
        // An execute breakpoint is a fault: resume with RF so it runs once.
        checker::amend_rflags(frame, RFLAGS_RF);
    }
    let hook = DB_HOOK.load(Ordering::SeqCst);
    if hook != 0 {
        // SAFETY: DB_HOOK only ever holds 0 or a `DbHook` stored by set_db_hook.
        let hook: DbHook = unsafe { core::mem::transmute::<usize, DbHook>(hook) };
        hook(&DbEvent {
            dr6,
            rip: frame.regs.rip,
            from_user: frame.regs.cs & 3 == 3,
        });
    }
}

/// `exc_nmi`'s nmi_state, per CPU (Linux `arch/x86/kernel/nmi.c`).
const NOT_RUNNING: u8 = 0;
const EXECUTING: u8 = 1;
const LATCHED: u8 = 2;
static NMI_STATE: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(NOT_RUNNING) }; MAX_CPUS];

/// The NMI body (`exc_nmi`). Under NMI_LATCH an NMI that finds another body
/// running on this CPU (one that nested inside a ring-3 NMI, which the asm does
/// not look at) only latches, and the running body goes round once more.
pub extern "C" fn nmi_body(frame: &mut IstFrame) {
    let cpu = percpu::this();
    if frame.applied & u64::from(NMI_LATCH | DEBUG_IDT) == 0 {
        // The plain path ends in the hook (a tail call): a strategy that nests
        // NMIs on one stack overwrites this function's frame while the hook
        // runs, and nothing of it may be needed after the hook returns.
        return handle_nmi(cpu, frame);
    }
    // Mutant linux-nmi-no-latch: the body never latches.
    let latch =
        frame.applied & u64::from(NMI_LATCH) != 0 && !const { mutant::is(catalog::NMI_NO_LATCH) };
    let state = &NMI_STATE[cpu.index()];
    if latch {
        if state.load(Ordering::Relaxed) != NOT_RUNNING {
            state.store(LATCHED, Ordering::Relaxed);
            count(Counter::NmiLatched);
            return;
        }
        state.store(EXECUTING, Ordering::Relaxed);
    }
    loop {
        // Linux 4.19: an NMI on top of the #DB stack keeps any #DB it raises
        // off that stack by loading the debug IDT (`debug_stack_set_zero`).
        // Mutant linux419-nmi-no-debug-idt: never loads the debug IDT.
        let debug_idt = frame.applied & u64::from(DEBUG_IDT) != 0
            && !const { mutant::is(catalog::NMI_NO_DEBUG_IDT) }
            && on_stack(cpu.ist_stacks()[IstSlot::Db as usize], frame.regs.rsp);
        if debug_idt {
            count(Counter::NmiDebugIdt);
            crate::arch::idt::load_debug();
        }
        handle_nmi(cpu, frame);
        if debug_idt {
            crate::arch::idt::load();
        }
        // this_cpu_dec_return(nmi_state): LATCHED -> EXECUTING goes round again.
        if !latch || state.fetch_sub(1, Ordering::Relaxed) == EXECUTING {
            break;
        }
    }
}

#[inline(always)]
fn handle_nmi(cpu: &percpu::PerCpu, frame: &mut IstFrame) {
    count(Counter::NmiHandled);
    cpu.nmi_count.fetch_add(1, Ordering::Relaxed);
    if PROBE[cpu.index()].swap(false, Ordering::SeqCst) {
        PROBED_RIP[cpu.index()].store(frame.regs.rip, Ordering::SeqCst);
    }
    let hook = NMI_HOOK.load(Ordering::SeqCst);
    if hook != 0 {
        // SAFETY: NMI_HOOK only ever holds 0 or an `NmiHook` stored by set_nmi_hook.
        let hook: NmiHook = unsafe { core::mem::transmute::<usize, NmiHook>(hook) };
        hook(frame);
    }
}

fn on_stack(stack: percpu::StackBounds, addr: u64) -> bool {
    addr >= stack.bottom && addr < stack.top
}

/// Counts one event in the per-CPU entry words, from Rust.
fn count(counter: Counter) {
    percpu::this().entry_words[counter as usize].fetch_add(1, Ordering::Relaxed);
}

/// The tracing hook phase (Linux's TRACE_IRQS_OFF).
pub extern "C" fn trace_hook(frame: &mut IstFrame) {
    super::trace::trace_irqs_off(frame);
}

/// `linux-4.19`'s TRACE_IRQS_OFF_DEBUG: the hook runs under the debug IDT, so
/// a breakpoint in it raises a #DB on the current stack, not at the IST top.
pub extern "C" fn trace_hook_debug_idt(frame: &mut IstFrame) {
    count(Counter::DbTraceDebugIdt);
    // Mutant linux419-hook-no-debug-idt: the hook runs under the shared IDT.
    let debug_idt = !const { mutant::is(catalog::HOOK_NO_DEBUG_IDT) };
    if debug_idt {
        crate::arch::idt::load_debug();
    }
    super::trace::trace_irqs_off(frame);
    if debug_idt {
        crate::arch::idt::load();
    }
}

/// `linux-4.19`: lower IST1 around `do_debug`.
pub extern "C" fn shift_down(_: &mut IstFrame) {
    if const { mutant::is(catalog::DB_4_19_NO_SHIFT) } {
        return;
    }
    percpu::this().shift_ist(IstSlot::Db, -(super::strategy::IST_SHIFT as i64));
}

pub extern "C" fn shift_up(_: &mut IstFrame) {
    if const { mutant::is(catalog::DB_4_19_NO_SHIFT) } {
        return;
    }
    percpu::this().shift_ist(IstSlot::Db, super::strategy::IST_SHIFT as i64);
}
