//! The NMI stubs: a plain one (`naive`, `shift-only`, `dr7-guard`) and the
//! nested-NMI entry of Linux (`linux`, `linux-4.19`), modelled branch for
//! branch on `asm_exc_nmi` of Linux 6.6 `arch/x86/entry/entry_64.S` (4.19's is
//! the same algorithm). Left out, because this kernel has none of it: SWAPGS,
//! CR3 switching, IBRS/retbleed mitigations, CLAC, ENDBR, `paranoid_entry`.
//!
//! Reentrancy rules:
//! - NMIs are blocked from delivery until the next IRET. An IRET inside the
//!   handler (a #DB or #BP handler returning) unblocks them early, and the next
//!   NMI then starts at the IST_NMI top again: the plain stub is overwritten
//!   (the checker catches it); the Linux one detects the nesting and asks the
//!   first NMI to repeat instead.
//! - Ring 3 (`linux`): the NMI leaves IST_NMI for RSP0 before it pushes
//!   anything below the rdx slot, runs there, and never looks for nesting: an
//!   NMI that nests inside it is latched by the body (`exc_nmi`'s nmi_state).
//! - Kernel mode: nested when the interrupted RIP lies in
//!   `repeat_nmi..end_repeat_nmi` (leave quietly: the outer NMI repeats
//!   anyway), when "NMI executing" is set, or when the interrupted RSP lies on
//!   IST_NMI with DF set (between clearing "executing" and IRETQ; DF tells that
//!   window from a ring-3 RSP in the SYSCALL gap, which SFMASK clears DF in:
//!   CVE-2015-3291).
//! - Nothing here takes a lock or prints.
//!
//! IST_NMI, kernel mode, top down (Linux's picture, same slots):
//!
//!   top-8  .. top-40   "original" hardware frame (a nested NMI overwrites it)
//!   top-48             scratch for rdx
//!   top-56             "NMI executing"
//!   top-64 .. top-96   "iret" frame: copied from "outermost" on every pass;
//!                      a nested NMI points it at repeat_nmi; the final IRETQ
//!                      uses it
//!   top-104.. top-136  "outermost" frame: copied once, never touched by a
//!                      nested NMI; it is the hardware part of the body's
//!                      IstFrame, so checker and body see the interrupted context
//!   below              the rest of the body's IstFrame

use super::counters::Counter;
use super::frame::ist_stub_asm;
use super::mutant::{self, catalog};
use crate::arch::gdt::{KERNEL_CODE_SELECTOR, KERNEL_DATA_SELECTOR};
use crate::arch::percpu::IST_STACK_SIZE;

/// The named slots of IST_NMI, as offsets below its top.
pub mod slot {
    pub const ORIGINAL_RIP: u64 = 40;
    pub const RDX: u64 = 48;
    pub const EXECUTING: u64 = 56;
    pub const IRET_RIP: u64 = 96;
    pub const OUTERMOST_RIP: u64 = 136;
}
const _: () = assert!(slot::RDX == slot::ORIGINAL_RIP + 8);
const _: () = assert!(slot::EXECUTING == slot::RDX + 8);
const _: () = assert!(slot::IRET_RIP == slot::EXECUTING + 40);
const _: () = assert!(slot::OUTERMOST_RIP == slot::IRET_RIP + 40);

/// RFLAGS.DF, as the bit of RFLAGS' second byte the nested test reads.
const DF_IN_BYTE_1: u8 = 1 << (10 - 8);

