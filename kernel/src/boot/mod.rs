//! The two front doors. Each one turns what its loader handed over into one
//! [`BootInfo`](crate::arch::boot_info::BootInfo) and calls [`crate::kernel_main`]; nothing after this module knows
//! which door was used (the door's name only appears in the `boot:` line).

mod acpi;
pub mod limine;
pub mod pvh;
mod pvh_start;
