//! The CPU list from the ACPI MADT, through the `acpi` crate (PVH door: Limine
//! hands over its own list).

use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use heapless::Vec;

use crate::arch::MAX_CPUS;
use crate::arch::boot_info::CpuEntry;

/// Maps ACPI tables through the HHDM, which covers them in both doors.
#[derive(Clone)]
struct HhdmHandler(u64);

impl AcpiHandler for HhdmHandler {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = (self.0 + phys as u64) as *mut T;
        // SAFETY: the HHDM maps the tables' physical range; the mapping is never
        // unmapped, so it outlives every use the crate makes of it.
        unsafe {
            PhysicalMapping::new(phys, NonNull::new_unchecked(virt), size, size, self.clone())
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

const MADT_ENABLED: u32 = 1;

/// Every enabled CPU in the MADT, the BSP (`bsp_apic_id`) first.
pub fn madt_cpus(
    hhdm_offset: u64,
    rsdp: Option<u64>,
    bsp_apic_id: u32,
) -> Result<Vec<CpuEntry, MAX_CPUS>, acpi::AcpiError> {
    let handler = HhdmHandler(hhdm_offset);
    // SAFETY: the RSDP address comes from the loader, or the crate searches the
    // BIOS areas, which the HHDM maps.
    let tables = unsafe {
        match rsdp {
            Some(addr) => AcpiTables::from_rsdp(handler, addr as usize)?,
            None => AcpiTables::search_for_rsdp_bios(handler)?,
        }
    };
    let madt = tables.find_table::<Madt>()?;
    let mut cpus: Vec<CpuEntry, MAX_CPUS> = Vec::new();
    let _ = cpus.push(CpuEntry {
        lapic_id: bsp_apic_id,
    });
    for entry in madt.get().entries() {
        let (lapic_id, flags) = match entry {
            MadtEntry::LocalApic(e) => (u32::from(e.apic_id), e.flags),
            MadtEntry::LocalX2Apic(e) => (e.x2apic_id, e.flags),
            _ => continue,
        };
        if flags & MADT_ENABLED != 0 && lapic_id != bsp_apic_id {
            let _ = cpus.push(CpuEntry { lapic_id });
        }
    }
    Ok(cpus)
}
