//! A plain #MC entry: the machine-check gate on its own IST stack (IST_MC),
//! one stub that saves the registers in `TrapFrame` order, and a body that
//! records where the #MC landed and ends the machine check.
//!
//! Reentrancy: #MC is not masked by IF, by an NMI or by a #DB: it can land on
//! any instruction, inside any other handler. The body touches only this
//! CPU's atomics and the MCA registers, and takes no lock. A second #MC
//! before the body clears MCG_STATUS.MCIP shuts the machine down (architected;
//! QEMU models it), so nothing here can be interrupted by its own vector
//! except after `mce::clear`, on the way out, where a new #MC would start
//! again at the top of the same IST stack and overwrite this frame: the
//! window the strategies' #MC paths exist for.
//!
//!   IST_MC top -> +--------------------+
//!                 | SS RSP RFLAGS CS   |  5 words, by the CPU
//!                 | RIP                |
//!                 +--------------------+
//!                 | 0, 18              |  error code (none), vector
//!                 +--------------------+
//!                 | rax ... r15        |  15 words: `TrapFrame`
//!                 +--------------------+ <- RSP when the body is called

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::MAX_CPUS;
use crate::arch::mce::{self, Found};
use crate::arch::percpu::{self, IST_MC};
use crate::arch::vectors::TrapFrame;

const MACHINE_CHECK: u8 = 18;

global_asm!(
    r#"
    .pushsection .text.entry, "ax"
    .balign 16
    .global mc_entry_plain
mc_entry_plain:
    push 0                      /* #MC pushes no error code: keep the shape */
    push {vector}
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
    mov rdi, rsp                /* mc_body(&mut TrapFrame) */
    cld                         /* the ABI wants DF clear; the interrupted code may not */
    call {body}
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
    add rsp, 16                 /* vector and error code */
    iretq
    .popsection
"#,
    vector = const MACHINE_CHECK,
    body = sym mc_body,
);

unsafe extern "C" {
    static mc_entry_plain: u8;
}

/// Where one #MC landed, as its body recorded it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Landing {
    /// #MCs taken on this CPU so far.
    pub count: u64,
    pub rip: u64,
    pub cs: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub found: Found,
}

/// Per CPU: count, rip, cs, rsp, rflags, mcg_status, bank, status.
static LANDINGS: [[AtomicU64; 8]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; 8] }; MAX_CPUS];

/// Points the #MC gate at the plain stub on IST_MC. Idempotent; called by
/// the machine-check tests before they arm anything (no #MC can be raised
/// before `mce::enable`, so the gate is never read while it changes).
pub fn install() {
    crate::arch::idt::set_gate(MACHINE_CHECK, &raw const mc_entry_plain as u64, IST_MC);
}

/// The last #MC on `cpu` (with `count` of them so far).
pub fn landing(cpu: usize) -> Landing {
    let slot = &LANDINGS[cpu];
    let at = |i: usize| slot[i].load(Ordering::SeqCst);
    Landing {
        count: at(0),
        rip: at(1),
        cs: at(2),
        rsp: at(3),
        rflags: at(4),
        found: Found {
            mcg_status: at(5),
            bank: at(6) as u32,
            status: at(7),
        },
    }
}

extern "C" fn mc_body(frame: &mut TrapFrame) {
    let found = mce::read();
    let cpu = percpu::this().index();
    let slot = &LANDINGS[cpu];
    for (i, value) in [
        frame.rip,
        frame.cs,
        frame.rsp,
        frame.rflags,
        found.mcg_status,
        u64::from(found.bank),
        found.status,
    ]
    .into_iter()
    .enumerate()
    {
        slot[i + 1].store(value, Ordering::SeqCst);
    }
    // The count last: a reader that sees it move sees the fields above.
    slot[0].fetch_add(1, Ordering::SeqCst);
    mce::clear(found.bank);
}
