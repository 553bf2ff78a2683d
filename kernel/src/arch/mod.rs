//! Everything that touches the CPU directly: descriptor tables, IDT gates,
//! debug and control registers, the local APIC, SMP start-up, port I/O, and
//! the shapes the layers above share (`BootInfo`, vector numbers, `TrapFrame`).
//! The bottom layer: it imports nothing from the rest of the kernel. Unsafe
//! code and asm live here, in `entry/`, `boot/` and `mm/`; the rest of the
//! kernel calls the safe wrappers.

pub mod ap_trampoline;
pub mod boot_info;
pub mod cpu;
pub mod cpuinfo;
pub mod damage;
mod damage_asm;
mod damage_wait;
pub mod debugreg;
pub mod exit;
pub mod framebuffer;
pub mod gdt;
pub mod idt;
pub mod lapic;
pub mod mce;
pub mod paging;
pub mod park;
pub mod percpu;
pub mod port;
pub mod serial;
pub mod smp;
pub mod sysenter;
pub mod time;
pub mod user;
pub mod vectors;

/// Most CPUs the kernel brings up; per-CPU tables are static arrays of this size.
pub const MAX_CPUS: usize = 64;
