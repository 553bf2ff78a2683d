//! The IST integrity checker.
//!
//! Two mechanisms, because a clobber can happen before the victim can look:
//! - Own shadow: every IST entry copies its whole `IstFrame` into a per-CPU,
//!   per-vector, per-depth slot before anything that can nest, and compares the
//!   frame it is about to IRET through with that copy on exit.
//! - Guard: when an IST entry finds that it interrupted code running on *another*
//!   IST stack (the interrupted RSP lies inside it), it copies the used part of
//!   that stack (interrupted RSP up to its top, which holds the victim's hardware
//!   frame) and compares it again on its own exit. This catches the NMI that lands
//!   on the first instruction of a #DB handler, before the #DB could take its own
//!   shadow, and whose handler then raises a second #DB on the same IST stack.
//!
//! A mismatch is a `Corruption` record (vector, field, expected, seen) in a
//! per-CPU ring that normal code drains later. In `recover` mode the copy is
//! written back, so the interrupted code resumes as if nothing had happened and
//! the run goes on counting.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::arch::MAX_CPUS;
use crate::arch::debugreg;
use crate::arch::percpu::{self, IST_COUNT, StackBounds};
use crate::arch::vectors::TrapFrame;

/// The frame the IST stubs build; see `stubs.rs` for the picture.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IstFrame {
    pub dr7: u64,
    pub applied: u64,
    pub regs: TrapFrame,
}
const _: () = assert!(core::mem::size_of::<IstFrame>() == 24 * 8);
const _: () = assert!(
    core::mem::offset_of!(IstFrame, regs) + core::mem::offset_of!(TrapFrame, rflags) == 21 * 8
);

pub const MAX_DEPTH: usize = 4;
/// #DB levels allowed before the checker disarms every breakpoint on the CPU, so
/// that a breakpoint in the entry path recurses a bounded number of times.
pub const RECURSION_CAP: usize = 3;
const GUARD_BYTES: usize = 4096;
const EVENT_SLOTS: usize = 32;
const NO_STACK: usize = usize::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The frame an IST handler was about to IRET through differed from its shadow.
    FrameMismatch,
    /// An interrupted IST stack changed under the handler that interrupted it.
    StackClobbered,
    /// An IST entry interrupted code on its own IST stack.
    Reentry,
    /// More nesting than the checker has slots for.
    DepthOverflow,
    /// An IST entry's frame landed on the live stack of the handler it
    /// interrupted (same IST stack, no shift): that handler's state is gone.
    Overlap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Rip,
    Cs,
    Rflags,
    Rsp,
    Ss,
    ErrorCode,
    Stack,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Rip => "rip",
            Field::Cs => "cs",
            Field::Rflags => "rflags",
            Field::Rsp => "rsp",
            Field::Ss => "ss",
            Field::ErrorCode => "error_code",
            Field::Stack => "stack",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    pub kind: Kind,
    /// The vector whose frame or stack was hit.
    pub vector: u8,
    pub field: Field,
    pub expected: u64,
    pub seen: u64,
    pub depth: u8,
}

/// What the checker does on a mismatch (`checker=` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Report and write the copy back: the run goes on.
    Recover = 0,
    /// Report only.
    Strict = 1,
    /// A deliberately broken checker that neither sees nor repairs RIP: proves a
    /// test notices when the checker loses its teeth.
    IgnoreRip = 2,
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Recover as u8);

pub fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Strict,
        2 => Mode::IgnoreRip,
        _ => Mode::Recover,
    }
}

struct Guard {
    stack: usize,
    start: u64,
    len: usize,
    bytes: [u8; GUARD_BYTES],
}

/// Per-CPU checker state. Slot `[v][d]` belongs to the level-`d` handler of IST
/// vector `v` on this CPU: levels below it are suspended, levels above it have
/// not started or have finished, so exactly one context uses a slot at a time.
struct CpuChecker {
    depth: [AtomicU32; IST_COUNT],
    max_depth: [AtomicU32; IST_COUNT],
    shadow: [[UnsafeCell<IstFrame>; MAX_DEPTH]; IST_COUNT],
    guards: [[UnsafeCell<Guard>; MAX_DEPTH]; IST_COUNT],
    events: [UnsafeCell<Option<Corruption>>; EVENT_SLOTS],
    event_count: AtomicU32,
    counts: [AtomicU64; 5],
    recovered: AtomicU64,
}

