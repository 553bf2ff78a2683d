//! The frame every IST stub builds, its named offsets, and the asm text the
//! stubs share: one register save/restore sequence, tied to `IstFrame` by the
//! compile-time assertions below, and the `W`/`WF` window markers.
//!
//! Frame (lowest address first) = `IstFrame`:
//!
//!   rsp ->  dr7        saved DR7 less bit 10 (0 unless the DR7 guard applied
//!                      and found a breakpoint armed)
//!           applied    the strategy bits this entry applied (its exit undoes them)
//!           r15 .. rax 15 words, pushed by PUSH_GPRS (rax first, so highest)
//!           vector     pushed by the stub
//!           error      by the CPU, or 0 pushed by the stub
//!           RIP CS RFLAGS RSP SS   hardware frame (for `linux` kernel-mode NMIs,
//!                                  the "outermost" copy; see `nmi.rs`)

use core::mem::{offset_of, size_of};

use crate::arch::vectors::TrapFrame;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IstFrame {
    pub dr7: u64,
    pub applied: u64,
    pub regs: TrapFrame,
}

pub const WORD: usize = 8;
pub const FRAME_WORDS: usize = size_of::<IstFrame>() / WORD;
/// Byte offsets from the frame's start (RSP right after the last push).
pub const OFF_RIP: usize = offset_of!(IstFrame, regs) + offset_of!(TrapFrame, rip);
pub const OFF_CS: usize = offset_of!(IstFrame, regs) + offset_of!(TrapFrame, cs);
pub const OFF_RFLAGS: usize = offset_of!(IstFrame, regs) + offset_of!(TrapFrame, rflags);
pub const OFF_RSP: usize = offset_of!(IstFrame, regs) + offset_of!(TrapFrame, rsp);
/// Bytes the stub pushes below the hardware frame (error code included).
pub const SOFT_BYTES: usize = OFF_RIP;
/// Bytes from RSP to CS right after PUSH_GPRS (the frame without dr7/applied).
pub const GPRS_CS: usize = OFF_CS - 2 * WORD;
/// Words PUSH_GPRS and the stub pushed below the hardware frame, plus it: what
/// `USER_TO_RSP0` moves.
pub const MOVED_WORDS: usize = (SOFT_BYTES - 2 * WORD) / WORD + 5;

const _: () = assert!(FRAME_WORDS == 24);
const _: () = assert!(OFF_RIP == 19 * WORD);
const _: () = assert!(OFF_CS == OFF_RIP + WORD);
const _: () = assert!(OFF_RFLAGS == OFF_RIP + 2 * WORD);
const _: () = assert!(OFF_RSP == OFF_RIP + 3 * WORD);
// PUSH_GPRS pushes rax first, so rax sits highest and r15 lowest: the order
// of `TrapFrame`'s fields, lowest address first, must be exactly the reverse.
const _: () = assert!(offset_of!(TrapFrame, r15) == 0);
const _: () = assert!(offset_of!(TrapFrame, rax) == 14 * WORD);
const _: () = assert!(offset_of!(TrapFrame, vector) == 15 * WORD);
const _: () = assert!(offset_of!(TrapFrame, error_code) == 16 * WORD);
const _: () = assert!(offset_of!(IstFrame, dr7) == 0 && offset_of!(IstFrame, applied) == WORD);
const _: () = assert!(MOVED_WORDS * WORD + 2 * WORD == size_of::<IstFrame>());

