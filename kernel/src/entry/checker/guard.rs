//! The guard: an IST entry that interrupted code on another IST stack copies
//! that stack's whole live part and compares it on its own exit.

use core::sync::atomic::Ordering;

use super::{Corruption, CpuChecker, Kind, repairs};
use crate::arch::percpu::{self, IST_COUNT, IST_STACK_SIZE, IstSlot, StackBounds};
use crate::entry::nmi::slot;
use crate::entry::strategy::{NMI_NESTING, applies};

/// Levels per vector that can guard: an interrupter guards once per level,
/// and two levels of one vector interrupting other stacks is already more
/// than any scenario builds. A deeper level reports that it could not guard.
pub(super) const GUARD_DEPTH: usize = 2;
const GUARD_BYTES: usize = IST_STACK_SIZE as usize;
/// `Guard.stack` when the level guards nothing. Zero, so that a checker in
/// zeroed memory starts with every level guarding nothing (`attach`).
const NO_STACK: usize = 0;

pub(super) struct Guard {
    /// The guarded IST slot plus one; `NO_STACK` when none.
    stack: usize,
    start: u64,
    len: usize,
    bytes: [u8; GUARD_BYTES],
}

/// At entry of level `depth` of vector `v`: copy the interrupted IST stack, if
/// the interrupted RSP lies on one, from RSP up to its top (the whole live part,
/// whose top words are the victim's hardware frame).
pub(super) fn take(
    checker: &CpuChecker,
    stacks: &[StackBounds; IST_COUNT],
    v: usize,
    depth: usize,
    interrupted_rsp: u64,
) {
    let victim = (0..IST_COUNT).find(|&s| s != v && stacks[s].contains(interrupted_rsp));
    let Some(slot) = checker.guards[v].get(depth) else {
        if let Some(s) = victim {
            checker.record(Corruption {
                kind: Kind::DepthOverflow,
                vector: IstSlot::ALL[s].vector(),
                field: "guard",
                expected: GUARD_DEPTH as u64,
                seen: depth as u64 + 1,
                depth: depth as u8,
            });
        }
        return;
    };
    // SAFETY: the guard slot is this level's (rule on CpuChecker).
    let guard = unsafe { &mut *slot.get() };
    guard.stack = NO_STACK;
    let Some(s) = victim else { return };
    let len = (stacks[s].top - interrupted_rsp) as usize;
    // SAFETY: [rsp, top) lies inside a mapped IST stack of this CPU, no longer
    // than the stack (so than the buffer), and the context using it is
    // suspended under us.
    unsafe {
        core::ptr::copy_nonoverlapping(interrupted_rsp as *const u8, guard.bytes.as_mut_ptr(), len)
    };
    guard.stack = s + 1;
    guard.start = interrupted_rsp;
    guard.len = len;
}

/// The field a word at `offset` below an IST top belongs to, if it is part of
/// the hardware frame of that stack's outermost handler.
fn frame_field(offset_from_top: u64) -> &'static str {
    match offset_from_top {
        40 => "rip",
        32 => "cs",
        24 => "rflags",
        16 => "rsp",
        8 => "ss",
        _ => "stack",
    }
}

/// The words of the `linux` IST_NMI top that a nested NMI writes by design
/// (`nmi.rs`): its own hardware frame over the dead "original" one, the rdx
/// scratch, and the "iret" frame it points at `repeat_nmi`. A handler that
/// interrupted the NMI on another stack cannot call them clobbered; the
/// "iret" frame is judged at that NMI's own exit (`check_iret_copy`), and
/// "NMI executing" and the "outermost" copy stay guarded.
fn nested_nmi_scratch(offset_from_top: u64) -> bool {
    (8..=slot::RDX).contains(&offset_from_top)
        || (slot::EXECUTING + 8..=slot::IRET_RIP).contains(&offset_from_top)
}

/// At exit: compare every guarded word, report (the hardware frame words each,
/// the first other word), repair when repairing. True if anything changed.
pub(super) fn check(checker: &CpuChecker, v: usize, depth: usize) -> bool {
    let Some(slot) = checker.guards[v].get(depth) else {
        return false;
    };
    // SAFETY: the guard slot is this level's.
    let guard = unsafe { &*slot.get() };
    if guard.stack == NO_STACK {
        return false;
    }
    let saved = guard.bytes[..guard.len].as_ptr().cast::<u64>();
    // SAFETY: the copy holds `len` bytes; [start, start + len) lies in the
    // guarded, mapped IST stack (as for the reads below).
    if unsafe { super::words::same(saved, guard.start as *const u64, guard.len / 8) } {
        return false; // every guarded word as it was: nothing to name or repair
    }
    let victim = guard.stack - 1;
    let top = percpu::this().ist_stacks()[victim].top;
    let nested_nmi_slots = victim == IstSlot::Nmi as usize && applies(NMI_NESTING);
    let mut clobbered = false;
    for (offset, chunk) in guard.bytes[..guard.len].chunks_exact(8).enumerate() {
        let addr = guard.start + offset as u64 * 8;
        if nested_nmi_slots && nested_nmi_scratch(top - addr) {
            continue;
        }
        let field = frame_field(top - addr);
        let expected = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        // SAFETY: the address lies in the guarded, mapped IST stack.
        let seen = unsafe { core::ptr::read_volatile(addr as *const u64) };
        if expected == seen {
            continue;
        }
        if !clobbered || field != "stack" {
            checker.record(Corruption {
                kind: Kind::StackClobbered,
                vector: IstSlot::ALL[victim].vector(),
                field,
                expected,
                seen,
                depth: depth as u8,
            });
        }
        clobbered = true;
        if repairs() {
            // SAFETY: as above; the owner of that stack is suspended under us.
            unsafe { core::ptr::write_volatile(addr as *mut u64, expected) };
        }
    }
    if clobbered && repairs() {
        checker.recovered.fetch_add(1, Ordering::Relaxed);
    }
    clobbered
}
