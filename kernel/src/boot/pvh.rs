//! The PVH door: QEMU `-kernel` with the Xen PHYS32_ENTRY note. The 32-bit entry
//! and the switch to long mode are in `boot::pvh_start`; this is what follows:
//! read `hvm_start_info`, list the CPUs from the ACPI MADT, and start APs with
//! INIT-SIPI-SIPI through the real-mode trampoline.

use heapless::{String, Vec};

use spin::Once;

use crate::arch::ap_trampoline::{self, TRAMPOLINE_BASE};
use crate::arch::boot_info::{ApLaunch, ApStarter, BootInfo, CpuEntry, Door};
use crate::arch::{cpu, lapic};

/// The boot page tables map physical 0..4 GiB here, as Limine's HHDM does.
const PVH_HHDM: u64 = 0xffff_8000_0000_0000;
const HHDM_LIMIT: u64 = 4 << 30;
const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;
const START_INFO_MAGIC: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;
/// Longest command line read from the loader (the runner's `skip=` lists grow).
const CMDLINE_READ: usize = 4096;

/// `struct hvm_start_info` from Xen's public/arch-x86/hvm/start_info.h.
#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

unsafe extern "C" {
    static __kernel_end: u8;
}

fn phys<T>(addr: u64) -> *const T {
    (PVH_HHDM + addr) as *const T
}

/// Called by `pvh_entry32` once in 64-bit mode on the boot stack.
pub extern "C" fn pvh_main(start_info_phys: u32) -> ! {
    crate::console::init();
    // SAFETY: QEMU's PVH loader passes the physical address of a valid start_info
    // block in low memory, which the boot page tables map in the HHDM.
    let info = unsafe { &*phys::<StartInfo>(u64::from(start_info_phys)) };
    assert_eq!(
        info.magic, START_INFO_MAGIC,
        "pvh: bad hvm_start_info magic"
    );

    let mut boot = BootInfo {
        door: Door::Pvh,
        hhdm_offset: PVH_HHDM,
        memory: Vec::new(),
        rsdp_phys: (info.rsdp_paddr != 0).then_some(info.rsdp_paddr),
        cpus: Vec::new(),
        framebuffer: None,
        ap_starter: &PvhStarter,
        cmdline: String::new(),
    };
    if info.cmdline_paddr != 0 {
        // SAFETY: the loader wrote a NUL-terminated string there; it is read up to
        // the NUL or CMDLINE_READ bytes, whichever comes first, all below 4 GiB.
        let raw =
            unsafe { core::slice::from_raw_parts(phys::<u8>(info.cmdline_paddr), CMDLINE_READ) };
        boot.set_cmdline(raw);
    }
    // Frames start above the kernel image (which also holds the boot page tables).
    let kernel_end = &raw const __kernel_end as u64 - KERNEL_VMA;
    if info.version >= 1 && info.memmap_paddr != 0 {
        // SAFETY: version 1 start_info points at `memmap_entries` entries.
        let map = unsafe {
            core::slice::from_raw_parts(
                phys::<MemmapEntry>(info.memmap_paddr),
                info.memmap_entries as usize,
            )
        };
        for entry in map.iter().filter(|e| e.kind == E820_RAM) {
            let end = (entry.addr + entry.size).min(HHDM_LIMIT);
            boot.add_region(entry.addr, end, kernel_end);
        }
    }
    boot.cpus = super::acpi::madt_cpus(PVH_HHDM, boot.rsdp_phys, cpu::apic_id())
        .unwrap_or_else(|e| panic!("pvh: no usable ACPI MADT: {e:?}"));
    crate::kernel_main(&boot)
}

/// INIT-SIPI-SIPI through the trampoline at `TRAMPOLINE_BASE`.
struct PvhStarter;

/// The trampoline is copied once, before the first AP's SIPI; each start
/// after that only adds the AP's launch slot.
static TRAMPOLINE: Once = Once::new();

impl ApStarter for PvhStarter {
    fn start(&self, cpu: &CpuEntry, launch: ApLaunch) {
        TRAMPOLINE.call_once(|| {
            // SAFETY: physical 0x8000 is conventional memory below the kernel
            // that the frame allocator never hands out (regions start above the
            // kernel image), mapped in the HHDM; no AP has had a SIPI yet.
            unsafe { ap_trampoline::install(PVH_HHDM, cpu::read_cr3()) }
        });
        let entry = launch.entry as usize as u64;
        // SAFETY: installed above through the same HHDM; this AP gets its SIPI
        // only below, so it is not reading the table yet.
        let added = unsafe {
            ap_trampoline::add(PVH_HHDM, cpu.lapic_id, launch.stack_top, entry, launch.arg)
        };
        if added {
            let delays = lapic::startup_delays();
            lapic::send_init_sipi_sipi(cpu.lapic_id, (TRAMPOLINE_BASE >> 12) as u8, delays);
        }
    }
}
