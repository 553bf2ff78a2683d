//! The register damage kit's probes as GAS macros (`damage.rs` assembles
//! them): load every register from a pattern, one hazard, store them all.

/// The probes, ring 0 then ring 3, one per hazard, from one macro each.
/// Kernel probe: `fn(fill: *const Regs, out: *mut Regs)` (SysV); the wait
/// probe takes its `WaitCell` as a third argument (RDX).
/// User probe: the same two pointers in RDI and RSI, ends with `int 0x80`.
macro_rules! probe_asm {
    () => {
        r#"
    .macro LOAD_ALL
    LOAD_FLAGS
    LOAD_GPRS
    .endm

    .macro LOAD_FLAGS
    push qword ptr [rdi + 120]      /* RFLAGS first: nothing below touches flags */
    popfq
    .endm

    .macro LOAD_GPRS
    mov rax, [rdi + 0]
    mov rbx, [rdi + 8]
    mov rcx, [rdi + 16]
    mov rdx, [rdi + 24]
    mov rsi, [rdi + 32]
    mov rbp, [rdi + 48]
    mov r8, [rdi + 56]
    mov r9, [rdi + 64]
    mov r10, [rdi + 72]
    mov r11, [rdi + 80]
    mov r12, [rdi + 88]
    mov r13, [rdi + 96]
    mov r14, [rdi + 104]
    mov r15, [rdi + 112]
    mov rdi, [rdi + 40]             /* last: the pointer itself */
    .endm

    /* Expects `out` at [rsp] (pushed before LOAD_ALL); leaves it popped. */
    .macro STORE_ALL
    pushfq                          /* RFLAGS first, before anything changes it */
    push rax
    mov rax, [rsp + 16]             /* out */
    mov [rax + 8], rbx
    mov [rax + 16], rcx
    mov [rax + 24], rdx
    mov [rax + 32], rsi
    mov [rax + 40], rdi
    mov [rax + 48], rbp
    mov [rax + 56], r8
    mov [rax + 64], r9
    mov [rax + 72], r10
    mov [rax + 80], r11
    mov [rax + 88], r12
    mov [rax + 96], r13
    mov [rax + 104], r14
    mov [rax + 112], r15
    pop qword ptr [rax + 0]         /* the probe's rax */
    pop qword ptr [rax + 120]       /* its RFLAGS */
    add rsp, 8                      /* out */
    .endm

    .macro KERNEL_ENTER
    push rbx                        /* callee-saved: the probe clobbers all */
    push rbp
    push r12
    push r13
    push r14
    push r15
    push rsi
    .endm

    .macro KERNEL_LEAVE
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    cld                             /* the pattern may have set DF */
    ret
    .endm

    .macro KERNEL_PROBE name, insn:vararg
    .balign 16
    .global damage_probe_\name
damage_probe_\name:
    KERNEL_ENTER
    LOAD_ALL
    .global damage_probe_\name\()_hazard
damage_probe_\name\()_hazard:
    \insn
    STORE_ALL
    KERNEL_LEAVE
    .endm

    /*
     * The wait probe's body: rdi = fill, rdx = its `WaitCell`, out at [rsp].
     * With every register patterned it spins on RSP = the cell (no flag, no
     * register changes) until the cell's first word sends it on.
     */
    .macro WAIT_BODY name
    mov [rdx + 8], rsp              /* the cell keeps RSP: "the probe is in" */
    LOAD_FLAGS
    mov rsp, rdx
    LOAD_GPRS
    .global damage_\name\()_spin
damage_\name\()_spin:
    pause
    jmp qword ptr [rsp]             /* here again, or to the resume label */
    .global damage_\name\()_resume
damage_\name\()_resume:
    mov rsp, [rsp + 8]
    STORE_ALL
    .endm

    /* The MOV SS hazards: SS reloaded from [r15], then a #BP. */
    .macro MOVSS_INT3
    mov ss, word ptr [r15]
    int3
    .endm

    .macro MOVSS_INT_N3
    mov ss, word ptr [r15]
    .byte 0xcd, 0x03
    .endm

    .macro USER_PROBE name, insn:vararg
    .global damage_user_\name
damage_user_\name:
    push rsi
    LOAD_ALL
    .global damage_user_\name\()_hazard
damage_user_\name\()_hazard:
    \insn
    STORE_ALL
    xor eax, eax
    int 0x80
    .endm
"#
    };
}

pub(super) use probe_asm;