ist_stub_asm!(
    r#"
    /* "iret" <- "outermost", from rsp = top-56 to rsp = top-96. */
    .macro ITER_COPY
    W push qword ptr [rsp - 48]          /* iret SS     <- outermost SS     */
    W push qword ptr [rsp - 48]          /* iret RSP    <- outermost RSP    */
    W push qword ptr [rsp - 48]          /* iret RFLAGS <- outermost RFLAGS */
    W push qword ptr [rsp - 48]          /* iret CS     <- outermost CS     */
    W push qword ptr [rsp - 48]          /* iret RIP    <- outermost RIP    */
    .endm

    /* The plain NMI body, shared by both stubs, as a macro. */
    .macro NMI_BODY
    ENTER_FRAME 2                        /* error code 0, vector, GPRs */
    W movzx r12d, byte ptr [rip + {flags}]
    W xor r13d, r13d
    DR7_SAVE {dr7_guard}, {m_no_dr7_clear}
    PUSH_STATE
    W lea r15, [rip + {phases}]
    RUN_PHASES                           /* one call site, as in db_stub */
    POP_STATE
    DR7_RESTORE {dr7_guard}, {m_dr7_not_restored}
    LEAVE_FRAME {m_swap}
    .endm

    STUB nmi_stub
    W inc qword ptr gs:[{nmi_entered}]
    W cld
    NMI_BODY
    W iretq
    STUB_END nmi_stub_end

    STUB nmi_stub_linux
    W inc qword ptr gs:[{nmi_entered}]
    W cld
    W push rdx                           /* top-48: the one scratch register */
    .if {m_no_cs_test} == 0
    W test byte ptr [rsp + 16], 3        /* the interrupted CS */
    W jz nmi_from_kernel
    .else
    W jmp nmi_from_kernel                /* mutant: ring 3 takes the nesting tests */
    .endif
    /*
     * Ring 3: run on RSP0. Nothing more may be pushed here first: the slot
     * below rdx is "NMI executing".
     */
    W inc qword ptr gs:[{nmi_from_user}]
    W mov rdx, rsp
    W mov rsp, qword ptr gs:[{tss_rsp0}]
    W push qword ptr [rdx + 40]          /* SS */
    W push qword ptr [rdx + 32]          /* RSP */
    W push qword ptr [rdx + 24]          /* RFLAGS */
    W push qword ptr [rdx + 16]          /* CS */
    W push qword ptr [rdx + 8]           /* RIP */
    W mov rdx, qword ptr [rdx]           /* rdx back to its interrupted value */
    .global nmi_user_copied              /* from here IST_NMI is no longer read */
nmi_user_copied:
    NMI_BODY
    W iretq                              /* straight back to ring 3 */

    .global nmi_from_kernel
nmi_from_kernel:
    /* Nested inside the repeat copy: the outer NMI repeats anyway. */
    .if {m_no_repeat_test} == 0
    W cmp qword ptr [rsp + 8], offset repeat_nmi
    W jb 4f
    W cmp qword ptr [rsp + 8], offset end_repeat_nmi
    W jb nmi_nested_in_repeat
    .endif
4:
    .if {m_no_executing_test} == 0
    W cmp qword ptr [rsp - 8], 1         /* "NMI executing" (top-56) */
    W je nmi_nested_by_flag
    .endif
    /* Was the interrupted RSP on this NMI stack? */
    .if {m_no_rsp_test}
    W jmp nmi_first                      /* mutant: never asks */
    .endif
    W lea rdx, [rsp + 48]                /* the stack's top */
    W cmp qword ptr [rsp + 32], rdx
    W ja nmi_first                       /* above it: a normal NMI */
    W sub rdx, {nmi_stack_size}
    W cmp qword ptr [rsp + 32], rdx
    W jb nmi_first                       /* below it: a normal NMI */
    .if {m_no_df_test} == 0
    W test byte ptr [rsp + 25], {df}     /* the interrupted RFLAGS.DF */
    W jz nmi_user_rsp                    /* RSP was chosen by ring 3 */
    .endif
    W inc qword ptr gs:[{nested_by_rsp}]
    W jmp nmi_nested
nmi_user_rsp:
    W inc qword ptr gs:[{user_rsp_on_stack}]
    W jmp nmi_first
nmi_nested_by_flag:
    W inc qword ptr gs:[{nested_by_flag}]
nmi_nested:
    /* Point the "iret" frame at repeat_nmi, in ring 0, on this stack. */
    W sub rsp, 8                         /* rsp = top-56 */
    W lea rdx, [rsp - 80]                /* top-136: RSP at repeat_nmi */
    W push {kernel_ds}                   /* iret SS     (top-64) */
    W push rdx                           /* iret RSP    (top-72) */
    W pushfq                             /* iret RFLAGS (top-80) */
    W push {kernel_cs}                   /* iret CS     (top-88) */
    W push offset repeat_nmi             /* iret RIP    (top-96) */
    W add rsp, 48                        /* rsp = top-48 */
    W jmp nmi_nested_out
nmi_nested_in_repeat:
    W inc qword ptr gs:[{nested_in_repeat}]
nmi_nested_out:
    W pop rdx
    W iretq                              /* to kernel mode: cannot fault */

nmi_first:
    W inc qword ptr gs:[{nmi_first}]
    W mov rdx, qword ptr [rsp]           /* rdx back */
    W push 0                             /* "NMI executing" (top-56) */
    W sub rsp, 40                        /* room for the "iret" frame */
    W push qword ptr [rsp + 88]          /* outermost SS     (top-104) */
    W push qword ptr [rsp + 88]          /* outermost RSP    (top-112) */
    W push qword ptr [rsp + 88]          /* outermost RFLAGS (top-120) */
    W push qword ptr [rsp + 88]          /* outermost CS     (top-128) */
    W push qword ptr [rsp + 88]          /* outermost RIP    (top-136) */
    .if {m_iret_once}                    /* mutant: the copy below, once */
    W add rsp, 80
    ITER_COPY
    W sub rsp, 40
    .endif
    /* Everything up to here is safe from nested NMIs. */
    .global repeat_nmi
repeat_nmi:
    W inc qword ptr gs:[{passes}]
    W mov qword ptr [rsp + 80], 1        /* "NMI executing" */
    .if {m_iret_once} == 0
    W add rsp, 80                        /* rsp = top-56 */
    ITER_COPY
    W sub rsp, 40                        /* rsp = top-136 */
    .endif
    .global end_repeat_nmi
end_repeat_nmi:
    /* From here a nested NMI may point the "iret" frame at repeat_nmi. */
    NMI_BODY                             /* its IstFrame ends on "outermost" */
    W add rsp, 40                        /* rsp = top-96: the "iret" frame */
    .if {m_cleared_early}                /* mutant: flag cleared, then STD */
    W mov qword ptr [rsp + 40], 0
    W std
    .else
    W std                                /* DF marks the window to IRETQ ... */
    W mov qword ptr [rsp + 40], 0        /* ... once "NMI executing" is clear */
    .endif
    W iretq
    STUB_END nmi_stub_linux_end
    .purgem NMI_BODY
    .purgem ITER_COPY
"#,
    nmi_stack_size = const IST_STACK_SIZE,
    df = const DF_IN_BYTE_1,
    kernel_cs = const KERNEL_CODE_SELECTOR,
    kernel_ds = const KERNEL_DATA_SELECTOR,
    nmi_entered = const Counter::NmiEntered.gs_offset(),
    nmi_from_user = const Counter::NmiFromUser.gs_offset(),
    nmi_first = const Counter::NmiFirst.gs_offset(),
    nested_in_repeat = const Counter::NmiNestedInRepeat.gs_offset(),
    nested_by_flag = const Counter::NmiNestedByFlag.gs_offset(),
    nested_by_rsp = const Counter::NmiNestedByRsp.gs_offset(),
    user_rsp_on_stack = const Counter::NmiUserRspOnStack.gs_offset(),
    passes = const Counter::NmiPasses.gs_offset(),
    phases = sym super::phases::NMI,
    m_no_dr7_clear = const mutant::flag(catalog::NMI_NO_DR7_CLEAR),
    m_dr7_not_restored = const mutant::flag(catalog::NMI_DR7_NOT_RESTORED),
    m_swap = const mutant::pop_gprs(),
    m_no_cs_test = const mutant::flag(catalog::NMI_NO_CS_TEST),
    m_no_repeat_test = const mutant::flag(catalog::NMI_NO_REPEAT_RANGE_TEST),
    m_no_executing_test = const mutant::flag(catalog::NMI_NO_EXECUTING_TEST),
    m_no_rsp_test = const mutant::flag(catalog::NMI_NO_RSP_TEST),
    m_no_df_test = const mutant::flag(catalog::NMI_NO_DF_TEST),
    m_iret_once = const mutant::flag(catalog::NMI_IRET_COPIED_ONCE),
    m_cleared_early = const mutant::flag(catalog::NMI_EXECUTING_CLEARED_EARLY),
);

