//! The IDT: one table shared by all CPUs (the per-CPU part, which IST stack a
//! vector lands on, lives in each CPU's TSS). Gates are interrupt gates, so IF is
//! cleared on entry; #DB, NMI, #DF and #MC each get their own IST slot.

use core::cell::UnsafeCell;

const INTERRUPT_GATE: u8 = 0x8e; // present, DPL 0, 64-bit interrupt gate
const USER_GATE: u8 = 0xee; //      present, DPL 3: ring 3 may use `int n` on it
const KERNEL_CS: u16 = 0x08;

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}
const _: () = assert!(core::mem::size_of::<Gate>() == 16);

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn new(handler: u64, ist: u8) -> Gate {
        Self::with_type(handler, ist, INTERRUPT_GATE)
    }

    fn with_type(handler: u64, ist: u8, type_attr: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist,
            type_attr,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt(UnsafeCell<[Gate; 256]>);

// SAFETY: the table is written by the BSP in `build` before any CPU loads it and
// is read-only afterwards (the CPU reads it on every event).
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([Gate::MISSING; 256]));
/// Linux 4.19's `debug_idt_table`: a copy of the IDT whose #DB and #BP gates
/// use no IST, so an event raised while it is loaded stays on the current stack.
static DEBUG_IDT: Idt = Idt(UnsafeCell::new([Gate::MISSING; 256]));

/// Points `vector` at `handler` on IST slot `ist` (0 = no IST). The entry layer
/// installs its stubs with it; BSP only, before the APs start.
pub fn set_gate(vector: u8, handler: u64, ist: u8) {
    // SAFETY: only the BSP writes gates, before any AP runs; a 16-byte gate is
    // written whole before the vector can next fire on this CPU (interrupts off,
    // and the NMI/#DB gates are installed before any NMI or breakpoint is armed).
    unsafe { (*IDT.0.get())[vector as usize] = Gate::new(handler, ist) };
}

/// Points `vector` at `handler` with DPL 3, so that ring 3 may raise it with
/// `int n` (no IST). BSP only, before the APs start.
pub fn set_user_gate(vector: u8, handler: u64) {
    // SAFETY: as in `set_gate`: the BSP writes a whole gate before anything can
    // raise this vector.
    unsafe { (*IDT.0.get())[vector as usize] = Gate::with_type(handler, 0, USER_GATE) };
}

/// Lets ring 3 use `int3`/`int 3` (DPL 3, the default) or not (DPL 0: both
/// forms then raise #GP from ring 3). `int3_forms` flips it; ICEBP ignores it.
pub fn set_breakpoint_gate_user(user: bool) {
    let type_attr = if user { USER_GATE } else { INTERRUPT_GATE };
    // SAFETY: only the test CPU raises #BP while this runs; one byte of one gate
    // of each table changes, and the gates stay valid either way.
    unsafe {
        (*IDT.0.get())[3].type_attr = type_attr;
        (*DEBUG_IDT.0.get())[3].type_attr = type_attr;
    }
}

/// Copies the IDT into the debug IDT, #DB and #BP without IST. BSP only,
/// after the entry layer installed its gates and before the APs start.
pub fn build_debug() {
    // SAFETY: no CPU has loaded the debug IDT yet, and the IDT is no longer
    // written (its gates are final), so both are read or written by this CPU only.
    unsafe {
        let debug = &mut *DEBUG_IDT.0.get();
        *debug = *IDT.0.get();
        debug[1].ist = 0;
        debug[3].ist = 0;
    }
}

fn load_table(table: &'static Idt) {
    let pointer = x86_64::structures::DescriptorTablePointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: x86_64::VirtAddr::new(table.0.get() as u64),
    };
    // SAFETY: both tables are statics filled before any CPU loads them; their
    // gates point at the stubs.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}

/// Loads the shared IDT on the running CPU.
pub fn load() {
    load_table(&IDT);
}

/// Loads the debug IDT on the running CPU (`debug_stack_set_zero`); `load`
/// goes back (`debug_stack_reset`).
pub fn load_debug() {
    load_table(&DEBUG_IDT);
}

/// Whether the running CPU has the debug IDT loaded (SIDT): a #DB raised now
/// goes through its gate without IST.
pub fn debug_loaded() -> bool {
    x86_64::instructions::tables::sidt().base.as_u64() == DEBUG_IDT.0.get() as u64
}

/// Both IDTs, as byte ranges (the deny-list refuses breakpoints on them).
pub fn ranges() -> [(u64, u64); 2] {
    let size = core::mem::size_of::<[Gate; 256]>() as u64;
    [IDT.0.get() as u64, DEBUG_IDT.0.get() as u64].map(|p| (p, p + size))
}