// SAFETY: see the slot ownership rule on `CpuChecker`; the event ring hands each
// writer its own index through an atomic fetch_add.
unsafe impl Sync for CpuChecker {}

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

impl CpuChecker {
    const fn new() -> Self {
        Self {
            depth: [const { AtomicU32::new(0) }; IST_COUNT],
            max_depth: [const { AtomicU32::new(0) }; IST_COUNT],
            shadow: [const { [const { UnsafeCell::new(EMPTY_FRAME) }; MAX_DEPTH] }; IST_COUNT],
            guards: [const {
                [const {
                    UnsafeCell::new(Guard {
                        stack: NO_STACK,
                        start: 0,
                        len: 0,
                        bytes: [0; GUARD_BYTES],
                    })
                }; MAX_DEPTH]
            }; IST_COUNT],
            events: [const { UnsafeCell::new(None) }; EVENT_SLOTS],
            event_count: AtomicU32::new(0),
            counts: [const { AtomicU64::new(0) }; 5],
            recovered: AtomicU64::new(0),
        }
    }

    fn record(&self, event: Corruption) {
        self.counts[event.kind as usize].fetch_add(1, Ordering::Relaxed);
        let index = self.event_count.fetch_add(1, Ordering::Relaxed) as usize;
        if let Some(slot) = self.events.get(index) {
            // SAFETY: fetch_add gave this writer the only claim on `index`.
            unsafe { *slot.get() = Some(event) };
        }
    }
}

static CHECKERS: [CpuChecker; MAX_CPUS] = [const { CpuChecker::new() }; MAX_CPUS];

/// IST slot (0-based) of the vectors that have one.
pub fn ist_slot(vector: u64) -> usize {
    match vector {
        1 => 0,
        2 => 1,
        8 => 2,
        _ => 3,
    }
}

fn vector_of_slot(slot: usize) -> u8 {
    [1, 2, 8, 18][slot]
}

fn contains(stack: StackBounds, addr: u64) -> bool {
    addr >= stack.bottom && addr < stack.top
}

