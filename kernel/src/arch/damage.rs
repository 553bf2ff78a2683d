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
use core::sync::atomic::AtomicU64;

use super::damage_asm::probe_asm;
pub use super::damage_wait::WaitCell;

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
    /// `int 3` (0xcd 0x03): obeys the #BP gate's DPL from ring 3.
    IntN3,
    /// ICEBP (0xf1).
    Icebp,
    /// `int 1` (0xcd 0x01): ring 0 only (the #DB gate has DPL 0).
    Int1,
    /// `nop`, the target of an execute breakpoint (`hazard_address`).
    Nop,
    /// `mov dr7, r15`: under DR7.GD a #DB(BD) comes first. Ring 0 only;
    /// R15 must hold a DR7 value safe to load.
    Dr7Write,
    /// `mov ss, [r15]`, then INT3 (CVE-2018-8897's shape): R15 holds the
    /// address of the selector SS already holds.
    MovSsInt3,
    /// `mov ss, [r15]`, then `int 3` (0xcd 0x03).
    MovSsIntN3,
    /// No instruction of its own: the probe spins (`pause`, `jmp [rsp]`,
    /// which change no register or flag) with RSP on its `WaitCell` until
    /// another CPU or a handler releases it, so that whatever interrupts it
    /// meanwhile (NMIs) finds every register patterned. Arm the cell before
    /// anything may release it.
    Wait,
}

/// Where the ring-3 probes sit in a sandbox (`user::Sandbox`): their code at
/// this offset of its code page; in its data page, a probe's pattern, then
/// what it stored (the last 32 cells), and below them the wait probe's cell.
pub const USER_CODE_OFFSET: u64 = 2048;
pub const USER_FILL_CELL: usize = 480;
pub const USER_OUT_CELL: usize = 496;
const USER_WAIT_CELL: usize = USER_FILL_CELL - 4;
/// How far below the ring-3 probe's `fill` its `WaitCell` lies.
const WAIT_CELL_BELOW_FILL: u64 = ((USER_FILL_CELL - USER_WAIT_CELL) * 8) as u64;

/// The ring-3 wait probe's cell in a sandbox's data page, placed at the
/// probe's loop in the sandbox's code page at `code`.
pub fn user_wait_cell(data: &'static [AtomicU64; 512], code: u64) -> &'static WaitCell {
    let (spin, resume) = user_wait_loop();
    let base = code + USER_CODE_OFFSET;
    WaitCell::over(
        &data[USER_WAIT_CELL..USER_FILL_CELL],
        base + spin,
        base + resume,
    )
}

/// The ring-0 wait probe's cell (one CPU at a time runs it).
static KERNEL_WAIT: WaitCell = WaitCell::new();

/// The ring-0 wait probe's cell, placed at its loop.
pub fn kernel_wait_cell() -> &'static WaitCell {
    KERNEL_WAIT.place(
        &raw const damage_probe_wait_spin as u64,
        &raw const damage_probe_wait_resume as u64,
    );
    &KERNEL_WAIT
}

global_asm!(
    probe_asm!(),
    r#"
    .pushsection .text.damage_probes, "ax"
    KERNEL_PROBE store, mov qword ptr [r15], rax
    KERNEL_PROBE int3, int3
    KERNEL_PROBE int_n3, .byte 0xcd, 0x03
    KERNEL_PROBE icebp, .byte 0xf1
    KERNEL_PROBE int1, int 1
    KERNEL_PROBE nop, nop
    KERNEL_PROBE dr7, mov dr7, r15
    KERNEL_PROBE movss_int3, MOVSS_INT3
    KERNEL_PROBE movss_int_n3, MOVSS_INT_N3

    .balign 16
    .global damage_probe_wait       /* (fill, out, cell): as KERNEL_PROBE */
damage_probe_wait:
    KERNEL_ENTER
    WAIT_BODY probe_wait
    KERNEL_LEAVE
    .popsection

    /* Copied into the sandbox's code page at `USER_CODE_OFFSET`. */
    .pushsection .rodata.damage_user, "a"
    .balign 16
    .global damage_user_programs
damage_user_programs:
    USER_PROBE store, mov qword ptr [r15], rax
    USER_PROBE int3, int3
    USER_PROBE int_n3, .byte 0xcd, 0x03
    USER_PROBE icebp, .byte 0xf1
    USER_PROBE nop, nop
    USER_PROBE movss_int3, MOVSS_INT3
    USER_PROBE movss_int_n3, MOVSS_INT_N3
    .global damage_user_wait        /* its cell: the 4 words below `fill` */
damage_user_wait:
    push rsi
    lea rdx, [rdi - {wait_cell_below}]
    WAIT_BODY user_wait
    xor eax, eax
    int 0x80
    .global damage_user_programs_end
damage_user_programs_end:
    .popsection
"#,
    wait_cell_below = const WAIT_CELL_BELOW_FILL,
);

