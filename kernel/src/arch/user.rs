//! Ring 3, for the scenarios whose hazard starts in user mode. There is no
//! process model: a scenario copies a tiny program into user pages and runs it
//! on this CPU with `run`, which IRETs to ring 3 and returns when the program
//! executes `int 0x80` (a DPL-3 gate). GS keeps the kernel's per-CPU base in
//! ring 3 (null selector, no SWAPGS anywhere): user code here is test code.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use super::damage::{self, Hazard, Regs, WaitCell};
use super::gdt::{USER_CODE_SELECTOR, USER_DATA_SELECTOR};
use super::park;
use super::vectors::TrapFrame;

/// The vector a user program uses to come back (`int 0x80`).
pub const RETURN_VECTOR: u8 = 0x80;

global_asm!(
    r#"
    .pushsection .text.entry, "ax"
    /*
     * The SYSCALL entry of the tests: still on the user stack, it runs a few
     * instructions (a TF that leaked through SFMASK single-steps each of them)
     * and goes back to the parked kernel context through a ring-0 `int 0x81`,
     * whose frame lands on the user stack (mapped, writable).
     */
    .balign 16
    .global syscall_entry
syscall_entry:
    nop
    nop
    nop
    int 0x81
    ud2
    .global syscall_entry_end
syscall_entry_end:

    /* ! user_enter(rip, user_rsp, arg0): called through arch::park */
    .balign 16
user_enter:
    push {user_ss}                      /* IRET frame for ring 3 */
    push rsi
    push 0x2                            /* RFLAGS: interrupts stay off */
    push {user_cs}
    push rdi
    mov rdi, rdx                        /* the program's arguments */
    mov rsi, rcx
    iretq
    .popsection

    /* Programs, copied together into a user page; each ends with int 0x80. */
    .pushsection .rodata.user_programs, "a"
    .global user_programs
user_programs:
    .global user_program_store          /* *arg0 = arg1 */
user_program_store:
    mov qword ptr [rdi], rsi
    int 0x80
    .global user_program_int3           /* 0xcc */
user_program_int3:
    int3
    int 0x80
    .global user_program_int_3          /* 0xcd 0x03: obeys the gate's DPL */
user_program_int_3:
    .byte 0xcd, 0x03
    int 0x80
    .global user_program_icebp          /* 0xf1: no privilege check */
user_program_icebp:
    .byte 0xf1
    int 0x80
    .global user_program_int_1          /* 0xcd 0x01: obeys the #DB gate's DPL 0 */
user_program_int_1:
    .byte 0xcd, 0x01
    int 0x80
    .global user_program_syscall_tf     /* TF on, then SYSCALL */
user_program_syscall_tf:
    pushfq
    or qword ptr [rsp], 0x100
    popfq                               /* TF traps after the next instruction: */
    syscall                             /* ... which enters the kernel */
    ud2
    .global user_program_sysenter_tf    /* TF on, then SYSENTER */
user_program_sysenter_tf:
    pushfq
    or qword ptr [rsp], 0x100
    popfq
    sysenter                            /* no mask: TF stays set in ring 0 */
    ud2
    .global user_program_tf_exit        /* TF on, INT3, then back with TF set */
user_program_tf_exit:
    pushfq
    or qword ptr [rsp], 0x100
    popfq
    nop
    int3
    nop
    int 0x80                            /* TF still set: the landing must drop it */
    .global user_program_movss_int3     /* MOV SS from *arg0, then INT3 */
user_program_movss_int3:
    mov ss, word ptr [rdi]
    int3
    int 0x80
    .global user_program_movss_int_3    /* MOV SS from *arg0, then INT 3 */
user_program_movss_int_3:
    mov ss, word ptr [rdi]
    .byte 0xcd, 0x03
    int 0x80
    .global user_program_movss_syscall  /* MOV SS from *arg0, then SYSCALL */
user_program_movss_syscall:
    mov ss, word ptr [rdi]
    syscall
    ud2
    .global user_program_syscall_rsp    /* RSP = arg0, arg1 loops, SYSCALL */
user_program_syscall_rsp:
    mov rsp, rdi                        /* any RSP: ring 3 never uses it here */
1:  dec rsi
    jnz 1b
    syscall                             /* its entry runs on that RSP */
    ud2
    .global user_program_spin           /* wait until *arg0 != 0 */
user_program_spin:
    pause
    cmp qword ptr [rdi], 0
    je user_program_spin
    int 0x80
    .global user_programs_end
user_programs_end:
    .popsection
"#,
    user_ss = const USER_DATA_SELECTOR,
    user_cs = const USER_CODE_SELECTOR,
);