/// Entry half, called by the stubs before anything that could nest.
pub extern "C" fn ist_enter(frame: &mut IstFrame) {
    let cpu = percpu::this();
    let checker = &CHECKERS[cpu.index()];
    let v = ist_slot(frame.regs.vector);
    let depth = checker.depth[v].fetch_add(1, Ordering::Relaxed) as usize;
    checker.max_depth[v].fetch_max(depth as u32 + 1, Ordering::Relaxed);
    if depth >= MAX_DEPTH {
        checker.record(Corruption {
            kind: Kind::DepthOverflow,
            vector: vector_of_slot(v),
            field: Field::Stack,
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
    if contains(stacks[v], interrupted_rsp) {
        // Re-entry on our own IST stack. If this frame reaches up into the live
        // part of the interrupted handler's stack, the CPU has just overwritten it.
        let frame_top = frame as *const IstFrame as u64 + core::mem::size_of::<IstFrame>() as u64;
        let kind = if frame_top > interrupted_rsp {
            Kind::Overlap
        } else {
            Kind::Reentry
        };
        checker.record(Corruption {
            kind,
            vector: vector_of_slot(v),
            field: Field::Rsp,
            expected: stacks[v].top,
            seen: interrupted_rsp,
            depth: depth as u8,
        });
    }
    // SAFETY: as above, the guard slot is this level's.
    let guard = unsafe { &mut *checker.guards[v][depth].get() };
    guard.stack = NO_STACK;
    if let Some(s) = (0..IST_COUNT).find(|&s| s != v && contains(stacks[s], interrupted_rsp)) {
        let len = ((stacks[s].top - interrupted_rsp) as usize).min(GUARD_BYTES);
        // SAFETY: [rsp, rsp + len) lies inside a mapped IST stack of this CPU,
        // and the context using it is suspended under us.
        unsafe {
            core::ptr::copy_nonoverlapping(
                interrupted_rsp as *const u8,
                guard.bytes.as_mut_ptr(),
                len,
            )
        };
        guard.stack = s;
        guard.start = interrupted_rsp;
        guard.len = len;
    }
    if v == 0 && depth + 1 >= RECURSION_CAP {
        debugreg::write_dr7(0);
    }
}

/// Exit half, called by the stubs just before they restore registers and IRET.
pub extern "C" fn ist_exit(frame: &mut IstFrame) {
    let checker = &CHECKERS[percpu::this().index()];
    let v = ist_slot(frame.regs.vector);
    let depth = checker.depth[v].load(Ordering::Relaxed) as usize - 1;
    if depth < MAX_DEPTH {
        check_guard(checker, v, depth);
        check_shadow(checker, v, depth, frame);
    }
    checker.depth[v].fetch_sub(1, Ordering::Relaxed);
}

fn check_shadow(checker: &CpuChecker, v: usize, depth: usize, frame: &mut IstFrame) {
    // SAFETY: slot [v][depth] is this level's.
    let shadow = unsafe { &*checker.shadow[v][depth].get() };
    let ignore_rip = mode() == Mode::IgnoreRip;
    let (want, seen) = (&shadow.regs, &frame.regs);
    let fields = [
        (Field::Rip, want.rip, seen.rip),
        (Field::Cs, want.cs, seen.cs),
        (Field::Rflags, want.rflags, seen.rflags),
        (Field::Rsp, want.rsp, seen.rsp),
        (Field::Ss, want.ss, seen.ss),
        (Field::ErrorCode, want.error_code, seen.error_code),
    ];
    let mut mismatched = false;
    for (field, expected, seen) in fields {
        if expected != seen && !(ignore_rip && field == Field::Rip) {
            mismatched = true;
            checker.record(Corruption {
                kind: Kind::FrameMismatch,
                vector: vector_of_slot(v),
                field,
                expected,
                seen,
                depth: depth as u8,
            });
        }
    }
    if mismatched && mode() != Mode::Strict {
        let rip = frame.regs.rip;
        *frame = *shadow;
        if ignore_rip {
            frame.regs.rip = rip;
        }
        checker.recovered.fetch_add(1, Ordering::Relaxed);
    }
}

/// The field a word at `offset` below an IST top belongs to, if it is part of
/// the hardware frame of that stack's outermost handler.
fn frame_field(offset_from_top: u64) -> Field {
    match offset_from_top {
        40 => Field::Rip,
        32 => Field::Cs,
        24 => Field::Rflags,
        16 => Field::Rsp,
        8 => Field::Ss,
        _ => Field::Stack,
    }
}

fn check_guard(checker: &CpuChecker, v: usize, depth: usize) {
    // SAFETY: the guard slot is this level's.
    let guard = unsafe { &*checker.guards[v][depth].get() };
    if guard.stack == NO_STACK {
        return;
    }
    let top = percpu::this().ist_stacks()[guard.stack].top;
    let ignore_rip = mode() == Mode::IgnoreRip;
    let mut clobbered = false;
    for offset in (0..guard.len).step_by(8) {
        let addr = guard.start + offset as u64;
        let field = frame_field(top - addr);
        if ignore_rip && field == Field::Rip {
            continue;
        }
        let expected =
            u64::from_ne_bytes(guard.bytes[offset..offset + 8].try_into().unwrap_or([0; 8]));
        // SAFETY: the address lies in the guarded, mapped IST stack.
        let seen = unsafe { core::ptr::read_volatile(addr as *const u64) };
        if expected != seen {
            if !clobbered || field != Field::Stack {
                checker.record(Corruption {
                    kind: Kind::StackClobbered,
                    vector: vector_of_slot(guard.stack),
                    field,
                    expected,
                    seen,
                    depth: depth as u8,
                });
            }
            clobbered = true;
            if mode() != Mode::Strict {
                // SAFETY: as above; the owner of that stack is suspended under us.
                unsafe { core::ptr::write_volatile(addr as *mut u64, expected) };
            }
        }
    }
    if clobbered && mode() != Mode::Strict {
        checker.recovered.fetch_add(1, Ordering::Relaxed);
    }
}

/// Lets a handler change its own frame legitimately (e.g. set RF) without the
/// checker calling it corruption: the change goes to the shadow too.
pub fn amend_rflags(frame: &mut IstFrame, set: u64) {
    frame.regs.rflags |= set;
    let checker = &CHECKERS[percpu::this().index()];
    let v = ist_slot(frame.regs.vector);
    let depth = checker.depth[v].load(Ordering::Relaxed) as usize - 1;
    if depth < MAX_DEPTH {
        // SAFETY: the slot is this level's.
        unsafe { (*checker.shadow[v][depth].get()).regs.rflags |= set };
    }
}

/// Counts one CPU's checker gathered since the last `take_report`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    pub frame_mismatches: u64,
    pub stack_clobbers: u64,
    pub reentries: u64,
    pub depth_overflows: u64,
    pub overlaps: u64,
    pub recovered: u64,
    pub max_depth: [u32; IST_COUNT],
}

impl Report {
    pub fn corruptions(&self) -> u64 {
        self.frame_mismatches + self.stack_clobbers + self.overlaps
    }
}

/// Drains one CPU's counters and calls `each` for every recorded event (the
/// ring keeps the first `EVENT_SLOTS`). Normal context only, with that CPU idle
/// in its handlers (no IST handler running there).
pub fn take_report(cpu: usize, mut each: impl FnMut(&Corruption)) -> Report {
    let checker = &CHECKERS[cpu];
    let events = (checker.event_count.swap(0, Ordering::Relaxed) as usize).min(EVENT_SLOTS);
    for slot in &checker.events[..events] {
        // SAFETY: no IST handler runs on that CPU now, so nobody writes the ring.
        if let Some(event) = unsafe { (*slot.get()).take() } {
            each(&event);
        }
    }
    let take = |i: usize| checker.counts[i].swap(0, Ordering::Relaxed);
    Report {
        frame_mismatches: take(Kind::FrameMismatch as usize),
        stack_clobbers: take(Kind::StackClobbered as usize),
        reentries: take(Kind::Reentry as usize),
        depth_overflows: take(Kind::DepthOverflow as usize),
        overlaps: take(Kind::Overlap as usize),
        recovered: checker.recovered.swap(0, Ordering::Relaxed),
        max_depth: core::array::from_fn(|v| checker.max_depth[v].swap(0, Ordering::Relaxed)),
    }
}

/// Forgets every IST level on `cpu` after a #DF abandoned them, and puts the
/// TSS IST pointers back at their tops (a `shift-ist` #DB may have lowered one).
pub fn reset_after_abandon(cpu: usize) {
    let checker = &CHECKERS[cpu];
    for v in [0, 1, 3] {
        checker.depth[v].store(0, Ordering::Relaxed);
    }
    percpu::cpu(cpu).reset_ist_pointers();
    debugreg::reset();
}

const PAINT: u64 = 0x5a5a_5a5a_5a5a_5a5a;
const CANARY: u64 = 0xc0ff_ee00_dead_beef;
const CANARY_WORDS: u64 = 4;

/// Fills a fresh stack with paint and puts canaries at its bottom.
pub fn paint(stack: StackBounds) {
    for addr in (stack.bottom..stack.top).step_by(8) {
        let value = if addr < stack.bottom + CANARY_WORDS * 8 {
            CANARY
        } else {
            PAINT
        };
        // SAFETY: the stack is mapped, owned by a CPU that has not started yet.
        unsafe { core::ptr::write_volatile(addr as *mut u64, value) };
    }
}

/// How deep `stack` has ever been used (bytes below its top), and whether its
/// canaries are intact.
pub fn stack_usage(stack: StackBounds) -> (u64, bool) {
    let read = |addr: u64| {
        // SAFETY: the stack is mapped for the whole run.
        unsafe { core::ptr::read_volatile(addr as *const u64) }
    };
    let canaries = (0..CANARY_WORDS).all(|i| read(stack.bottom + i * 8) == CANARY);
    let first_used = (stack.bottom + CANARY_WORDS * 8..stack.top)
        .step_by(8)
        .find(|&a| read(a) != PAINT);
    (first_used.map_or(0, |a| stack.top - a), canaries)
}
