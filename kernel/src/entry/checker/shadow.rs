//! The shadow: every word of every IST frame, copied at entry and compared at
//! exit; and the `linux` NMI's "iret" copy, which the final IRETQ uses.

use crate::entry::mutant::{self, catalog};
use core::sync::atomic::Ordering;

use super::{
    Corruption, CpuChecker, IstFrame, Kind, MAX_DEPTH, Mode, cap_recursion, guard, mode, repairs,
    stamps, this,
};
use crate::arch::gdt::{KERNEL_CODE_SELECTOR, KERNEL_DATA_SELECTOR};
use crate::arch::percpu::{self, IstSlot};
use crate::arch::vectors::TrapFrame;
use crate::entry::frame::FRAME_WORDS;
use crate::entry::nmi::{self, slot};
use crate::entry::strategy::NMI_NESTING;

/// An all-zero frame, for calling frame-taking code outside an entry.
pub const EMPTY_FRAME: IstFrame = IstFrame {
    dr7: 0,
    applied: 0,
    regs: TrapFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: 0,
        rsi: 0,
        rdx: 0,
        rcx: 0,
        rbx: 0,
        rax: 0,
        vector: 0,
        error_code: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    },
};

/// The name of each word of `IstFrame`, lowest address first.
pub(super) const WORD_NAMES: [&str; FRAME_WORDS] = [
    "dr7",
    "applied",
    "r15",
    "r14",
    "r13",
    "r12",
    "r11",
    "r10",
    "r9",
    "r8",
    "rbp",
    "rdi",
    "rsi",
    "rdx",
    "rcx",
    "rbx",
    "rax",
    "vector",
    "error_code",
    "rip",
    "cs",
    "rflags",
    "rsp",
    "ss",
];

/// The frame as its 24 words, lowest address first (the `WORD_NAMES` order).
fn words(f: &IstFrame) -> [u64; FRAME_WORDS] {
    let r = &f.regs;
    [
        f.dr7,
        f.applied,
        r.r15,
        r.r14,
        r.r13,
        r.r12,
        r.r11,
        r.r10,
        r.r9,
        r.r8,
        r.rbp,
        r.rdi,
        r.rsi,
        r.rdx,
        r.rcx,
        r.rbx,
        r.rax,
        r.vector,
        r.error_code,
        r.rip,
        r.cs,
        r.rflags,
        r.rsp,
        r.ss,
    ]
}

/// IST slot of the vectors that have one.
fn slot_of(vector: u64) -> IstSlot {
    IstSlot::from_vector(vector as u8).unwrap_or(IstSlot::Mc)
}

/// Entry half, called by the stubs before anything that could nest.
pub extern "C" fn ist_enter(frame: &mut IstFrame) {
    let start = stamps::now();
    let cpu = percpu::this();
    let checker = super::checker(cpu.index());
    let slot = slot_of(frame.regs.vector);
    let v = slot as usize;
    let depth = checker.depth[v].fetch_add(1, Ordering::Relaxed) as usize;
    checker.max_depth[v].fetch_max(depth as u32 + 1, Ordering::Relaxed);
    if mode() != Mode::Off {
        enter_checks(cpu, checker, frame, slot, depth);
    }
    stamps::entered(cpu.index(), v, depth, start);
}

fn enter_checks(
    cpu: &percpu::PerCpu,
    checker: &CpuChecker,
    frame: &mut IstFrame,
    slot: IstSlot,
    depth: usize,
) {
    let v = slot as usize;
    if depth >= MAX_DEPTH {
        checker.record(Corruption {
            kind: Kind::DepthOverflow,
            vector: slot.vector(),
            field: "depth",
            expected: MAX_DEPTH as u64,
            seen: depth as u64 + 1,
            depth: depth as u8,
        });
        return;
    }
    // SAFETY: slot [v][depth] belongs to this level (rule on CpuChecker).
    unsafe { *checker.shadow[v][depth].get() = *frame };

    let stacks = cpu.ist_stacks();
    let interrupted_rsp = frame.regs.rsp;
    if stacks[v].contains(interrupted_rsp) {
        // Re-entry on our own IST stack. If this frame reaches up into the live
        // part of the interrupted handler's stack, the CPU has just overwritten it.
        let frame_top = frame as *const IstFrame as u64 + core::mem::size_of::<IstFrame>() as u64;
        checker.record(Corruption {
            kind: if frame_top > interrupted_rsp {
                Kind::Overlap
            } else {
                Kind::Reentry
            },
            vector: slot.vector(),
            field: "rsp",
            expected: stacks[v].top,
            seen: interrupted_rsp,
            depth: depth as u8,
        });
    }
    guard::take(checker, &stacks, v, depth, interrupted_rsp);
    cap_recursion(v, depth);
}

/// Exit half, called by the stubs just before they restore registers and IRET.
pub extern "C" fn ist_exit(frame: &mut IstFrame) {
    let start = stamps::now();
    let checker = this();
    let slot = slot_of(frame.regs.vector);
    let v = slot as usize;
    let depth = checker.depth[v].load(Ordering::Relaxed) as usize - 1;
    if depth < MAX_DEPTH && mode() != Mode::Off {
        // Mutant checker-no-guard: the guarded stack is never compared.
        let mut damaged =
            !const { mutant::is(catalog::CHECKER_NO_GUARD) } && guard::check(checker, v, depth);
        damaged |= check_shadow(checker, slot, depth, frame);
        if slot == IstSlot::Nmi {
            damaged |= check_iret_copy(checker, depth, frame);
        }
        if damaged {
            checker.incident();
        }
    }
    checker.depth[v].fetch_sub(1, Ordering::Relaxed);
    stamps::exited(percpu::this().index(), v, depth, start);
}

