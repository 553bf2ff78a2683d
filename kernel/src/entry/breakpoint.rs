//! Breakpoints for scenarios, with the deny-list (Linux's NOKPROBE_SYMBOL and
//! `within_cpu_entry`): unless the caller forces it, no breakpoint may sit on
//! - entry text and the tracing hook (an execute breakpoint there recurses);
//! - what the entry code touches before it saves and clears DR7, or that it
//!   needs to get there: every CPU's IST stacks and RSP0 stack (the frames and
//!   the saved DR7 live there), its TSS, GDT and per-CPU area (IST pointers,
//!   entry counters), both IDTs, and the strategy word the stubs read first.
//!
//! `dr7-guard` and `linux` clear DR7 only after those accesses, so a watchpoint
//! on any of them would fire inside the entry; Linux survives that order by
//! refusing such breakpoints, and so does this list. The recursion tests force.
//!
//! What a test needs that forces one into the NMI stub (`nmi_prologue_windows`):
//! a parking address to move a breakpoint to without touching DR7, the words
//! of IST_NMI's top a second NMI overwrites (`NmiTop`), and a spin that keeps
//! nothing on its stack and survives being handed back a wrong RSP.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::debugreg;
pub use crate::arch::debugreg::{Breakpoint, BreakpointError, Kind};
use crate::arch::percpu::{self, IstSlot};
use crate::arch::{idt, smp};

/// The ranges `within_cpu_entry` covers here, one at a time, each with a name
/// (for the test that shows each is refused).
pub fn for_each_entry_range(mut each: impl FnMut(&'static str, (u64, u64))) {
    each("entry text", debugreg::entry_text_range());
    each("trace hook", super::trace::text_range());
    for range in idt::ranges() {
        each("idt", range);
    }
    let flags = &super::strategy::ENTRY_FLAGS as *const _ as u64;
    each("entry flags", (flags, flags + 1));
    for cpu in (0..smp::online_count()).map(percpu::cpu) {
        for slot in IstSlot::ALL {
            let stack = cpu.ist_stack(slot);
            each("ist stack", (stack.bottom, stack.top));
        }
        let ring0 = cpu.ring0_stack();
        each("rsp0 stack", (ring0.bottom, ring0.top));
        let [tss, gdt, percpu] = cpu.descriptor_ranges();
        each("tss", tss);
        each("gdt", gdt);
        each("per-cpu area", percpu);
    }
}

/// Which protected range `[addr, addr + len)` touches, if any.
pub fn denied_by(addr: u64, len: u64) -> Option<&'static str> {
    let mut hit = None;
    for_each_entry_range(|name, (start, end)| {
        if hit.is_none() && addr < end && addr + len > start {
            hit = Some(name);
        }
    });
    hit
}

/// Arms `bp` on the running CPU after the deny-list check.
pub fn arm(bp: Breakpoint, force: bool) -> Result<(), BreakpointError> {
    debugreg::validate(&bp, force, &[])?;
    if !force && denied_by(bp.addr, bp.len).is_some() {
        return Err(BreakpointError::Denied);
    }
    debugreg::arm(&bp);
    Ok(())
}

pub fn disarm(slot: usize) {
    debugreg::disarm(slot);
}

/// Disarms everything on the running CPU and clears DR6.
pub fn reset() {
    debugreg::reset();
}

/// The words of IST_NMI's top that a second NMI overwrites when it arrives
/// while the first is still in its prologue (NMIs re-opened there by a #DB's
/// IRET): the rdx scratch slot, then the hardware frame ("original": RIP, CS,
/// RFLAGS, RSP, SS), lowest address first. Not part of any `IstFrame` and not
/// guarded (`nested_nmi_scratch`), so writing them back is invisible to the
/// checker: a scenario uses it to undo the damage it provoked and go on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NmiTop(pub [u64; 6]);

impl NmiTop {
    /// Word `i`'s address on the running CPU (0: rdx, 1: RIP, ... 5: SS).
    pub fn address(i: usize) -> u64 {
        Self::base() + 8 * i as u64
    }

    fn base() -> u64 {
        percpu::this().ist_stack(IstSlot::Nmi).top - super::nmi::slot::RDX
    }

    /// The running CPU's words.
    pub fn read() -> Self {
        let base = Self::base();
        NmiTop(core::array::from_fn(|i| {
            // SAFETY: the six words lie in this CPU's mapped IST_NMI stack,
            // aligned, 8..=48 bytes below its top.
            unsafe { core::ptr::read_volatile((base + 8 * i as u64) as *const u64) }
        }))
    }

