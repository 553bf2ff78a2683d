//! The Limine door (boot protocol base revision 2, Limine 8.x): the real path,
//! from a CD image or USB stick, under BIOS or UEFI. Limine has already switched
//! to long mode, mapped the kernel and an HHDM, and parked the APs; it hands over
//! what the requests below ask for.

use heapless::{String, Vec};
use limine::BaseRevision;
use limine::memory_map::EntryType;
use limine::mp::Cpu;
use limine::request::{
    ExecutableFileRequest, FramebufferRequest, HhdmRequest, MemoryMapRequest, MpRequest,
    RequestsEndMarker, RequestsStartMarker, RsdpRequest,
};
use spin::Once;

use crate::arch::MAX_CPUS;
use crate::arch::boot_info::{ApLaunch, ApStarter, BootInfo, CpuEntry, Door, Framebuffer};

/// Low memory stays untouched (real-mode structures, firmware leftovers).
const LOW_FLOOR: u64 = 1 << 20;

#[used]
#[unsafe(link_section = ".limine_requests_start")]
static REQUESTS_START: RequestsStartMarker = RequestsStartMarker::new();

/// Limine 8.2.0 supports base revisions up to 2; the crate's `new()` asks for 3.
#[used]
#[unsafe(link_section = ".limine_requests")]
static BASE_REVISION: BaseRevision = BaseRevision::with_revision(2);

#[used]
#[unsafe(link_section = ".limine_requests")]
static HHDM: HhdmRequest = HhdmRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static MEMORY_MAP: MemoryMapRequest = MemoryMapRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static RSDP: RsdpRequest = RsdpRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static MP: MpRequest = MpRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static EXECUTABLE_FILE: ExecutableFileRequest = ExecutableFileRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests")]
static FRAMEBUFFER: FramebufferRequest = FramebufferRequest::new();

#[used]
#[unsafe(link_section = ".limine_requests_end")]
static REQUESTS_END: RequestsEndMarker = RequestsEndMarker::new();

/// The ELF entry point: Limine jumps here on the BSP.
#[unsafe(no_mangle)]
pub extern "C" fn limine_entry() -> ! {
    crate::console::init();
    assert!(
        BASE_REVISION.is_supported(),
        "limine: base revision 2 not supported by this loader"
    );
    let hhdm_offset = HHDM
        .get_response()
        .expect("limine: no HHDM response")
        .offset();

    let mut boot = BootInfo {
        door: Door::Limine,
        hhdm_offset,
        memory: Vec::new(),
        rsdp_phys: RSDP
            .get_response()
            .map(|r| rsdp_physical(r.address() as u64, hhdm_offset)),
        cpus: Vec::new(),
        framebuffer: first_framebuffer(),
        ap_starter: &LimineStarter,
        cmdline: String::new(),
    };
    if let Some(file) = EXECUTABLE_FILE.get_response() {
        boot.set_cmdline(file.file().string().to_bytes());
    }
    let map = MEMORY_MAP
        .get_response()
        .expect("limine: no memory map response");
    for entry in map
        .entries()
        .iter()
        .filter(|e| e.entry_type == EntryType::USABLE)
    {
        boot.add_region(entry.base, entry.base + entry.length, LOW_FLOOR);
    }
    let mp = MP.get_response().expect("limine: no MP response");
    let bsp = mp.bsp_lapic_id();
    let _ = boot.cpus.push(CpuEntry { lapic_id: bsp });
    for cpu in mp.cpus().iter().filter(|c| c.lapic_id != bsp) {
        let _ = boot.cpus.push(CpuEntry {
            lapic_id: cpu.lapic_id,
        });
    }
    crate::kernel_main(&boot)
}

/// Base revisions below 3 hand the RSDP over as an HHDM pointer; 3+ as physical.
fn rsdp_physical(addr: u64, hhdm_offset: u64) -> u64 {
    if addr >= hhdm_offset {
        addr - hhdm_offset
    } else {
        addr
    }
}

fn first_framebuffer() -> Option<Framebuffer> {
    let fb = FRAMEBUFFER.get_response()?.framebuffers().next()?;
    Some(Framebuffer {
        addr: fb.addr() as u64,
        width: fb.width() as u32,
        height: fb.height() as u32,
        pitch: fb.pitch() as u32,
        bpp: fb.bpp(),
    })
}

/// Where each AP goes, by its position in Limine's CPU list.
static LAUNCHES: [Once<ApLaunch>; MAX_CPUS] = [const { Once::new() }; MAX_CPUS];

/// Starts an AP by writing its `goto_address`; Limine's AP then jumps to
/// `limine_ap_entry` on a 64 KiB stack of Limine's, with Limine's page tables
/// (the same as the BSP's, so the kernel's own mappings are visible).
struct LimineStarter;

impl ApStarter for LimineStarter {
    fn start(&self, cpu: &CpuEntry, launch: ApLaunch) {
        let Some(mp) = MP.get_response() else { return };
        let Some((slot, target)) = mp
            .cpus()
            .iter()
            .enumerate()
            .find(|(_, c)| c.lapic_id == cpu.lapic_id)
        else {
            return;
        };
        let Some(launch_slot) = LAUNCHES.get(slot) else {
            return;
        };
        launch_slot.call_once(|| launch);
        target
            .extra
            .store(slot as u64, core::sync::atomic::Ordering::SeqCst);
        target.goto_address.write(limine_ap_entry);
    }
}

unsafe extern "C" fn limine_ap_entry(cpu: &Cpu) -> ! {
    let slot = cpu.extra.load(core::sync::atomic::Ordering::SeqCst) as usize;
    let launch = *LAUNCHES[slot]
        .get()
        .expect("limine: AP started without a launch");
    crate::arch::cpu::switch_stack_and_call(launch.stack_top, launch.entry, launch.arg)
}