/// Compares all 24 words; on a mismatch reports each differing word and, when
/// repairing, writes the whole copy back. True if anything differed.
fn check_shadow(checker: &CpuChecker, slot: IstSlot, depth: usize, frame: &mut IstFrame) -> bool {
    // SAFETY: slot [v][depth] is this level's.
    let shadow = unsafe { &*checker.shadow[slot as usize][depth].get() };
    let (a, b) = (shadow as *const IstFrame, frame as *const IstFrame);
    // SAFETY: both are whole frames of FRAME_WORDS words.
    if unsafe { super::words::same(a.cast(), b.cast(), FRAME_WORDS) } {
        return false; // all 24 words equal: nothing to name or repair
    }
    let (want, seen) = (words(shadow), words(frame));
    let mut mismatched = false;
    for ((name, expected), seen) in WORD_NAMES.iter().zip(want).zip(seen) {
        // Mutant checker-six-fields: RIP, CS, RFLAGS, RSP, SS, error code only.
        let skipped = const { mutant::is(catalog::CHECKER_SIX_FIELDS) }
            && !matches!(*name, "rip" | "cs" | "rflags" | "rsp" | "ss" | "error_code");
        if expected != seen && !skipped {
            mismatched = true;
            checker.record(Corruption {
                kind: Kind::FrameMismatch,
                vector: slot.vector(),
                field: name,
                expected,
                seen,
                depth: depth as u8,
            });
        }
    }
    if mismatched && repairs() {
        *frame = *shadow;
        checker.recovered.fetch_add(1, Ordering::Relaxed);
    }
    mismatched
}

const IRET_NAMES: [&str; 5] = ["iret_rip", "iret_cs", "iret_rflags", "iret_rsp", "iret_ss"];

/// The `linux` kernel-mode NMI: its final IRETQ uses the "iret" frame, which
/// must hold the outermost frame (this body's hardware words) or a repeat
/// request (RIP `repeat_nmi`, kernel CS/SS, RSP at the outermost copy), the
/// one thing a nested NMI may write there. True if it held anything else.
fn check_iret_copy(checker: &CpuChecker, depth: usize, frame: &IstFrame) -> bool {
    let top = percpu::this().ist_stack(IstSlot::Nmi).top;
    let frame_addr = frame as *const IstFrame as u64;
    let on_nmi_stack =
        frame_addr + core::mem::size_of::<IstFrame>() as u64 == top - slot::OUTERMOST_RIP + 40;
    if frame.applied & u64::from(NMI_NESTING) == 0 || !on_nmi_stack {
        return false; // the plain stub, or a ring-3 NMI on RSP0: no iret copy
    }
    let base = top - slot::IRET_RIP;
    // SAFETY: the five "iret" words (see `read`) and the frame's five hardware
    // words, RIP to SS, each contiguous. Equal: the copy holds the outermost
    // frame, the first thing the loop below accepts.
    if unsafe { super::words::same(base as *const u64, &raw const frame.regs.rip, 5) } {
        return false;
    }
    let read = |i: u64| {
        // SAFETY: the five words lie in this CPU's mapped IST_NMI stack, in the
        // "iret" slots this level's stub wrote (see nmi.rs).
        unsafe { core::ptr::read_volatile((base + i * 8) as *const u64) }
    };
    let r = &frame.regs;
    let outermost = [r.rip, r.cs, r.rflags, r.rsp, r.ss];
    let repeat = |iret: &[u64; 5]| {
        iret[0] == nmi::repeat_range().0
            && iret[1] == KERNEL_CODE_SELECTOR
            && iret[3] == top - slot::OUTERMOST_RIP
            && iret[4] == KERNEL_DATA_SELECTOR
    };
    // NMIs may be open here (after an early IRET): a nested NMI can rewrite
    // the copy between two of these reads, so a torn read is read again.
    let mut iret = [read(0), read(1), read(2), read(3), read(4)];
    loop {
        if iret == outermost || repeat(&iret) {
            return false;
        }
        let again = [read(0), read(1), read(2), read(3), read(4)];
        if again == iret {
            break;
        }
        iret = again;
    }
    for ((name, expected), seen) in IRET_NAMES.iter().zip(outermost).zip(iret) {
        if expected != seen {
            checker.record(Corruption {
                kind: Kind::FrameMismatch,
                vector: IstSlot::Nmi.vector(),
                field: name,
                expected,
                seen,
                depth: depth as u8,
            });
        }
    }
    if repairs() {
        for (i, word) in outermost.iter().enumerate() {
            // SAFETY: as for `read`; this level owns the copy until its IRETQ.
            unsafe { core::ptr::write_volatile((base + i as u64 * 8) as *mut u64, *word) };
        }
    }
    true
}

/// Lets a handler change its own frame legitimately (e.g. set RF) without the
/// checker calling it corruption: the change goes to the shadow too.
pub fn amend_rflags(frame: &mut IstFrame, set: u64) {
    frame.regs.rflags |= set;
    let checker = this();
    let v = slot_of(frame.regs.vector) as usize;
    let depth = checker.depth[v].load(Ordering::Relaxed) as usize - 1;
    if depth < MAX_DEPTH {
        // SAFETY: the slot is this level's.
        unsafe { (*checker.shadow[v][depth].get()).regs.rflags |= set };
    }
}
