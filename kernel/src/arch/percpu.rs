//! Per-CPU state, reached through GS: `gs:[0]` holds the address of the running
//! CPU's `PerCpu`, so exception paths find their CPU with one load and no lock.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use x2apic::lapic::LocalApic;
use x86_64::structures::gdt::GlobalDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;

use super::MAX_CPUS;

/// IST slots (1-based, as IDT gates name them). Every vector that can nest has
/// its own stack: one stack shared by #DB, NMI, #DF and #MC is the bug the
/// project exists to catch.
pub const IST_DB: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_DF: u8 = 3;
pub const IST_MC: u8 = 4;
pub const IST_COUNT: usize = 4;

/// The IST stacks by name, as indexes into `ist_stacks()` (slot `n - 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum IstSlot {
    Db = 0,
    Nmi = 1,
    Df = 2,
    Mc = 3,
}

impl IstSlot {
    pub const ALL: [IstSlot; IST_COUNT] = [Self::Db, Self::Nmi, Self::Df, Self::Mc];

    /// The exception vector that runs on this stack.
    pub const fn vector(self) -> u8 {
        match self {
            Self::Db => 1,
            Self::Nmi => 2,
            Self::Df => 8,
            Self::Mc => 18,
        }
    }

    pub fn from_vector(vector: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.vector() == vector)
    }
}
/// 16 KiB per IST stack: room for `shift-only`/`linux-4.19` to lower the #DB pointer three
/// times, small enough that an overflow into the guard page is quick to provoke.
pub const IST_STACK_PAGES: u64 = 4;
pub const IST_STACK_SIZE: u64 = IST_STACK_PAGES * 4096;
/// Where IST1 (the #DB stack pointer) sits, from the start of `PerCpu`: the
/// `shift-only` stub adjusts it through `gs:[0]`. IST1 is at byte 36 of the TSS.
pub const TSS_IST1_OFFSET: usize = core::mem::offset_of!(PerCpu, tss) + 36;
/// Where RSP0 (the ring-0 stack a ring-3 event switches to) sits, from the
/// start of `PerCpu`: entries that leave their IST stack for it read it through
/// `gs:`. RSP0 is at byte 4 of the TSS.
pub const TSS_RSP0_OFFSET: usize = core::mem::offset_of!(PerCpu, tss) + 4;
/// Per-CPU words the entry layer's asm counts in (`inc qword ptr gs:[..]`, one
/// instruction, so no interrupt on this CPU can tear it); their meaning is the
/// entry layer's.
pub const ENTRY_WORDS: usize = 32;
pub const ENTRY_WORDS_OFFSET: usize = core::mem::offset_of!(PerCpu, entry_words);

/// Bounds of one stack: `bottom` is the lowest mapped byte, `top` one past the
/// highest; the page below `bottom` is an unmapped guard page.
#[derive(Clone, Copy, Debug, Default)]
pub struct StackBounds {
    pub bottom: u64,
    pub top: u64,
}

impl StackBounds {
    /// Whether `addr` lies on this stack.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.bottom && addr < self.top
    }
}

#[repr(C)]
pub struct PerCpu {
    /// `gs:[0]`: this structure's own address.
    self_ptr: AtomicU64,
    /// `gs:[8]`: the CPU's index (0 = the CPU that booted).
    index: AtomicU64,
    lapic_id: AtomicU32,
    online: AtomicBool,
    pub nmi_count: AtomicU64,
    pub entry_words: [AtomicU64; ENTRY_WORDS],
    ist: UnsafeCell<[StackBounds; IST_COUNT]>,
    ring0: UnsafeCell<StackBounds>,
    pub(super) tss: UnsafeCell<TaskStateSegment>,
    pub(super) gdt: UnsafeCell<GlobalDescriptorTable>,
    pub(super) lapic: UnsafeCell<Option<LocalApic>>,
}

const _: () = assert!(core::mem::offset_of!(PerCpu, self_ptr) == 0);
const _: () = assert!(core::mem::offset_of!(PerCpu, index) == 8);
const _: () = assert!(core::mem::offset_of!(TaskStateSegment, interrupt_stack_table) == 36);
const _: () = assert!(core::mem::offset_of!(TaskStateSegment, privilege_stack_table) == 4);

