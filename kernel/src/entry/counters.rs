//! What the entry code counts itself, per CPU, in asm: one `inc qword ptr
//! gs:[..]` per branch taken. A scenario proves its hazard from the victim's
//! own side with these, never from what a sender believes it sent.

use core::sync::atomic::Ordering;

use crate::arch::percpu::{self, ENTRY_WORDS, ENTRY_WORDS_OFFSET};

/// One counter: its index among the per-CPU entry words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Every NMI, at the first instruction of its stub.
    NmiEntered = 0,
    /// NMIs that came from ring 3 (`linux`: the simple path on RSP0).
    NmiFromUser,
    /// Kernel-mode NMIs the nested-NMI asm took as first (`first_nmi`).
    NmiFirst,
    /// Nested: the interrupted RIP lay in `repeat_nmi..end_repeat_nmi`.
    NmiNestedInRepeat,
    /// Nested: "NMI executing" was set.
    NmiNestedByFlag,
    /// Nested: the interrupted RSP lay on the NMI stack with DF set (the
    /// window between clearing "NMI executing" and IRETQ).
    NmiNestedByRsp,
    /// The interrupted RSP lay on the NMI stack with DF clear: a user-chosen
    /// RSP (the SYSCALL gap, CVE-2015-3291), taken as a first NMI.
    NmiUserRspOnStack,
    /// Passes through `repeat_nmi` (first passes plus repeats).
    NmiPasses,
    /// NMI bodies (`exc_nmi`) that found another one running and latched.
    NmiLatched,
    /// NMI bodies that ran the handler (each pass of the `exc_nmi` loop).
    NmiHandled,
    /// Every #DB, at the first instruction of its stub.
    DbEntered,
    /// #DBs from ring 3 that moved to RSP0 (`linux`, `linux-4.19`).
    DbFromUser,
    /// `linux-4.19`: an NMI found the #DB stack in use and loaded the debug
    /// IDT (`debug_stack_set_zero`).
    NmiDebugIdt,
    /// `linux-4.19`: #DB tracing hooks run under the debug IDT.
    DbTraceDebugIdt,
}

pub const COUNTERS: usize = 14;
const _: () = assert!(COUNTERS <= ENTRY_WORDS);

impl Counter {
    /// The `gs:` offset of this counter's word, for `inc qword ptr gs:[..]`.
    pub const fn gs_offset(self) -> usize {
        ENTRY_WORDS_OFFSET + self as usize * 8
    }
}

/// The current value of `counter` on `cpu`.
pub fn read(cpu: usize, counter: Counter) -> u64 {
    percpu::cpu(cpu).entry_words[counter as usize].load(Ordering::Relaxed)
}

/// All counters of `cpu` at once, for before/after differences.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot([u64; COUNTERS]);

impl Snapshot {
    pub fn take(cpu: usize) -> Self {
        let words = &percpu::cpu(cpu).entry_words;
        Self(core::array::from_fn(|i| words[i].load(Ordering::Relaxed)))
    }

    /// How much `counter` grew from `earlier` to `self`.
    pub fn since(&self, earlier: &Snapshot, counter: Counter) -> u64 {
        self.0[counter as usize].wrapping_sub(earlier.0[counter as usize])
    }
}
