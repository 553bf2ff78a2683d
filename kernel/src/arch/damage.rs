//! The register damage kit: the interrupted code's own check that an entry
//! gave back every register it took.
//!
//! A probe loads all 15 general-purpose registers (RSP excepted: it is the
//! probe's anchor) and RFLAGS from a per-iteration pattern, executes one hazard
//! instruction (a watched store, INT3, ICEBP, `INT 1`, a NOP under an execute
//! breakpoint, a MOV to DR7 under DR7.GD), stores all 16 again, and the caller
//! compares, naming the first register that changed. Every exception the
//! hazard raises is delivered and returned from between the load and the store,
//! so a stub that restores one register wrong, or leaves a flag changed, shows
//! here and nowhere else. Kernel probes are functions; ring-3 probes are
//! position-independent programs the sandbox runs (`user::Sandbox`).
//!
//! RFLAGS in the pattern: the six arithmetic flags and DF (an entry must clear
//! DF for its Rust body and give the interrupted code its own back); IF, TF,
//! AC, NT and IOPL stay as the probe found them (0), because changing them
//! would change what the hazard does rather than test what the entry keeps.
//!
//! Slot order, in the `[u64; 16]` the probes read and write:
//! rax rbx rcx rdx rsi rdi rbp r8 r9 r10 r11 r12 r13 r14 r15 rflags.

use core::arch::global_asm;

/// Register names in slot order.
pub const NAMES: [&str; 16] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
    "r15", "rflags",
];
/// The store probe writes RAX to `[R15]`; the DR7 probe writes R15 to DR7.
pub const R15: usize = 14;
pub const RFLAGS: usize = 15;
/// CF PF AF ZF SF DF OF: the flags the pattern sets.
pub const RFLAGS_PATTERN_MASK: u64 = 0xcd5;
const RFLAGS_FIXED: u64 = 0x2;

/// One probe's registers, in slot order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct Regs(pub [u64; 16]);

/// The first register a probe found changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    pub register: &'static str,
    pub expected: u64,
    pub seen: u64,
}

impl Regs {
    /// The pattern of one iteration: every register a different value, all
    /// of them different from one iteration to the next.
    pub fn pattern(iteration: u64, salt: u64) -> Regs {
        let mut x = iteration
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(salt);
        let mut regs = [0u64; 16];
        for (i, slot) in regs.iter_mut().enumerate() {
            // splitmix64 steps: distinct and well mixed.
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *slot = (z ^ (z >> 31)) ^ i as u64;
        }
        regs[RFLAGS] = RFLAGS_FIXED | (regs[RFLAGS] & RFLAGS_PATTERN_MASK);
        Regs(regs)
    }

    /// The first slot whose value differs in `seen`, if any.
    pub fn first_damage(&self, seen: &Regs) -> Option<Damage> {
        (0..16).find(|&i| self.0[i] != seen.0[i]).map(|i| Damage {
            register: NAMES[i],
            expected: self.0[i],
            seen: seen.0[i],
        })
    }
}

/// The instruction a probe executes between its load and its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hazard {
    /// `mov [r15], rax`: a watchpoint on `[r15]` traps after it.
    Store,
    /// `int3` (0xcc).
    Int3,
    /// ICEBP (0xf1).
    Icebp,
    /// `int 1` (0xcd 0x01): ring 0 only (the #DB gate has DPL 0).
    Int1,
    /// `nop`, the target of an execute breakpoint (`hazard_address`).
    Nop,
    /// `mov dr7, r15`: under DR7.GD a #DB(BD) comes first. Ring 0 only;
    /// R15 must hold a DR7 value safe to load.
    Dr7Write,
}

