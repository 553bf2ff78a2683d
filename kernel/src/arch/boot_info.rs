//! What the loader told the kernel, in one shape for both doors: the contract
//! between `boot/` (which fills a [`BootInfo`] and calls `kernel_main`) and the
//! layers below it, which only read it.

use heapless::Vec;

use super::MAX_CPUS;

const MAX_REGIONS: usize = 64;
const CMDLINE_MAX: usize = 4096;

/// A range of usable RAM, physical addresses, `start` inclusive, `end` exclusive.
#[derive(Clone, Copy, Debug)]
pub struct MemoryRegion {
    pub start: u64,
    pub end: u64,
}

/// A CPU as the firmware lists it. Index 0 is always the CPU that booted.
#[derive(Clone, Copy, Debug)]
pub struct CpuEntry {
    pub lapic_id: u32,
}

/// Where an AP should go once it runs 64-bit code on its own stack.
#[derive(Clone, Copy)]
pub struct ApLaunch {
    pub stack_top: u64,
    pub entry: extern "C" fn(u64) -> !,
    pub arg: u64,
}

/// How a door starts an application processor.
pub trait ApStarter: Sync {
    /// Starts `cpu` so that it ends up in `launch.entry(launch.arg)` on
    /// `launch.stack_top`, with the kernel's page tables. Returns at once; the
    /// caller may start the next AP before this one checks in, and waits for
    /// all of them afterwards.
    fn start(&self, cpu: &CpuEntry, launch: ApLaunch);
}

/// A linear framebuffer, when the loader set one up (Limine on real hardware).
#[derive(Clone, Copy, Debug)]
pub struct Framebuffer {
    pub addr: u64,
    pub width: u32,
    pub height: u32,
    pub pitch: u32,
    pub bpp: u16,
}

/// Which front door the kernel came in through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// QEMU `-kernel` through the ELF's PVH note.
    Pvh,
    /// Limine (BIOS or UEFI, ISO or disk).
    Limine,
}

impl Door {
    pub fn name(self) -> &'static str {
        match self {
            Door::Pvh => "pvh",
            Door::Limine => "limine",
        }
    }
}

impl core::fmt::Display for Door {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything the rest of the kernel needs from the loader.
pub struct BootInfo {
    /// Reported in the `boot:` line and the `hello` event, never branched on.
    pub door: Door,
    /// Virtual address of physical 0 in the higher-half direct map.
    pub hhdm_offset: u64,
    pub memory: Vec<MemoryRegion, MAX_REGIONS>,
    pub rsdp_phys: Option<u64>,
    pub cpus: Vec<CpuEntry, MAX_CPUS>,
    pub framebuffer: Option<Framebuffer>,
    pub ap_starter: &'static dyn ApStarter,
    /// Filled by the door through `set_cmdline`; read through `cmdline()`.
    pub(crate) cmdline: heapless::String<CMDLINE_MAX>,
}

impl BootInfo {
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// Copies the loader's command line into the kernel (the loader's copy lives in
    /// memory the kernel may reuse). Invalid UTF-8 and overlong text are cut.
    pub fn set_cmdline(&mut self, raw: &[u8]) {
        let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
        let text = match core::str::from_utf8(raw) {
            Ok(text) => text,
            Err(e) => core::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or(""),
        };
        self.cmdline.clear();
        for ch in text.trim().chars() {
            if self.cmdline.push(ch).is_err() {
                break;
            }
        }
    }

    /// Adds a usable region, dropping what lies below `floor` (real-mode area,
    /// kernel image) and what does not fit the table.
    pub fn add_region(&mut self, start: u64, end: u64, floor: u64) {
        let start = start.max(floor);
        if start < end {
            let _ = self.memory.push(MemoryRegion { start, end });
        }
    }
}
