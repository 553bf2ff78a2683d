//! The IST entry stubs for #DB and NMI, shared by all strategies.
//!
//! Reentrancy, in words:
//! - #DB runs on IST_DB. Another #DB can arrive inside it (a breakpoint in the
//!   tracing hook, a watchpoint touched by an NMI handler); on the same IST it
//!   starts at the same top address and overwrites this frame. `shift-ist`
//!   lowers the TSS pointer while a #DB runs; `dr7-guard`/`linux` clear DR7 so
//!   that no breakpoint fires inside the handler at all.
//! - NMI runs on IST_NMI and can interrupt a #DB anywhere. NMIs stay blocked
//!   until the next IRET, but an IRET from a #DB/#BP inside the NMI handler
//!   unblocks them early; `linux` then repeats instead of nesting.
//! - Nothing here takes a lock or prints: the Rust parts record into per-CPU
//!   slots (see `checker`).
//!
//! Frame both stubs build on their stack (lowest address first) = `IstFrame`:
//!
//!   rsp ->  saved DR7          (0 unless DR7_GUARD was applied)
//!           applied flags      (the strategy bits this entry applied)
//!           r15 ... rax        15 words
//!           vector, error code
//!           RIP CS RFLAGS RSP SS   hardware frame (or, for `linux` NMIs, the
//!                                  "iret" copy the final IRETQ uses)
//!
//! Every instruction of the #DB stub is wrapped in `W`, which records its address
//! in `.rodata.db_window`: the timing sweep reports which of them NMIs hit.

use core::arch::global_asm;

use super::strategy::{DR7_GUARD, ENTRY_FLAGS, SHIFT_IST};
use crate::arch::percpu::{IST_STACK_SIZE, TSS_IST1_OFFSET};

/// How far `shift-ist` lowers the #DB IST pointer while a #DB runs.
pub const IST_SHIFT: u64 = 4096;