/// The shared asm text. Each stub's `global_asm!` block opens with
/// `asm_prelude!()` and ends with `asm_epilogue!()` (which `.purgem`s the
/// macros), so that blocks landing in one object never define them twice.
///
/// - `STUB name` / `STUB_END name`: a stub's global start and end labels.
/// - `W insn` / `WF flag, insn`: an instruction of a stub whose address goes to
///   `.rodata.window` (with the strategy bits that put it on the path; 0 = all).
///   NMI sweeps use the table to tell which instructions they hit.
/// - `PUSH_GPRS` / `POP_GPRS`: the one save/restore sequence (`IstFrame.regs`);
///   `PUSH_GPRS PLAIN` / `POP_GPRS 0, PLAIN` leave it out of the window table
///   (`trap_common`, which no sweep aims at).
/// - `ENTER_FRAME` / `LEAVE_FRAME`: an IST stub's pushes below the hardware
///   frame and their undoing; `PUSH_STATE` / `POP_STATE`: `IstFrame.applied`
///   and `.dr7`; `DR7_SAVE` / `DR7_RESTORE`: the DR7 guard; `RUN_PHASES`: the
///   one call site of a stub's phase table.
macro_rules! asm_prelude {
    () => {
        r#"
    .macro WF flag, insn:vararg
    .pushsection .rodata.window, "a"
    .quad 9999f, \flag
    .popsection
9999:
    \insn
    .endm
    .macro W insn:vararg
    WF 0, \insn
    .endm
    /* A stub's first and end labels, both global (`range()` reads them). */
    .macro STUB name
    .balign 16
    .global \name
\name:
    .endm
    .macro STUB_END name
    .global \name
\name:
    .endm
    /* An instruction left out of the window table (trap_common's GPRs). */
    .macro PLAIN insn:vararg
    \insn
    .endm
    .macro PUSH_GPRS mark=W
    \mark push rax
    \mark push rbx
    \mark push rcx
    \mark push rdx
    \mark push rsi
    \mark push rdi
    \mark push rbp
    \mark push r8
    \mark push r9
    \mark push r10
    \mark push r11
    \mark push r12
    \mark push r13
    \mark push r14
    \mark push r15
    .endm
    /* The stub's pushes below the hardware frame: error code 0, vector, GPRs. */
    .macro ENTER_FRAME vector
    W push 0                             /* no error code: keep the frame shape */
    W push \vector
    PUSH_GPRS
    .endm
    /* IstFrame.applied (r12) and IstFrame.dr7 (r13): what the exit undoes. */
    .macro PUSH_STATE
    W push r12
    W push r13
    .endm
    .macro POP_STATE
    W pop r13
    W pop r12
    .endm
    .set DR7_FIXED_1, 0x400              /* DR7 bit 10 reads as 1 */
    /*
     * DR7 guard, entry half: r12 holds the applied bits, the old DR7 goes to
     * r13. As Linux's local_db_save(): DR7 less its always-set bit 10, and a
     * write only when that leaves something armed (r13 = 0: nothing to undo).
     */
    .macro DR7_SAVE guard, keep=0
    W test r12d, \guard
    W jz .Ldr7_saved\@
    WF \guard, mov r13, dr7             /* local_db_save(): read DR7 ... */
    WF \guard, and r13, ~DR7_FIXED_1   /* ... less its always-set bit ... */
    WF \guard, jz .Ldr7_saved\@        /* ... nothing armed: no write */
    .if \keep == 0                       /* mutants db-/nmi-no-dr7-clear: keep it armed */
    WF \guard, xor eax, eax
    WF \guard, mov dr7, rax             /* ... else disarm every breakpoint */
    .endif
.Ldr7_saved\@:
    .endm
    /* DR7 guard, exit half: re-arm what the entry half found armed */
    .macro DR7_RESTORE guard, zero=0, always=0
    W test r12d, \guard
    W jz .Ldr7_restored\@
    .if \zero                            /* mutant nmi-dr7-restored-wrong: DR7 "restored" to 0 */
    WF \guard, xor r13d, r13d
    .endif
    .if \always == 0                     /* mutant dr7-restore-always: write it anyway */
    WF \guard, test r13, r13            /* local_db_restore(): only if the save */
    WF \guard, jz .Ldr7_restored\@     /* found something armed */
    .endif
    WF \guard, mov dr7, r13
.Ldr7_restored\@:
    .endm
    /*
     * The phases of the table in r15, from one call site: a nested entry on
     * the same stack overwrites the return address of whatever call was in
     * progress with the return address of its own calls, and with one call
     * site that value is the same, so a clobbered handler still finds its way
     * back here, where the checker can see the damage. The index lives in
     * r14, which a nested entry saves and restores.
     */
    .macro RUN_PHASES
    W xor r14d, r14d
.Lphase\@:
    W mov rdi, rsp
    W call qword ptr [r15 + r14 * 8]
    W inc r14d
    W cmp qword ptr [r15 + r14 * 8], 0
    W jne .Lphase\@
    .endm
    .macro POP_GPRS swap=0, mark=W
    \mark pop r15
    \mark pop r14
    \mark pop r13
    \mark pop r12
    \mark pop r11
    \mark pop r10
    .if \swap == 1                       /* mutant pop-gprs-swap-r8-r9 */
    \mark pop r8
    \mark pop r9
    .elseif \swap == 2                   /* mutant pop-gprs-r8-from-r9 */
    \mark pop r9
    \mark add rsp, 8                     /* r8's slot skipped ... */
    \mark mov r8, r9                     /* ... r8 gets r9's value */
    .else
    \mark pop r9
    \mark pop r8
    .endif
    \mark pop rbp
    \mark pop rdi
    \mark pop rsi
    \mark pop rdx
    \mark pop rcx
    \mark pop rbx
    \mark pop rax
    .endm
    /* ENTER_FRAME undone: the GPRs, then vector and error code. */
    .macro LEAVE_FRAME swap=0
    POP_GPRS \swap
    W add rsp, 16                        /* vector, error code */
    .endm
"#
    };
}