// SAFETY: the atomics are shared; the UnsafeCells are written by the BSP before
// the CPU starts (ist, tss, gdt) and afterwards touched only by the owning CPU
// (lapic), which `this()` guarantees by construction.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new() -> Self {
        Self {
            self_ptr: AtomicU64::new(0),
            index: AtomicU64::new(0),
            lapic_id: AtomicU32::new(0),
            online: AtomicBool::new(false),
            nmi_count: AtomicU64::new(0),
            entry_words: [const { AtomicU64::new(0) }; ENTRY_WORDS],
            ist: UnsafeCell::new([StackBounds { bottom: 0, top: 0 }; IST_COUNT]),
            ring0: UnsafeCell::new(StackBounds { bottom: 0, top: 0 }),
            tss: UnsafeCell::new(TaskStateSegment::new()),
            gdt: UnsafeCell::new(GlobalDescriptorTable::new()),
            lapic: UnsafeCell::new(None),
        }
    }

    pub fn index(&self) -> usize {
        self.index.load(Ordering::Relaxed) as usize
    }

    pub fn lapic_id(&self) -> u32 {
        self.lapic_id.load(Ordering::Relaxed)
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    pub(super) fn set_online(&self) {
        self.online.store(true, Ordering::Release);
    }

    /// The stack ring-3 events switch to (TSS RSP0): empty whenever ring 3 runs.
    pub fn ring0_stack(&self) -> StackBounds {
        // SAFETY: written once by the BSP before the CPU starts, read-only after.
        unsafe { *self.ring0.get() }
    }

    /// The TSS and the GDT of this CPU, as byte ranges (the deny-list refuses
    /// breakpoints on them, as Linux's `within_cpu_entry` does).
    pub fn descriptor_ranges(&self) -> [(u64, u64); 3] {
        let range = |p: u64, len: usize| (p, p + len as u64);
        [
            range(
                self.tss.get() as u64,
                core::mem::size_of::<TaskStateSegment>(),
            ),
            range(
                self.gdt.get() as u64,
                core::mem::size_of::<GlobalDescriptorTable>(),
            ),
            range(self as *const Self as u64, core::mem::size_of::<Self>()),
        ]
    }

    /// One IST stack, by name.
    pub fn ist_stack(&self, slot: IstSlot) -> StackBounds {
        self.ist_stacks()[slot as usize]
    }

    /// Where the TSS points `slot` now (its stack's top unless shifted).
    pub fn ist_pointer(&self, slot: IstSlot) -> u64 {
        // SAFETY: a read of this CPU's own TSS (packed: the table is copied).
        let table = unsafe { (*self.tss.get()).interrupt_stack_table };
        table[slot as usize].as_u64()
    }

    /// Moves the TSS pointer of `slot` by `delta` bytes (Linux 4.19's
    /// `shift_ist`, from Rust). Only on the CPU itself.
    pub fn shift_ist(&self, slot: IstSlot, delta: i64) {
        // SAFETY: only this CPU uses its TSS, and the CPU reads the pointer only
        // when it delivers an event through that IST slot, which it cannot be
        // doing while it executes this store.
        unsafe {
            let tss = self.tss.get();
            // The TSS is packed: copy the table out, change it, write it back.
            let mut table = (*tss).interrupt_stack_table;
            let pointer = table[slot as usize].as_u64().wrapping_add_signed(delta);
            table[slot as usize] = x86_64::VirtAddr::new(pointer);
            (*tss).interrupt_stack_table = table;
        }
    }

    /// The IST stacks; slot `n - 1` backs IST `n`.
    pub fn ist_stacks(&self) -> [StackBounds; IST_COUNT] {
        // SAFETY: written once by the BSP before the CPU starts, read-only after.
        unsafe { *self.ist.get() }
    }

    /// Puts every IST pointer back at its stack's top (after a #DF abandoned a
    /// handler that had moved one). Only on the CPU itself.
    pub fn reset_ist_pointers(&self) {
        // SAFETY: only this CPU uses its TSS, and it is running this code, not
        // delivering an event through the TSS at this instant.
        unsafe {
            let tss = &mut *self.tss.get();
            for (slot, stack) in (*self.ist.get()).iter().enumerate() {
                tss.interrupt_stack_table[slot] = x86_64::VirtAddr::new(stack.top);
            }
        }
    }

    /// Records identity and stacks; BSP only, before the CPU runs.
    pub(super) fn prepare(
        &self,
        index: usize,
        lapic_id: u32,
        ist: [StackBounds; IST_COUNT],
        ring0: StackBounds,
    ) {
        self.self_ptr
            .store(self as *const Self as u64, Ordering::Relaxed);
        self.index.store(index as u64, Ordering::Relaxed);
        self.lapic_id.store(lapic_id, Ordering::Relaxed);
        // SAFETY: the CPU that owns this slot is not running yet, so nothing else
        // reads or writes the stack table or the TSS.
        unsafe {
            *self.ist.get() = ist;
            *self.ring0.get() = ring0;
            let tss = &mut *self.tss.get();
            for (slot, stack) in ist.iter().enumerate() {
                tss.interrupt_stack_table[slot] = x86_64::VirtAddr::new(stack.top);
            }
            tss.privilege_stack_table[0] = x86_64::VirtAddr::new(ring0.top);
        }
    }
}

static PER_CPU: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

pub fn cpu(index: usize) -> &'static PerCpu {
    &PER_CPU[index]
}

/// Points GS at this CPU's slot. Must run on that CPU, before its IDT is live.
pub(super) fn install(index: usize) {
    // SAFETY: IA32_GS_BASE only changes what `gs:` addresses mean; the slot is a
    // static that lives for the whole run.
    unsafe {
        super::cpu::wrmsr(
            super::cpu::IA32_GS_BASE,
            &PER_CPU[index] as *const PerCpu as u64,
        )
    };
}

/// The running CPU's slot.
pub fn this() -> &'static PerCpu {
    let ptr: u64;
    // SAFETY: `install` ran on every CPU before any code that calls this; gs:[0]
    // then holds the address of a static `PerCpu`.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags));
        &*(ptr as *const PerCpu)
    }
}

/// The running CPU's index, or `None` before `install` (fatal paths use this).
pub fn try_index() -> Option<usize> {
    let base: u64;
    // SAFETY: reading IA32_GS_BASE has no side effects.
    unsafe {
        let (lo, hi): (u32, u32);
        core::arch::asm!("rdmsr", in("ecx") super::cpu::IA32_GS_BASE, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags));
        base = (u64::from(hi) << 32) | u64::from(lo);
    }
    let first = PER_CPU.as_ptr() as u64;
    let size = core::mem::size_of::<PerCpu>() as u64;
    (base >= first && base < first + size * MAX_CPUS as u64)
        .then(|| ((base - first) / size) as usize)
}