unsafe extern "C" {
    fn damage_probe_store(fill: *const Regs, out: *mut Regs);
    fn damage_probe_int3(fill: *const Regs, out: *mut Regs);
    fn damage_probe_int_n3(fill: *const Regs, out: *mut Regs);
    fn damage_probe_icebp(fill: *const Regs, out: *mut Regs);
    fn damage_probe_int1(fill: *const Regs, out: *mut Regs);
    fn damage_probe_nop(fill: *const Regs, out: *mut Regs);
    fn damage_probe_dr7(fill: *const Regs, out: *mut Regs);
    fn damage_probe_movss_int3(fill: *const Regs, out: *mut Regs);
    fn damage_probe_movss_int_n3(fill: *const Regs, out: *mut Regs);
    fn damage_probe_wait(fill: *const Regs, out: *mut Regs, cell: *const WaitCell);
    static damage_probe_wait_spin: u8;
    static damage_probe_wait_resume: u8;
    static damage_probe_nop_hazard: u8;
    static damage_user_programs: u8;
    static damage_user_programs_end: u8;
    static damage_user_store: u8;
    static damage_user_int3: u8;
    static damage_user_int_n3: u8;
    static damage_user_icebp: u8;
    static damage_user_nop: u8;
    static damage_user_wait: u8;
    static damage_user_movss_int3: u8;
    static damage_user_movss_int_n3: u8;
    static damage_user_wait_spin: u8;
    static damage_user_wait_resume: u8;
}

/// Runs the ring-0 probe for `hazard` with `fill`; what it stored after.
///
/// The caller arms what the hazard needs (the watchpoint on `[fill.r15]`,
/// the expected #BP, DR7.GD, the execute breakpoint on `kernel_nop_address`)
/// and, for `Dr7Write`, puts a safe DR7 value in R15 (for the MOV SS probes,
/// the address of SS's selector); for `Wait`, arms
/// `kernel_wait_cell` and has something release it.
pub fn run_kernel(hazard: Hazard, fill: &Regs) -> Regs {
    let mut out = Regs([0; 16]);
    if hazard == Hazard::Wait {
        // SAFETY: as below; the probe's RSP points at `KERNEL_WAIT` while it
        // spins, where nothing is pushed: it runs with interrupts off, and
        // every exception here (NMI, #DB, #MC) switches to an IST stack.
        unsafe { damage_probe_wait(fill, &mut out, &KERNEL_WAIT) };
        return out;
    }
    let probe = match hazard {
        Hazard::Store => damage_probe_store,
        Hazard::Int3 => damage_probe_int3,
        Hazard::IntN3 => damage_probe_int_n3,
        Hazard::Icebp => damage_probe_icebp,
        Hazard::Int1 => damage_probe_int1,
        Hazard::Nop => damage_probe_nop,
        Hazard::Dr7Write => damage_probe_dr7,
        Hazard::MovSsInt3 => damage_probe_movss_int3,
        Hazard::MovSsIntN3 => damage_probe_movss_int_n3,
        Hazard::Wait => unreachable!("handled above"),
    };
    // SAFETY: the probe saves and restores the callee-saved registers, uses
    // only its own stack frame and the two arrays, and clears DF before it
    // returns. Its hazard raises only exceptions the kernel handles and
    // returns from: the store writes `[r15]`, which the caller sets to a cell
    // it owns (checked: a zero R15 is refused below); a DR7 write loads R15;
    // a MOV SS loads the selector at `[r15]` (SS's own, the caller's cell).
    unsafe {
        if matches!(
            hazard,
            Hazard::Store | Hazard::MovSsInt3 | Hazard::MovSsIntN3
        ) {
            assert!(fill.0[R15] != 0, "probe without its R15 target");
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
        Hazard::IntN3 => &raw const damage_user_int_n3,
        Hazard::Icebp => &raw const damage_user_icebp,
        Hazard::Nop => &raw const damage_user_nop,
        Hazard::Wait => &raw const damage_user_wait,
        Hazard::MovSsInt3 => &raw const damage_user_movss_int3,
        Hazard::MovSsIntN3 => &raw const damage_user_movss_int_n3,
        Hazard::Int1 | Hazard::Dr7Write => return None,
    };
    Some(symbol as u64 - &raw const damage_user_programs as u64)
}

/// The ring-3 wait probe's loop, `[spin, resume)`, as offsets in `user_blob`.
fn user_wait_loop() -> (u64, u64) {
    let base = &raw const damage_user_programs as u64;
    (
        &raw const damage_user_wait_spin as u64 - base,
        &raw const damage_user_wait_resume as u64 - base,
    )
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
