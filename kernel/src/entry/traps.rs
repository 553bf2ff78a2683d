//! The exception entry stubs: one tiny stub per vector that makes every frame
//! look the same, then one common path that saves the registers and calls
//! `super::trap_dispatch`.
//!
//! Stack on entry to `trap_common` (the CPU aligned RSP to 16 before pushing):
//!
//!   +--------------------+  <- IST top or interrupted stack (16-aligned)
//!   | SS, RSP, RFLAGS,   |  5 words, written by the CPU
//!   | CS, RIP            |
//!   +--------------------+
//!   | error code         |  by the CPU, or 0 pushed by the stub
//!   | vector             |  pushed by the stub
//!   +--------------------+
//!   | rax ... r15        |  15 words pushed by trap_common = `TrapFrame`
//!   +--------------------+  <- RSP, 16-aligned again (22 words in all)
//!
//! The stubs live in `.text.entry` so that the deny-list can refuse breakpoints
//! on them (the analogue of Linux's NOKPROBE).

use core::arch::global_asm;

use super::frame::{asm_epilogue, asm_prelude};
use crate::arch::idt;
use crate::arch::user::{RETURN_VECTOR, SYSCALL_LANDING_VECTOR};
use crate::arch::vectors::{
    EXCEPTION_VECTORS, SPURIOUS_VECTOR, TIMER_VECTOR, WAKEUP_VECTOR, ist_for,
};

global_asm!(
    asm_prelude!(),
    r#"
    .pushsection .text.entry, "ax"

    /* Vectors whose exceptions push an error code: #DF #TS #NP #SS #GP #PF #AC #CP #VC #SX */
    .irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 16
trap_stub_\vec:
    .if (\vec == 8) || (\vec == 10) || (\vec == 11) || (\vec == 12) || (\vec == 13) || (\vec == 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
    .else
    push 0                      /* no error code: keep the frame shape */
    .endif
    push \vec
    jmp trap_common
    .endr

    .balign 16
trap_common:
    PUSH_GPRS PLAIN             /* = TrapFrame; no window-table entries */
    mov rdi, rsp                /* trap_dispatch(&mut TrapFrame) */
    cld                         /* the ABI wants DF clear; the interrupted code may not */
    call {dispatch}
    POP_GPRS 0, PLAIN
    add rsp, 16                 /* vector and error code */
    iretq

    /* Interrupts from the local APIC: wake-up IPI and the watchdog's timer. */
    .irp vec, 128, 129, 240, 253
    .balign 16
trap_stub_\vec:
    push 0
    push \vec
    jmp trap_common
    .endr

    /* A spurious LAPIC interrupt needs no EOI and no work. */
    .balign 16
trap_spurious:
    iretq

    .popsection

    .pushsection .rodata.trap_stubs, "a"
    .balign 8
    .global trap_stub_table
    .global trap_spurious_ptr
trap_stub_table:
    .irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad trap_stub_\vec
    .endr
trap_spurious_ptr:
    .quad trap_spurious
    .global trap_irq_table
trap_irq_table:
    .quad trap_stub_128, trap_stub_129, trap_stub_240, trap_stub_253
    .popsection
"#,
    asm_epilogue!(),
    dispatch = sym super::trap_dispatch,
);

unsafe extern "C" {
    static trap_stub_table: [u64; EXCEPTION_VECTORS];
    static trap_spurious_ptr: u64;
    static trap_irq_table: [u64; 4];
}

/// The stub of the user-return gate (0x80), the SYSCALL landing (0x81), the
/// wake-up IPI or the timer.
pub fn irq_stub_address(vector: u8) -> u64 {
    let slot = match vector {
        0x80 => 0,
        0x81 => 1,
        WAKEUP_VECTOR => 2,
        _ => 3,
    };
    // SAFETY: immutable data emitted by the asm above.
    unsafe { trap_irq_table[slot] }
}

pub fn stub_address(vector: usize) -> u64 {
    // SAFETY: the table is immutable data emitted by the asm above.
    unsafe { trap_stub_table[vector] }
}

pub fn spurious_stub_address() -> u64 {
    // SAFETY: as above.
    unsafe { trap_spurious_ptr }
}

/// Points the 32 exception vectors, the spurious vector and the kernel's own
/// interrupt vectors at these stubs. BSP only, before any CPU loads the IDT;
/// `entry::install` then puts the strategy's #DB and NMI stubs over 1 and 2.
pub fn install() {
    for vector in 0..EXCEPTION_VECTORS {
        idt::set_gate(vector as u8, stub_address(vector), ist_for(vector));
    }
    idt::set_gate(SPURIOUS_VECTOR, spurious_stub_address(), 0);
    for vector in [WAKEUP_VECTOR, TIMER_VECTOR] {
        idt::set_gate(vector, irq_stub_address(vector), 0);
    }
    // Ring 3 may come back through `int 0x80`, and may execute INT3.
    idt::set_user_gate(RETURN_VECTOR, irq_stub_address(RETURN_VECTOR));
    idt::set_user_gate(3, stub_address(3));
    // The SYSCALL entry's way back to the parked kernel context (ring 0 only).
    idt::set_gate(
        SYSCALL_LANDING_VECTOR,
        irq_stub_address(SYSCALL_LANDING_VECTOR),
        0,
    );
}