unsafe extern "C" {
    fn user_enter(
        rip: u64,
        user_rsp: u64,
        parked: *mut u64,
        landing: *mut u64,
        arg0: u64,
        arg1: u64,
    ) -> u64;
    static user_programs: u8;
    static user_program_int3: u8;
    static user_program_int_3: u8;
    static user_program_icebp: u8;
    static user_program_int_1: u8;
    static user_program_spin: u8;
    static user_program_movss_int3: u8;
    static user_program_movss_int_3: u8;
    static user_program_movss_syscall: u8;
    static user_program_syscall_tf: u8;
    static user_program_sysenter_tf: u8;
    static user_program_tf_exit: u8;
    static user_program_syscall_rsp: u8;
    static syscall_entry: u8;
    static syscall_entry_end: u8;
    static user_programs_end: u8;
}

/// The ring-3 programs a sandbox holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// `int3` (0xcc).
    Int3,
    /// `int 3` (0xcd 0x03).
    IntN3,
    /// ICEBP (0xf1).
    Icebp,
    /// `int 1` (0xcd 0x01).
    IntN1,
    /// Spins in ring 3 until `*arg0 != 0`.
    Spin,
    /// Sets RFLAGS.TF, then executes SYSCALL.
    SyscallTf,
    /// Sets RFLAGS.TF, then executes SYSENTER.
    SysenterTf,
    /// Sets RFLAGS.TF, runs a NOP, INT3, a NOP, and comes back with TF set.
    TfExit,
    /// `mov ss, [arg0]`, then INT3 (CVE-2018-8897's shape).
    MovSsInt3,
    /// `mov ss, [arg0]`, then `int 3` (0xcd 0x03).
    MovSsIntN3,
    /// `mov ss, [arg0]`, then SYSCALL.
    MovSsSyscall,
    /// Loads RSP with arg0, loops arg1 (>= 1) times, then executes SYSCALL:
    /// the SYSCALL entry runs on an RSP ring 3 chose.
    SyscallOnRsp,
}

impl Program {
    fn symbol(self) -> *const u8 {
        match self {
            Program::Int3 => &raw const user_program_int3,
            Program::IntN3 => &raw const user_program_int_3,
            Program::Icebp => &raw const user_program_icebp,
            Program::IntN1 => &raw const user_program_int_1,
            Program::MovSsInt3 => &raw const user_program_movss_int3,
            Program::MovSsIntN3 => &raw const user_program_movss_int_3,
            Program::MovSsSyscall => &raw const user_program_movss_syscall,
            Program::Spin => &raw const user_program_spin,
            Program::SyscallTf => &raw const user_program_syscall_tf,
            Program::SysenterTf => &raw const user_program_sysenter_tf,
            Program::TfExit => &raw const user_program_tf_exit,
            Program::SyscallOnRsp => &raw const user_program_syscall_rsp,
        }
    }

    /// Offset of the program inside the blob.
    fn offset(self) -> u64 {
        self.symbol() as u64 - &raw const user_programs as u64
    }
}

/// The machine code of every program, as one blob.
fn programs() -> &'static [u8] {
    let start = &raw const user_programs;
    // SAFETY: the two symbols delimit the programs' bytes in .rodata.
    unsafe {
        let len = (&raw const user_programs_end).offset_from(start) as usize;
        core::slice::from_raw_parts(start, len)
    }
}

/// Copies `program` to `code` (a user page the caller owns).
fn install_program(code: &mut [u8], program: &[u8]) {
    code[..program.len()].copy_from_slice(program);
}

/// Runs the user program at `rip` on `user_rsp` with two arguments, in ring 3
/// on this CPU; returns the RAX `land` reports when it comes back.
fn run(rip: u64, user_rsp: u64, arg0: u64, arg1: u64) -> u64 {
    // SAFETY: `user_enter` never returns; ring 3 comes back only through
    // `land` (its `int 0x80` or an exception), which the dispatcher calls for
    // every event from ring 3. `rip` and `user_rsp` lie in user pages.
    match unsafe { park::call_parked(user_enter as *const () as u64, [rip, user_rsp, arg0, arg1]) }
    {
        park::Parked::Landed(rax) | park::Parked::Returned(rax) => rax,
    }
}

/// The vector of the SYSCALL entry's way back (`int 0x81`, DPL 0).
pub const SYSCALL_LANDING_VECTOR: u8 = 0x81;
/// What `run` returns when a program came back through SYSCALL.
pub const SYSCALL_RETURNED: u64 = 0x5ca1;

const IA32_EFER: u32 = 0xc000_0080;
const IA32_STAR: u32 = 0xc000_0081;
const IA32_LSTAR: u32 = 0xc000_0082;
const IA32_FMASK: u32 = 0xc000_0084;
const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_IF_DF_AC: u64 = (1 << 9) | (1 << 10) | (1 << 18);

/// Turns SYSCALL on for this CPU, entering `syscall_entry`. `mask_tf` puts TF
/// in SFMASK (what Linux does); without it TF stays set in the kernel.
pub fn enable_syscall(mask_tf: bool) {
    let mask = RFLAGS_IF_DF_AC | if mask_tf { RFLAGS_TF } else { 0 };
    // SAFETY: the four MSRs exist on every x86-64 CPU; SYSCALL then enters
    // `syscall_entry` with kernel CS 0x08 (STAR[47:32]); SYSRET is never used.
    unsafe {
        super::cpu::wrmsr(IA32_EFER, super::cpu::rdmsr(IA32_EFER) | 1); // SCE
        super::cpu::wrmsr(IA32_STAR, (0x10 << 48) | (0x08 << 32));
        super::cpu::wrmsr(IA32_LSTAR, &raw const syscall_entry as u64);
        super::cpu::wrmsr(IA32_FMASK, mask);
    }
}