/// The probes, ring 0 then ring 3, one per hazard, from one macro each.
/// Kernel probe: `fn(fill: *const Regs, out: *mut Regs)` (SysV).
/// User probe: the same two pointers in RDI and RSI, ends with `int 0x80`.
macro_rules! probe_asm {
    () => {
        r#"
    .macro LOAD_ALL
    push qword ptr [rdi + 120]      /* RFLAGS first: nothing below touches flags */
    popfq
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

    .macro KERNEL_PROBE name, insn:vararg
    .balign 16
    .global damage_probe_\name
damage_probe_\name:
    push rbx                        /* callee-saved: the probe clobbers all */
    push rbp
    push r12
    push r13
    push r14
    push r15
    push rsi
    LOAD_ALL
    .global damage_probe_\name\()_hazard
damage_probe_\name\()_hazard:
    \insn
    STORE_ALL
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    cld                             /* the pattern may have set DF */
    ret
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

global_asm!(
    probe_asm!(),
    r#"
    .pushsection .text.damage_probes, "ax"
    KERNEL_PROBE store, mov qword ptr [r15], rax
    KERNEL_PROBE int3, int3
    KERNEL_PROBE icebp, .byte 0xf1
    KERNEL_PROBE int1, int 1
    KERNEL_PROBE nop, nop
    KERNEL_PROBE dr7, mov dr7, r15
    .popsection

    /* Copied into the sandbox's code page at `user::DAMAGE_OFFSET`. */
    .pushsection .rodata.damage_user, "a"
    .balign 16
    .global damage_user_programs
damage_user_programs:
    USER_PROBE store, mov qword ptr [r15], rax
    USER_PROBE int3, int3
    USER_PROBE icebp, .byte 0xf1
    USER_PROBE nop, nop
    .global damage_user_programs_end
damage_user_programs_end:
    .popsection
"#
);

unsafe extern "C" {
    fn damage_probe_store(fill: *const Regs, out: *mut Regs);
    fn damage_probe_int3(fill: *const Regs, out: *mut Regs);
    fn damage_probe_icebp(fill: *const Regs, out: *mut Regs);
    fn damage_probe_int1(fill: *const Regs, out: *mut Regs);
    fn damage_probe_nop(fill: *const Regs, out: *mut Regs);
    fn damage_probe_dr7(fill: *const Regs, out: *mut Regs);
    static damage_probe_nop_hazard: u8;
    static damage_user_programs: u8;
    static damage_user_programs_end: u8;
    static damage_user_store: u8;
    static damage_user_int3: u8;
    static damage_user_icebp: u8;
    static damage_user_nop: u8;
}

/// Runs the ring-0 probe for `hazard` with `fill`; what it stored after.
///
/// The caller arms what the hazard needs (the watchpoint on `[fill.r15]`,
/// the expected #BP, DR7.GD, the execute breakpoint on `kernel_nop_address`)
/// and, for `Dr7Write`, puts a safe DR7 value in R15.
pub fn run_kernel(hazard: Hazard, fill: &Regs) -> Regs {
    let probe = match hazard {
        Hazard::Store => damage_probe_store,
        Hazard::Int3 => damage_probe_int3,
        Hazard::Icebp => damage_probe_icebp,
        Hazard::Int1 => damage_probe_int1,
        Hazard::Nop => damage_probe_nop,
        Hazard::Dr7Write => damage_probe_dr7,
    };
    let mut out = Regs([0; 16]);
    // SAFETY: the probe saves and restores the callee-saved registers, uses
    // only its own stack frame and the two arrays, and clears DF before it
    // returns. Its hazard raises only exceptions the kernel handles and
    // returns from: the store writes `[r15]`, which the caller sets to a cell
    // it owns (checked: a zero R15 is refused below); a DR7 write loads R15.
    unsafe {
        if hazard == Hazard::Store {
            assert!(fill.0[R15] != 0, "store probe without a target");
        }
        probe(fill, &mut out);
    }
    out
}

/// The address of the ring-0 NOP probe's hazard, for an execute breakpoint.
pub fn kernel_nop_address() -> u64 {
    &raw const damage_probe_nop_hazard as u64
}

/// The ring-3 probes' machine code, for the sandbox to copy.
pub fn user_blob() -> &'static [u8] {
    let start = &raw const damage_user_programs;
    // SAFETY: the two symbols delimit the probes' bytes in .rodata.
    unsafe {
        let len = (&raw const damage_user_programs_end).offset_from(start) as usize;
        core::slice::from_raw_parts(start, len)
    }
}

/// Where the ring-3 probe for `hazard` starts in `user_blob`; `None` for the
/// hazards ring 3 cannot execute here (`int 1` and DR7 writes are #GP).
pub fn user_offset(hazard: Hazard) -> Option<u64> {
    let symbol = match hazard {
        Hazard::Store => &raw const damage_user_store,
        Hazard::Int3 => &raw const damage_user_int3,
        Hazard::Icebp => &raw const damage_user_icebp,
        Hazard::Nop => &raw const damage_user_nop,
        Hazard::Int1 | Hazard::Dr7Write => return None,
    };
    Some(symbol as u64 - &raw const damage_user_programs as u64)
}

/// A scenario's account of its probes: how many it checked, and the first
/// damage with the iteration it happened in.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub checked: u64,
    pub damaged: u64,
    pub first: Option<(u64, Damage)>,
}

impl Tally {
    /// Compares one probe's `seen` against its `fill`; true when all held.
    pub fn record(&mut self, iteration: u64, fill: &Regs, seen: &Regs) -> bool {
        self.checked += 1;
        match fill.first_damage(seen) {
            None => true,
            Some(damage) => {
                self.damaged += 1;
                self.first.get_or_insert((iteration, damage));
                false
            }
        }
    }
}

impl core::fmt::Display for Tally {
    /// The failure line: which register, in which iteration, how.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.first {
            None => write!(f, "{} probes, no register damaged", self.checked),
            Some((iteration, d)) => write!(
                f,
                "register {} damaged in {} of {} probes (first in iteration {iteration}: \
                 expected {:#x}, seen {:#x})",
                d.register, self.damaged, self.checked, d.expected, d.seen
            ),
        }
    }
}