macro_rules! asm_epilogue {
    () => {
        "
    .purgem WF
    .purgem W
    .purgem STUB
    .purgem STUB_END
    .purgem PLAIN
    .purgem PUSH_GPRS
    .purgem POP_GPRS
    .purgem ENTER_FRAME
    .purgem LEAVE_FRAME
    .purgem PUSH_STATE
    .purgem POP_STATE
    .purgem DR7_SAVE
    .purgem DR7_RESTORE
    .purgem RUN_PHASES
"
    };
}

/// An IST stub's `global_asm!`: its text in `.text.entry` between the shared
/// prelude and epilogue, and the operands every IST stub reads (`flags`: the
/// strategy bits, `dr7_guard`, `user_switch`: two of them, `tss_rsp0`: where
/// RSP0 sits in the per-CPU area) ahead of its own.
///
/// It adds `USER_TO_RSP0 kernel, stay=0` (Linux's `error_entry` + `sync_regs`
/// for an IST vector from ring 3): with USER_SWITCH applied and CS from
/// ring 3, move everything the stub pushed so far, hardware frame included, to
/// the top of RSP0 and go on there; else jump to `kernel`. `stay` (a mutant)
/// leaves the frame on the IST stack.
macro_rules! ist_stub_asm {
    ($text:expr, $($operands:tt)*) => {
        core::arch::global_asm!(
            $crate::entry::frame::asm_prelude!(),
            r#"
    .macro USER_TO_RSP0 kernel, stay=0
    W test r12d, {user_switch}
    W jz \kernel
    WF {user_switch}, test byte ptr [rsp + {gprs_cs}], 3
    WF {user_switch}, jz \kernel
    .if \stay == 0
    WF {user_switch}, mov rdi, qword ptr gs:[{tss_rsp0}]
    WF {user_switch}, sub rdi, {moved_bytes}
    WF {user_switch}, mov rsi, rsp
    WF {user_switch}, mov ecx, {moved_words}
    WF {user_switch}, rep movsq                 /* DF is clear: the stub's CLD */
    WF {user_switch}, lea rsp, [rdi - {moved_bytes}]
    .endif
    .endm
    .pushsection .text.entry, "ax"
"#,
            $text,
            "    .popsection",
            "    .purgem USER_TO_RSP0",
            $crate::entry::frame::asm_epilogue!(),
            flags = sym $crate::entry::strategy::ENTRY_FLAGS,
            dr7_guard = const $crate::entry::strategy::DR7_GUARD,
            user_switch = const $crate::entry::strategy::USER_SWITCH,
            tss_rsp0 = const $crate::arch::percpu::TSS_RSP0_OFFSET,
            gprs_cs = const $crate::entry::frame::GPRS_CS,
            moved_words = const $crate::entry::frame::MOVED_WORDS,
            moved_bytes = const $crate::entry::frame::MOVED_WORDS * $crate::entry::frame::WORD,
            $($operands)*
        );
    };
}

pub(super) use {asm_epilogue, asm_prelude, ist_stub_asm};

/// One instruction of a stub: its address, and the strategy flags that put it
/// on the path (0: every strategy runs it).
#[repr(C)]
pub struct WindowEntry {
    pub addr: u64,
    pub flags: u64,
}

unsafe extern "C" {
    static window_table: WindowEntry;
    static window_table_end: WindowEntry;
}

/// Every marked instruction of every stub, in address order within a stub.
pub fn window() -> &'static [WindowEntry] {
    let start = &raw const window_table;
    // SAFETY: the two symbols delimit the table the `W` macro emitted: the linker
    // script keeps `.rodata.window*` input sections together, between the
    // `.rodata.window_start` and `.rodata.window_end` markers (see linker.ld).
    unsafe {
        let len = (&raw const window_table_end).offset_from(start) as usize;
        core::slice::from_raw_parts(start, len)
    }
}
