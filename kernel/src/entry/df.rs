//! Catching a double fault on purpose. `catch(f)` runs `f`; if a #DF arrives on
//! this CPU meanwhile, the #DF handler (on its own IST stack) records it and
//! IRETs to a landing point that returns from `catch` as if `f` had returned.
//! This is how `ist_overflow_df` proves an IST overflow ends in a clean #DF
//! report, not a triple fault, and still lets the run go on.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::percpu;
use crate::arch::traps::TrapFrame;
use crate::boot::MAX_CPUS;

/// Where `catch` parked its stack, per CPU; 0 when no catch is armed.
static PARKED_RSP: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static LANDING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// What the #DF handler saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct DoubleFault {
    pub rip: u64,
    pub rsp: u64,
    pub error_code: u64,
}

static SEEN: [[AtomicU64; 3]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; 3] }; MAX_CPUS];

global_asm!(
    r#"
    .pushsection .text.entry, "ax"
    /* u64 df_catch_call(void (*f)(void), u64 *parked_rsp, u64 *landing) */
    .balign 16
    .global df_catch_call
df_catch_call:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8                          /* 16-byte alignment for the call */
    mov qword ptr [rsi], rsp            /* the #DF handler resumes here ... */
    lea rax, [rip + df_landing]
    mov qword ptr [rdx], rax            /* ... at this address */
    call rdi
    xor eax, eax                        /* f returned normally */
    jmp 1f
df_landing:
    mov eax, 1                          /* arrived from the #DF handler's IRETQ */
1:
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
    .popsection
"#
);

unsafe extern "C" {
    fn df_catch_call(f: extern "C" fn(), parked_rsp: *mut u64, landing: *mut u64) -> u64;
}

/// Runs `f`; returns the #DF it caused, if any.
pub fn catch(f: extern "C" fn()) -> Option<DoubleFault> {
    let cpu = percpu::this().index();
    // SAFETY: the two atomics are plain u64 cells owned by this CPU; the asm
    // saves the callee-saved registers, so a landing from the #DF handler
    // returns through a normal epilogue with the caller's registers intact.
    let landed = unsafe { df_catch_call(f, PARKED_RSP[cpu].as_ptr(), LANDING[cpu].as_ptr()) };
    PARKED_RSP[cpu].store(0, Ordering::SeqCst);
    (landed != 0).then(|| DoubleFault {
        rip: SEEN[cpu][0].load(Ordering::Relaxed),
        rsp: SEEN[cpu][1].load(Ordering::Relaxed),
        error_code: SEEN[cpu][2].load(Ordering::Relaxed),
    })
}

/// Called by the dispatcher on #DF: redirects the IRET to the landing point if
/// a `catch` is armed on this CPU. The abandoned context is never resumed.
pub(super) fn land(frame: &mut TrapFrame) -> bool {
    let Some(cpu) = percpu::try_index() else {
        return false;
    };
    let parked = PARKED_RSP[cpu].swap(0, Ordering::SeqCst);
    if parked == 0 {
        return false;
    }
    SEEN[cpu][0].store(frame.rip, Ordering::Relaxed);
    SEEN[cpu][1].store(frame.rsp, Ordering::Relaxed);
    SEEN[cpu][2].store(frame.error_code, Ordering::Relaxed);
    frame.rip = LANDING[cpu].load(Ordering::SeqCst);
    frame.rsp = parked;
    frame.cs = 0x08;
    frame.ss = 0x10;
    frame.rflags = 0x2; // interrupts stay off, as everywhere in the kernel
    super::checker::reset_after_abandon(cpu);
    true
}