global_asm!(
    r#"
    /* W: an instruction on every strategy's path; WF: only when `flag` applies */
    .macro WF flag, insn:vararg
    .pushsection .rodata.db_window, "a"
    .quad 9999f, \flag
    .popsection
9999:
    \insn
    .endm
    .macro W insn:vararg
    WF 0, \insn
    .endm

    .pushsection .rodata.db_window, "a"
    .balign 8
    .global db_window_table
db_window_table:
    .popsection

    .pushsection .text.entry, "ax"
    .balign 16
    .global db_stub
db_stub:
    W push 0                             /* no error code: keep the frame shape */
    W push 1                             /* vector */
    W push rax
    W push rbx
    W push rcx
    W push rdx
    W push rsi
    W push rdi
    W push rbp
    W push r8
    W push r9
    W push r10
    W push r11
    W push r12
    W push r13
    W push r14
    W push r15
    W mov rbx, gs:[0]                    /* this CPU's PerCpu, kept across calls */
    W movzx r12d, byte ptr [rip + {flags}] /* the strategy bits this entry applies */
    W xor r13d, r13d                     /* saved DR7: none yet */
    W test r12d, {shift_ist}
    W jz 1f
    WF {shift_ist}, sub qword ptr [rbx + {tss_ist1}], {shift} /* a nested #DB now lands lower */
1:
    W test r12d, {dr7_guard}
    W jz 2f
    WF {dr7_guard}, mov r13, dr7         /* save DR7 ... */
    WF {dr7_guard}, xor eax, eax
    WF {dr7_guard}, mov dr7, rax         /* ... and disarm every breakpoint */
2:
    W push r12
    W push r13
    W cld                                /* the ABI wants DF clear */
    W lea r15, [rip + db_phases]
    W xor r14d, r14d
    /*
     * One call site for every phase (checker entry, trace hook, body, checker
     * exit): a nested #DB on this same stack overwrites the return address of
     * whatever call was in progress with the return address of its own calls,
     * and with one call site that value is the same, so a clobbered handler
     * still finds its way back here, where the checker can see the damage.
     * The phase counter lives in r14, which the nested entry saves and restores.
     */
8:
    W mov rdi, rsp
    W call qword ptr [r15 + r14 * 8]
    W inc r14d
    W cmp r14d, 4
    W jb 8b
    W pop r13
    W pop r12
    W test r12d, {dr7_guard}
    W jz 3f
    WF {dr7_guard}, mov dr7, r13         /* re-arm what was armed */
3:
    W test r12d, {shift_ist}
    W jz 4f
    WF {shift_ist}, mov rbx, gs:[0]
    WF {shift_ist}, add qword ptr [rbx + {tss_ist1}], {shift}
4:
    W pop r15
    W pop r14
    W pop r13
    W pop r12
    W pop r11
    W pop r10
    W pop r9
    W pop r8
    W pop rbp
    W pop rdi
    W pop rsi
    W pop rdx
    W pop rcx
    W pop rbx
    W pop rax
    W add rsp, 16
    W iretq
    .popsection

    .pushsection .rodata.entry_phases, "a"
    .balign 8
db_phases:
    .quad {ist_enter}, {trace_hook}, {db_body}, {ist_exit}
nmi_phases:
    .quad {ist_enter}, {trace_hook}, {nmi_body}, {ist_exit}
    .popsection

    .pushsection .rodata.db_window_end, "a"
    .global db_window_table_end
db_window_table_end:
    .popsection

    /* The NMI body shared by the plain stub and the `linux` one, as a macro. */
    .macro NMI_BODY
    push 0
    push 2
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    movzx r12d, byte ptr [rip + {flags}]
    xor r13d, r13d
    test r12d, {dr7_guard}
    jz 5f
    mov r13, dr7
    xor eax, eax
    mov dr7, rax
5:
    push r12
    push r13
    cld
    lea r15, [rip + nmi_phases]
    xor r14d, r14d
8:
    mov rdi, rsp
    call qword ptr [r15 + r14 * 8]       /* one call site, as in db_stub */
    inc r14d
    cmp r14d, 4
    jb 8b
    pop r13
    pop r12
    test r12d, {dr7_guard}
    jz 6f
    mov dr7, r13
6:
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    .endm

    .pushsection .text.entry, "ax"
    .balign 16
    .global nmi_stub
nmi_stub:
    NMI_BODY
    iretq

    /*
     * The `linux` NMI: repeat instead of nest. IST_NMI, top down:
     *
     *   top-8  .. top-40   hardware frame (a nested NMI overwrites it)
     *   top-48             scratch for rdx
     *   top-56             "NMI executing"
     *   top-64 .. top-96   "iret" frame: what the final IRETQ uses; a nested
     *                      NMI points its RIP at repeat_nmi to ask for a repeat
     *   top-104.. top-136  "outermost" frame: the original, copied once; the
     *                      hardware-frame part of NMI_BODY's IstFrame, so the
     *                      checker and the body see the interrupted context
     *   below              the rest of NMI_BODY's IstFrame
     *
     * The copies are made while NMIs are still blocked (nothing inside the
     * handler has executed an IRET yet), so no nested NMI can tear them.
     */
    .balign 16
    .global nmi_stub_linux
nmi_stub_linux:
    push rdx                             /* top-48 */
    mov rdx, qword ptr [rsp + 8]         /* interrupted RIP */
    cmp rdx, offset repeat_nmi
    jb 7f
    cmp rdx, offset end_repeat_nmi
    jb nmi_nested_quiet                  /* the first NMI is already repeating */
7:
    cmp qword ptr [rsp - 8], 1           /* "NMI executing" */
    je nmi_nested
    /* interrupted RSP inside this IST stack: between clearing the flag and IRETQ */
    mov rdx, qword ptr [rsp + 8 + 24]
    sub rdx, rsp
    add rdx, {nmi_stack_size} - 48
    cmp rdx, {nmi_stack_size}
    jbe nmi_nested
    /* first NMI */
    mov rdx, qword ptr [rsp]             /* rdx back to its interrupted value */
    sub rsp, 48                          /* rsp = top-96: "executing" and "iret" slots */
    push qword ptr [rsp + 88]            /* outermost SS     <- top-8  */
    push qword ptr [rsp + 88]            /* outermost RSP    <- top-16 */
    push qword ptr [rsp + 88]            /* outermost RFLAGS <- top-24 */
    push qword ptr [rsp + 88]            /* outermost CS     <- top-32 */
    push qword ptr [rsp + 88]            /* outermost RIP    <- top-40 */
    add rsp, 40                          /* rsp = top-96 */
    .global repeat_nmi
repeat_nmi:
    mov qword ptr [rsp + 40], 1          /* "NMI executing" */
    add rsp, 40                          /* rsp = top-56 */
    push qword ptr [rsp - 48]            /* iret SS     <- outermost SS     */
    push qword ptr [rsp - 48]            /* iret RSP    <- outermost RSP    */
    push qword ptr [rsp - 48]            /* iret RFLAGS <- outermost RFLAGS */
    push qword ptr [rsp - 48]            /* iret CS     <- outermost CS     */
    push qword ptr [rsp - 48]            /* iret RIP    <- outermost RIP    */
    .global end_repeat_nmi
end_repeat_nmi:
    sub rsp, 40                          /* rsp = top-136: the body's IstFrame sits */
    NMI_BODY                             /* on the "outermost" copy, which no nested */
    add rsp, 40                          /* NMI touches; rsp = top-96 ("iret") again */
    mov qword ptr [rsp + 40], 0          /* done; a nested NMI from here on sees */
    iretq                                /* our RSP on this stack and asks for a repeat */

nmi_nested:
    /*
     * Point the first NMI's final IRETQ at repeat_nmi, in ring 0 on the NMI
     * stack. Every field of the "iret" frame is set: it holds a copy of the
     * interrupted context, which may be ring 3 (nmi_from_user_latch found
     * this: with the user CS left in place, the IRETQ ran repeat_nmi in ring 3).
     */
    mov qword ptr [rsp - 48], offset repeat_nmi  /* iret RIP    (top-96) */
    mov qword ptr [rsp - 40], 0x08       /* iret CS     (top-88): kernel code */
    mov qword ptr [rsp - 32], 0x2        /* iret RFLAGS (top-80): IF off */
    lea rdx, [rsp - 48]
    mov qword ptr [rsp - 24], rdx        /* iret RSP    (top-72) = top-96 */
    mov qword ptr [rsp - 16], 0x10       /* iret SS     (top-64): kernel data */
nmi_nested_quiet:
    pop rdx
    iretq
    .popsection
"#,
    flags = sym ENTRY_FLAGS,
    shift_ist = const SHIFT_IST,
    dr7_guard = const DR7_GUARD,
    tss_ist1 = const TSS_IST1_OFFSET,
    shift = const IST_SHIFT,
    nmi_stack_size = const IST_STACK_SIZE,
    ist_enter = sym super::checker::ist_enter,
    ist_exit = sym super::checker::ist_exit,
    db_body = sym super::handlers::db_body,
    nmi_body = sym super::handlers::nmi_body,
    trace_hook = sym super::trace::trace_irqs_off,
);

unsafe extern "C" {
    fn db_stub();
    fn nmi_stub();
    fn nmi_stub_linux();
    static db_window_table: WindowEntry;
    static db_window_table_end: WindowEntry;
}

pub fn db_entry() -> u64 {
    db_stub as *const () as u64
}

pub fn nmi_entry(nesting: bool) -> u64 {
    if nesting {
        nmi_stub_linux as *const () as u64
    } else {
        nmi_stub as *const () as u64
    }
}

/// One instruction of the #DB stub: its address, and the strategy flags that
/// put it on the path (0: every strategy runs it).
#[repr(C)]
pub struct WindowEntry {
    pub addr: u64,
    pub flags: u64,
}

/// Every instruction of the #DB stub, in address order.
pub fn db_window() -> &'static [WindowEntry] {
    let start = &raw const db_window_table;
    // SAFETY: the two symbols delimit the table the `W` macro emitted: the linker
    // script keeps `.rodata.db_window*` input sections in assembly order, and
    // `.rodata.db_window_end` comes last (see linker.ld).
    unsafe {
        let len = (&raw const db_window_table_end).offset_from(start) as usize;
        core::slice::from_raw_parts(start, len)
    }
}