/// The SYSCALL entry's instructions, for tests that look where a #DB landed.
pub fn syscall_entry_range() -> (u64, u64) {
    (
        &raw const syscall_entry as u64,
        &raw const syscall_entry_end as u64,
    )
}

/// The SYSCALL entry's way back (vector 0x81 from ring 0).
pub fn land_syscall(frame: &mut TrapFrame) -> bool {
    park::land(frame, SYSCALL_RETURNED)
}

/// What ends a ring-3 program: its `int 0x80`, or an exception from ring 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Returned(u64),
    Exception { vector: u8, error_code: u64 },
}

/// Encoding of `Exit` in the landing's RAX: bit 63 marks an exception.
const EXCEPTION_BIT: u64 = 1 << 63;

/// The return gate's work (vector 0x80 from ring 3), and the end of a program
/// that raised an exception in ring 3: IRET to the landing point of the `run`
/// that entered ring 3, in ring 0.
pub fn land(frame: &mut TrapFrame) -> bool {
    if frame.cs & 3 != 3 {
        return false;
    }
    let value = if frame.vector == u64::from(RETURN_VECTOR) {
        frame.rax & !EXCEPTION_BIT
    } else {
        EXCEPTION_BIT | (frame.vector << 32) | (frame.error_code & 0xffff_ffff)
    };
    park::land(frame, value)
}

/// User pages for one CPU's ring-3 programs: code (with the `store` program),
/// a stack, and a data page the kernel sees as atomics.
pub struct Sandbox {
    pub code: u64,
    pub stack_top: u64,
    pub data: &'static [AtomicU64; 512],
}

impl Sandbox {
    /// # Safety
    /// `code`, `stack` and `data` are distinct, mapped, zeroed, user-accessible
    /// 4 KiB pages that nothing else uses, for the rest of the run.
    pub unsafe fn new(code: u64, stack: u64, data: u64) -> Sandbox {
        // SAFETY: the caller hands over the code page, writable from here.
        let code_page = unsafe { core::slice::from_raw_parts_mut(code as *mut u8, 4096) };
        install_program(code_page, programs());
        install_program(
            &mut code_page[damage::USER_CODE_OFFSET as usize..],
            super::damage::user_blob(),
        );
        // SAFETY: a zeroed, page-aligned page is a valid [AtomicU64; 512].
        let data = unsafe { &*(data as *const [AtomicU64; 512]) };
        Sandbox {
            code,
            stack_top: stack + 4096,
            data,
        }
    }

    /// Runs the damage kit's ring-3 probe for `hazard` with `fill`: what it
    /// stored after the hazard, or how it ended if it did not come back.
    /// `None` for a hazard that has no ring-3 probe.
    pub fn run_probe(&self, hazard: Hazard, fill: &Regs) -> Option<Result<Regs, Exit>> {
        let offset = damage::user_offset(hazard)?;
        let cells = &self.data[damage::USER_FILL_CELL..damage::USER_OUT_CELL + 16];
        for (cell, value) in cells.iter().zip(fill.0.iter().chain(&[0; 16])) {
            cell.store(*value, Ordering::SeqCst);
        }
        let arg0 = self.data[damage::USER_FILL_CELL].as_ptr() as u64;
        let arg1 = self.data[damage::USER_OUT_CELL].as_ptr() as u64;
        let rax = run(
            self.code + damage::USER_CODE_OFFSET + offset,
            self.stack_top,
            arg0,
            arg1,
        );
        Some(match decode(rax) {
            Exit::Returned(_) => {
                let mut out = Regs([0; 16]);
                for (slot, cell) in out.0.iter_mut().zip(&self.data[damage::USER_OUT_CELL..]) {
                    *slot = cell.load(Ordering::SeqCst);
                }
                Ok(out)
            }
            exit => Err(exit),
        })
    }

    /// The ring-3 wait probe's cell in this sandbox.
    pub fn wait_cell(&self) -> &'static WaitCell {
        damage::user_wait_cell(self.data, self.code)
    }

    /// Runs `program` in ring 3 on this CPU and says how it ended.
    pub fn run(&self, program: Program, arg0: u64, arg1: u64) -> Exit {
        decode(run(
            self.code + program.offset(),
            self.stack_top,
            arg0,
            arg1,
        ))
    }
}

/// How a program ended, from the RAX `land` gave the parked context.
fn decode(rax: u64) -> Exit {
    if rax & EXCEPTION_BIT != 0 {
        Exit::Exception {
            vector: (rax >> 32) as u8,
            error_code: rax & 0xffff_ffff,
        }
    } else {
        Exit::Returned(rax)
    }
}
