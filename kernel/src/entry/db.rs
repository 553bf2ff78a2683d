//! The #DB stub, shared by every strategy; strategy bits tested at run time.
//!
//! Reentrancy rules:
//! - #DB runs on IST_DB. Another #DB can arrive inside it (a breakpoint in the
//!   tracing hook, a watchpoint touched by an NMI handler); through the IST gate
//!   it starts at the same top address and overwrites this frame, unless:
//!   `shift-only` lowers the TSS pointer while the handler runs; `linux-4.19`
//!   lowers it around the body and runs the tracing hook under a debug IDT
//!   whose #DB gate has no IST (and its NMI loads that IDT when it finds the
//!   #DB stack in use); `dr7-guard` and `linux` clear DR7 so no breakpoint
//!   fires inside the handler.
//! - An NMI or #MC can interrupt any instruction here (own IST stacks). The
//!   checker's guard copies this stack's live part when that happens.
//! - `linux` and `linux-4.19`: a #DB from ring 3 saves its registers on IST_DB,
//!   then moves the whole frame to RSP0 (Linux's `error_entry` + `sync_regs`)
//!   and runs there: a nested #DB then finds IST_DB empty. DR7 stays armed on
//!   that path (Linux's `exc_debug_user` does not clear it either).
//! - Nothing here takes a lock or prints: the Rust phases record into per-CPU
//!   slots.
//!
//! Stack (IST_DB top, or RSP0 top after the ring-3 move):
//!
//!   top    -> +---------------------+
//!             | SS RSP RFLAGS CS RIP |  hardware frame, 5 words
//!             | error (0), vector (1)|  pushed here
//!             | rax .. r15           |  PUSH_GPRS
//!             | applied, dr7         |  the strategy state the exit undoes
//!   rsp    -> +---------------------+  = IstFrame, handed to every phase
//!
//! Every instruction is wrapped in `W`/`WF`: NMI sweeps see which they hit.

use super::counters::Counter;
use super::frame::ist_stub_asm;
use super::mutant::{self, catalog};
use super::strategy::{DEBUG_IDT, IST_SHIFT, SHIFT_IST};
use crate::arch::percpu::TSS_IST1_OFFSET;

ist_stub_asm!(
    r#"
    .pushsection .rodata.window_start, "a"
    .balign 8
    .global window_table
window_table:
    .popsection
    .pushsection .rodata.window_end, "a"
    .global window_table_end
window_table_end:
    .popsection

    STUB db_stub
    W inc qword ptr gs:[{db_entered}]
    W cld                                /* ring 3 may have set DF; rep movsq below */
    ENTER_FRAME 1                        /* error code 0, vector, GPRs */
    W movzx r12d, byte ptr [rip + {flags}] /* the strategy bits this entry applies */
    W xor r13d, r13d                     /* saved DR7: none yet */
    /* From ring 3: move everything pushed so far to RSP0 and run there. */
    USER_TO_RSP0 1f, {m_user_on_ist} /* mutant: it stays on IST_DB */
    WF {user_switch}, inc qword ptr gs:[{db_from_user}]
    WF {user_switch}, and r12d, ~({dr7_guard} | {shift_ist} | {debug_idt})
1:
    W test r12d, {shift_ist}
    W jz 2f
    .if {m_no_shift} == 0
    WF {shift_ist}, sub qword ptr gs:[{tss_ist1}], {shift} /* a nested #DB now lands lower */
    .endif
2:
    DR7_SAVE {dr7_guard}, {m_no_dr7_clear}
    PUSH_STATE                           /* IstFrame.applied, .dr7 */
    W lea r15, [rip + {phases}]
    W test r12d, {debug_idt}
    W jz 4f
    WF {debug_idt}, lea r15, [rip + {phases_4_19}]
4:
    RUN_PHASES                           /* enter, hook, body, exit: see frame.rs */
    POP_STATE
    DR7_RESTORE {dr7_guard}, 0, {m_restore_always}
    W test r12d, {shift_ist}
    W jz 7f
    .if ({m_no_unshift} | {m_no_shift}) == 0
    WF {shift_ist}, add qword ptr gs:[{tss_ist1}], {shift}
    .endif
7:
    LEAVE_FRAME {m_swap}
    W iretq
    STUB_END db_stub_end
"#,
    shift_ist = const SHIFT_IST,
    debug_idt = const DEBUG_IDT,
    tss_ist1 = const TSS_IST1_OFFSET,
    shift = const IST_SHIFT,
    db_entered = const Counter::DbEntered.gs_offset(),
    db_from_user = const Counter::DbFromUser.gs_offset(),
    phases = sym super::phases::DB,
    phases_4_19 = sym super::phases::DB_4_19,
    m_user_on_ist = const mutant::flag(catalog::DB_USER_ON_IST),
    m_no_shift = const mutant::flag(catalog::SHIFT_NO_SHIFT),
    m_no_dr7_clear = const mutant::flag(catalog::DB_NO_DR7_CLEAR),
    m_restore_always = const mutant::flag(catalog::DR7_RESTORE_ALWAYS),
    m_no_unshift = const mutant::flag(catalog::SHIFT_NO_UNSHIFT),
    m_swap = const mutant::pop_gprs(),
);

unsafe extern "C" {
    fn db_stub();
    fn db_stub_end();
}

/// The stub's code, as [start, end).
pub fn range() -> (u64, u64) {
    (db_stub as *const () as u64, db_stub_end as *const () as u64)
}