unsafe extern "C" {
    fn nmi_stub();
    fn nmi_stub_end();
    fn nmi_stub_linux();
    fn nmi_stub_linux_end();
    fn repeat_nmi();
    fn end_repeat_nmi();
}

/// The plain stub's code, as [start, end).
pub fn plain_range() -> (u64, u64) {
    (
        nmi_stub as *const () as u64,
        nmi_stub_end as *const () as u64,
    )
}

/// The Linux stub's code, as [start, end).
pub fn linux_range() -> (u64, u64) {
    (
        nmi_stub_linux as *const () as u64,
        nmi_stub_linux_end as *const () as u64,
    )
}

/// `repeat_nmi..end_repeat_nmi`.
pub fn repeat_range() -> (u64, u64) {
    (
        repeat_nmi as *const () as u64,
        end_repeat_nmi as *const () as u64,
    )
}

/// Where the latest NMI on a CPU landed: the hardware frame every NMI, plain
/// or nested, leaves at the top of IST_NMI ("original" in the Linux picture;
/// no stub writes there). Read from another CPU after that CPU's `NmiEntered`
/// moved, and before the next NMI is sent to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Landing {
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
}

/// The latest NMI's interrupted context on `cpu`.
pub fn last_landing(cpu: usize) -> Landing {
    let top = crate::arch::percpu::cpu(cpu)
        .ist_stack(crate::arch::percpu::IstSlot::Nmi)
        .top;
    let word = |below: u64| {
        // SAFETY: `top - below` lies in the mapped IST_NMI stack of `cpu`
        // (below <= 40 < its size), aligned; a volatile read of a word the CPU
        // writes as a whole when it delivers an NMI.
        unsafe { core::ptr::read_volatile((top - below) as *const u64) }
    };
    Landing {
        rip: word(slot::ORIGINAL_RIP),
        cs: word(slot::ORIGINAL_RIP - 8),
        rflags: word(slot::ORIGINAL_RIP - 16),
        rsp: word(slot::ORIGINAL_RIP - 24),
    }
}
