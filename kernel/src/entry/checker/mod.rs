//! The IST integrity checker.
//!
//! Three mechanisms, because a clobber can happen before the victim can look:
//! - Shadow (`shadow.rs`): every IST entry copies its whole `IstFrame` (all 24
//!   words) into a per-CPU, per-vector, per-depth slot before anything that can
//!   nest, and compares every word with that copy on exit. The `linux` NMI's
//!   "iret" frame, which its final IRETQ uses, is checked too: it must hold the
//!   outermost frame or a repeat request, nothing else.
//! - Guard (`guard.rs`): an IST entry that interrupted code running on
//!   *another* IST stack copies that stack's whole live part (interrupted RSP up
//!   to the top) and compares it on its own exit. This catches the NMI that
//!   lands on the first instruction of a #DB handler, before the #DB could take
//!   its shadow, and whose handler raises a second #DB on the same IST stack.
//! - Paint and canaries (`paint.rs`): stack high-water marks, and canary words
//!   at each IST stack's bottom, judged when the checker is drained.
//!
//! An *incident* is one IST entry found damaged (frame, iret copy or guarded
//! stack), however many words differ; a damaged canary is one too. Each
//! differing word is a `Corruption` finding in a per-CPU ring that normal code
//! drains (`report.rs`). In `recover` mode the copy is written back, so the
//! interrupted code resumes as if nothing had happened and the run goes on
//! counting; `strict` only reports; `blind` repairs and records nothing (a
//! mutant: every `detect` test must then fail).

mod guard;
mod paint;
mod report;
mod shadow;
mod stamps;
mod words;

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

pub use super::frame::IstFrame;
use crate::arch::MAX_CPUS;
use crate::arch::debugreg;
use crate::arch::percpu::{self, IST_COUNT};
use crate::mm;
pub use paint::{paint, stack_usage};
pub use report::{Report, take_report};
pub use shadow::{EMPTY_FRAME, amend_rflags, ist_enter, ist_exit};
pub use stamps::{Stamps, reset_stamps, set_stamps, stamps};

pub const MAX_DEPTH: usize = 4;
/// #DB levels allowed before the checker disarms every breakpoint on the CPU, so
/// that a breakpoint in the entry path recurses a bounded number of times.
pub const RECURSION_CAP: usize = 3;
const EVENT_SLOTS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A frame word an IST handler was about to IRET through differed from
    /// its shadow (or the `linux` NMI's "iret" copy held something else).
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
    /// A canary word at the bottom of an IST stack changed.
    Canary,
}
const KINDS: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    pub kind: Kind,
    /// The vector whose frame or stack was hit.
    pub vector: u8,
    /// The word that differed: a register or frame slot name, "iret_rip"...,
    /// "stack" (a guarded word outside the hardware frame), "canary".
    pub field: &'static str,
    pub expected: u64,
    pub seen: u64,
    pub depth: u8,
}

impl Corruption {
    /// This finding as the wire's corruption event, seen on `cpu` (the
    /// iteration is the test's to say; 0 when unknown).
    pub fn on_wire(&self, cpu: usize) -> testkit::Corruption<'static> {
        testkit::Corruption {
            cpu: Some(cpu as u32),
            iteration: 0,
            vector: self.vector,
            field: self.field,
            expected: self.expected,
            seen: self.seen,
        }
    }
}

/// What the checker does on a mismatch (`checker=` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Report and write the copy back: the run goes on.
    Recover,
    /// Report only.
    Strict,
    /// A deliberately broken checker that repairs and records nothing: proves
    /// that every `detect` test notices when the checker loses its teeth.
    Blind,
    /// No shadow, guard or compare at all (depth is still counted): for
    /// benches that measure a strategy's cost without the checker's.
    Off,
}

impl Mode {
    /// Every mode, in declaration order: `MODE` holds an index into it.
    const ALL: [Mode; 4] = [Mode::Recover, Mode::Strict, Mode::Blind, Mode::Off];

    /// The mode a `checker=` word names (anything else: `Recover`).
    pub fn parse(word: Option<&str>) -> Mode {
        match word {
            Some("strict") => Mode::Strict,
            Some("blind") => Mode::Blind,
            Some("off") => Mode::Off,
            _ => Mode::Recover,
        }
    }
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Recover as u8);

pub fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

fn mode() -> Mode {
    let index = usize::from(MODE.load(Ordering::Relaxed));
    Mode::ALL.get(index).copied().unwrap_or(Mode::Recover)
}

/// Per-CPU checker state. Slot `[v][d]` belongs to the level-`d` handler of IST
/// vector `v` on this CPU: levels below it are suspended, levels above it have
/// not started or have finished, so exactly one context uses a slot at a time.
struct CpuChecker {
    depth: [AtomicU32; IST_COUNT],
    max_depth: [AtomicU32; IST_COUNT],
    shadow: [[UnsafeCell<IstFrame>; MAX_DEPTH]; IST_COUNT],
    guards: [[UnsafeCell<guard::Guard>; guard::GUARD_DEPTH]; IST_COUNT],
    event_count: AtomicU32,
    counts: [AtomicU64; KINDS],
    /// Damaged entries (and canaries) since the last drain; read live by
    /// scenarios that attribute incidents to iterations.
    incidents: AtomicU64,
    /// Incidents ever, never drained.
    incidents_total: AtomicU64,
    recovered: AtomicU64,
    /// The CPU this checker belongs to (its ring in `EVENTS`), set by `attach`.
    index: AtomicUsize,
}

