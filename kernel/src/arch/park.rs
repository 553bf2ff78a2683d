//! Parking a kernel context so that an exception handler can come back to it.
//!
//! `call_parked(go, [a0, a1, a2, a3])` saves the callee-saved registers, records
//! the stack pointer and a landing address for this CPU, and calls
//! `go(a0, a1, a2, a3)`.
//! Either `go` returns (the result is `Returned(rax)`), or a handler on this CPU
//! calls `land(frame, value)`, which rewrites its IRET frame so the IRET lands
//! back here in ring 0 on the parked stack, as if `go` had returned `value`
//! (`Landed(value)`). Whatever `go` was doing is abandoned, never resumed.
//! Used to catch a deliberate #DF, and to come back from ring 3.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use super::MAX_CPUS;
use super::percpu;
use super::vectors::TrapFrame;

/// Where a CPU's parked context is (`parked_rsp` 0: none); layout used by asm.
#[repr(C)]
struct Slot {
    parked_rsp: AtomicU64,
    landing: AtomicU64,
}

static SLOTS: [Slot; MAX_CPUS] = [const {
    Slot {
        parked_rsp: AtomicU64::new(0),
        landing: AtomicU64::new(0),
    }
}; MAX_CPUS];

global_asm!(
    r#"
    .pushsection .text.entry, "ax"
    /* (u64 rax, u64 landed) park_call(go, a0, a1, a2, a3, *slot) */
    .balign 16
park_call:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8                          /* 16-byte alignment for the call */
    mov qword ptr [r9], rsp             /* a landing resumes on this stack ... */
    lea rax, [rip + park_landing]
    mov qword ptr [r9 + 8], rax         /* ... at this address */
    mov rax, rdi
    mov rdi, rsi                        /* go(a0, a1, a2, a3) */
    mov rsi, rdx
    mov rdx, rcx
    mov rcx, r8
    call rax
    xor edx, edx                        /* go returned: rdx = 0 */
    jmp 1f
park_landing:
    mov edx, 1                          /* arrived through `land`: rdx = 1 */
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

#[repr(C)]
struct Pair(u64, u64);

unsafe extern "C" {
    fn park_call(go: u64, a0: u64, a1: u64, a2: u64, a3: u64, slot: *const Slot) -> Pair;
}

/// How a parked call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    Returned(u64),
    Landed(u64),
}

/// Calls `go(a0, a1, a2, a3)` with this context parked (see the module docs).
///
/// # Safety
/// `go` must be the address of an `extern "C"` function taking up to four u64
/// arguments; if it does not return, something on this CPU must `land`.
pub unsafe fn call_parked(go: u64, args: [u64; 4]) -> Parked {
    let slot = &SLOTS[percpu::this().index()];
    // SAFETY: the asm saves the callee-saved registers and restores them on
    // both paths; the slot is this CPU's; `go` is the caller's contract.
    let Pair(rax, landed) = unsafe { park_call(go, args[0], args[1], args[2], args[3], slot) };
    slot.parked_rsp.store(0, Ordering::SeqCst);
    if landed != 0 {
        Parked::Landed(rax)
    } else {
        Parked::Returned(rax)
    }
}

/// From a handler on this CPU: make its IRET land in the parked context with
/// `value`. False (and nothing changed) when no context is parked.
pub fn land(frame: &mut TrapFrame, value: u64) -> bool {
    let Some(cpu) = percpu::try_index() else {
        return false;
    };
    let slot = &SLOTS[cpu];
    let parked = slot.parked_rsp.swap(0, Ordering::SeqCst);
    if parked == 0 {
        return false;
    }
    frame.rip = slot.landing.load(Ordering::SeqCst);
    frame.rsp = parked;
    frame.cs = 0x08;
    frame.ss = 0x10;
    frame.rflags = 0x2; // interrupts stay off, as everywhere in the kernel
    frame.rax = value;
    true
}

const _: () = assert!(core::mem::offset_of!(Slot, landing) == 8);