    /// Writes them back on the running CPU. Only from an NMI body that runs
    /// while the NMI it overwrote is suspended in its prologue.
    pub fn write(&self) {
        let base = Self::base();
        for (i, word) in self.0.iter().enumerate() {
            // SAFETY: as in `read`; the words are the suspended first NMI's,
            // which reads them only after this body has returned.
            unsafe { core::ptr::write_volatile((base + 8 * i as u64) as *mut u64, *word) };
        }
    }
}

/// What `spin_anchored` shares with the NMIs that interrupt it and the CPU
/// that stops it. `#[repr(C)]`: the assembly uses the offsets.
#[repr(C)]
pub struct Anchor {
    /// RSP inside the spin, saved on entry.
    pub rsp: AtomicU64,
    /// Times the spin found RSP changed under it and put it back.
    pub repairs: AtomicU64,
    /// 1 while spinning: another CPU may send its NMIs.
    pub spinning: AtomicU64,
    /// Set by another CPU: leave the spin.
    pub stop: AtomicU64,
    /// RDX at the end of the spin (it holds the anchor's address throughout).
    pub rdx: AtomicU64,
    /// The caller's RSP, while the spin runs elsewhere.
    pub home: AtomicU64,
    /// Where to spin (0: on the caller's stack): any address, the spin never
    /// touches memory through RSP. What an NMI sees in the interrupted RSP.
    pub stack: AtomicU64,
    /// 1: spin with RFLAGS.DF set (what an NMI sees in the interrupted flags).
    pub df: AtomicU64,
}

impl Anchor {
    pub const fn new() -> Self {
        Self {
            rsp: AtomicU64::new(0),
            repairs: AtomicU64::new(0),
            spinning: AtomicU64::new(0),
            stop: AtomicU64::new(0),
            rdx: AtomicU64::new(0),
            home: AtomicU64::new(0),
            stack: AtomicU64::new(0),
            df: AtomicU64::new(0),
        }
    }
}

global_asm!(
    r#"
    .pushsection .text.anchored_spin, "ax"
    .balign 16
    .global anchored_spin
anchored_spin:                      /* rdi = &Anchor; rdx = rdi throughout */
    mov [rdi + 40], rsp
    cmp qword ptr [rdi + 48], 0
    je 4f
    mov rsp, [rdi + 48]             /* spin on the given stack */
4:  mov [rdi], rsp
    mov rdx, rdi
    cmp qword ptr [rdi + 56], 0
    je 5f
    std
5:  mov qword ptr [rdi + 16], 1
1:  cmp rsp, [rdi]
    jne 2f
    cmp qword ptr [rdi + 24], 0
    je 1b
    jmp 3f
2:  mov rsp, [rdi]                  /* an NMI returned with a wrong RSP */
    inc qword ptr [rdi + 8]
    jmp 1b
3:  mov [rdi + 32], rdx
    mov rsp, [rdi + 40]             /* the caller's, unconditionally */
    mov qword ptr [rdi + 16], 0
    cld
    ret
    .balign 8
    .global breakpoint_parking
breakpoint_parking:                 /* never executed nor accessed: a parked DR address */
    int3
    .popsection
"#
);

unsafe extern "C" {
    fn anchored_spin(anchor: *const Anchor);
    fn breakpoint_parking();
}

/// Spins until `anchor.stop` is set, in code that keeps no state on the stack
/// and puts RSP back if an interrupt returned with another one (a nested NMI
/// that overwrote the first one's frame), counting it. RDX holds the anchor's
/// address during the spin, so a damaged RDX is seen too.
pub fn spin_anchored(anchor: &Anchor) {
    while anchor.stop.load(Ordering::Acquire) == 0 {
        // SAFETY: the spin reads and writes only `anchor` (valid for the
        // call), never memory through RSP (so `anchor.stack` may be any
        // value), clobbers RDX and flags (caller-saved), and returns with the
        // RSP it was called with and DF clear.
        unsafe { anchored_spin(anchor) };
    }
}

/// An address no code executes or accesses, 8-aligned: a breakpoint or
/// watchpoint moved there is off without touching DR7 (which the `linux`
/// #DB and NMI entries restore on exit).
pub fn parking_address() -> u64 {
    breakpoint_parking as *const () as u64
}