// SAFETY: see the slot ownership rule on `CpuChecker`; the event ring hands each
// writer its own index through an atomic fetch_add.
unsafe impl Sync for CpuChecker {}

impl CpuChecker {
    fn record(&self, event: Corruption) {
        if mode() == Mode::Blind {
            return;
        }
        self.counts[event.kind as usize].fetch_add(1, Ordering::Relaxed);
        let index = self.event_count.fetch_add(1, Ordering::Relaxed) as usize;
        if let Some(slot) = events(self).get(index) {
            // SAFETY: fetch_add gave this writer the only claim on `index`.
            unsafe { *slot.get() = Some(event) };
        }
    }

    /// One damaged entry (however many words it lost).
    fn incident(&self) {
        if mode() == Mode::Blind {
            return;
        }
        self.incidents.fetch_add(1, Ordering::Relaxed);
        self.incidents_total.fetch_add(1, Ordering::Relaxed);
    }
}

/// Each CPU's checker, in zeroed memory `attach` gets at bring-up for the
/// CPUs the machine has: a static array for every possible CPU put 8.6 MB in
/// `.bss`, which QEMU's PVH loader copies into the guest on every boot (and
/// frees at exit). A `CpuChecker` is valid all-zero (no sentinel in it).
static CHECKERS: [AtomicPtr<CpuChecker>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// Bytes of one CPU's checker, for `attach`.
pub const STORAGE_BYTES: usize = core::mem::size_of::<CpuChecker>();

/// Gives CPU `cpu` its checker, in `storage` (at least `STORAGE_BYTES`,
/// zeroed by the allocator). Before any IST entry can run on that CPU.
pub fn attach(cpu: usize, storage: mm::Zeroed) {
    assert!(
        storage.bytes() >= STORAGE_BYTES,
        "checker storage too small"
    );
    assert!(
        storage
            .start()
            .is_multiple_of(core::mem::align_of::<CpuChecker>() as u64),
        "checker storage misaligned"
    );
    let checker = storage.start() as *mut CpuChecker;
    // SAFETY: `Zeroed` memory is mapped for the kernel's life, zero-filled,
    // large and aligned enough (checked above), and owned by nothing else; an
    // all-zero `CpuChecker` is an empty one (every field an atomic or a cell
    // whose empty value is zero: `EMPTY_FRAME`, `guard::NO_STACK`). Publishing it with Release
    // makes its `index` visible with it.
    unsafe { (*checker).index.store(cpu, Ordering::Relaxed) };
    CHECKERS[cpu].store(checker, Ordering::Release);
}

/// CPU `cpu`'s checker; `attach` gave it one before its first IST entry.
fn checker(cpu: usize) -> &'static CpuChecker {
    let checker = CHECKERS[cpu].load(Ordering::Acquire);
    assert!(!checker.is_null(), "no checker attached for cpu {cpu}");
    // SAFETY: `attach` published a pointer to zeroed, mapped memory that lives
    // as long as the kernel; shared access follows `CpuChecker`'s slot rule.
    unsafe { &*checker }
}

/// Each CPU's ring of findings, kept apart from `CHECKERS`: an empty slot is
/// not all-zero bytes. Same ownership as the rest: writers take an index
/// through `event_count`, the drain runs with no IST handler on that CPU.
struct Events([UnsafeCell<Option<Corruption>>; EVENT_SLOTS]);

// SAFETY: see the comment on `Events`.
unsafe impl Sync for Events {}

static EVENTS: [Events; MAX_CPUS] =
    [const { Events([const { UnsafeCell::new(None) }; EVENT_SLOTS]) }; MAX_CPUS];

/// The ring that belongs to `checker` (same index in both arrays).
fn events(checker: &CpuChecker) -> &'static [UnsafeCell<Option<Corruption>>; EVENT_SLOTS] {
    &EVENTS[checker.index.load(Ordering::Relaxed)].0
}

fn this() -> &'static CpuChecker {
    checker(percpu::this().index())
}

/// Incidents on `cpu` ever (never reset): scenarios take differences of it to
/// tell which iteration an incident belongs to.
pub fn incidents_total(cpu: usize) -> u64 {
    checker(cpu).incidents_total.load(Ordering::Relaxed)
}

/// Whether repairs are on (recover mode), for the paths that write copies back.
fn repairs() -> bool {
    mode() != Mode::Strict
}

/// Forgets every IST level on `cpu` after a #DF abandoned them, and puts the
/// TSS IST pointers back at their tops (a shifting #DB may have lowered one).
pub fn reset_after_abandon(cpu: usize) {
    let checker = checker(cpu);
    for (v, depth) in checker.depth.iter().enumerate() {
        if v != percpu::IstSlot::Df as usize {
            depth.store(0, Ordering::Relaxed);
        }
    }
    percpu::cpu(cpu).reset_ist_pointers();
    debugreg::reset();
}

/// Disarms breakpoints once #DB recursion reaches the cap (see RECURSION_CAP).
fn cap_recursion(v: usize, depth: usize) {
    if v == percpu::IstSlot::Db as usize && depth + 1 >= RECURSION_CAP {
        debugreg::write_dr7(0);
    }
}
