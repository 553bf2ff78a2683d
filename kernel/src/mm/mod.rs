//! Memory: physical frames from the loader's memory map, and one virtual region
//! for kernel stacks and MMIO, managed here so that every stack gets a guard page
//! no matter which loader built the page tables.

mod frames;

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::arch::boot_info::BootInfo;
use crate::arch::paging::{self, Access, Caching};
use crate::arch::percpu::StackBounds;

pub use frames::FrameAllocator;

pub const PAGE_SIZE: u64 = 4096;

/// Start of the kernel's own mappings (PML4 slot 384), away from the HHDM
/// (slot 256) and the kernel image (slot 511).
const REGION_BASE: u64 = 0xffff_c000_0000_0000;

static HHDM_OFFSET: AtomicU64 = AtomicU64::new(0);
static NEXT_VIRT: AtomicU64 = AtomicU64::new(REGION_BASE);
static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::empty());

pub fn init(boot: &BootInfo) {
    HHDM_OFFSET.store(boot.hhdm_offset, Ordering::Relaxed);
    *FRAMES.lock() = FrameAllocator::new(&boot.memory);
}

pub fn hhdm_offset() -> u64 {
    HHDM_OFFSET.load(Ordering::Relaxed)
}

/// One zeroed physical frame.
pub fn alloc_frame() -> Option<u64> {
    let frame = FRAMES.lock().next()?;
    let virt = (hhdm_offset() + frame) as *mut u8;
    // SAFETY: the HHDM maps all RAM and the frame was just taken from the
    // allocator, so nothing else holds a reference into it.
    unsafe { core::ptr::write_bytes(virt, 0, PAGE_SIZE as usize) };
    Some(frame)
}

fn take_virt(pages: u64) -> u64 {
    NEXT_VIRT.fetch_add(pages * PAGE_SIZE, Ordering::Relaxed)
}

fn map(virt: u64, phys: u64, caching: Caching) {
    map_with(virt, phys, caching, Access::Kernel);
}

fn map_with(virt: u64, phys: u64, caching: Caching, access: Access) {
    let mut frames = || alloc_frame();
    // SAFETY: `virt` comes from `take_virt`, a region nothing else maps; frames
    // come from the allocator, which never hands a frame out twice; the lock on
    // FRAMES is not held across this call (alloc_frame takes it per frame), and
    // only the BSP maps, before the APs run.
    unsafe { paging::map_page(hhdm_offset(), virt, phys, caching, access, &mut frames) }
        .expect("mm: mapping a kernel page failed");
}

/// A stack of `pages` pages with an unmapped guard page below it. Its frames
/// are not zeroed: a stack is written before it is read, and the checker
/// paints every IST stack anyway. Not zeroing their 36 pages per CPU took
/// an AP's share of a PVH boot under TCG from 0.25 to 0.15 ms (rdtsc stamps).
pub fn alloc_stack(pages: u64) -> StackBounds {
    let guard = take_virt(pages + 1);
    let bottom = guard + PAGE_SIZE;
    for page in 0..pages {
        let frame = FRAMES.lock().next().expect("mm: out of memory for a stack");
        map(bottom + page * PAGE_SIZE, frame, Caching::WriteBack);
    }
    StackBounds {
        bottom,
        top: bottom + pages * PAGE_SIZE,
    }
}

/// Kernel memory that is all zero when handed out and stays mapped for the
/// kernel's life; only [`alloc_zeroed`] makes one.
pub struct Zeroed {
    start: u64,
    len: usize,
}

impl Zeroed {
    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn bytes(&self) -> usize {
        self.len
    }
}

/// `bytes` of fresh zeroed kernel memory, page-aligned: frames in a row,
/// zeroed and used through the HHDM (both doors map all RAM there), so no
/// page is mapped one by one: under TCG, mapping the four checkers' pages
/// one by one cost 0.5 ms of a PVH boot (rdtsc stamps).
pub fn alloc_zeroed(bytes: usize) -> Zeroed {
    let frames = (bytes as u64).div_ceil(PAGE_SIZE);
    let phys = FRAMES
        .lock()
        .next_run(frames)
        .expect("mm: out of memory for zeroed kernel memory");
    let start = hhdm_offset() + phys;
    // SAFETY: the HHDM maps all RAM, and the frames were just taken from the
    // allocator, which never hands a frame out twice: nothing else refers to them.
    unsafe { core::ptr::write_bytes(start as *mut u8, 0, (frames * PAGE_SIZE) as usize) };
    Zeroed { start, len: bytes }
}

/// Maps one page of MMIO registers uncacheable and returns its virtual address.
pub fn map_mmio(phys: u64) -> u64 {
    let virt = take_virt(1);
    map(virt, phys & !(PAGE_SIZE - 1), Caching::Uncached);
    virt + (phys & (PAGE_SIZE - 1))
}

/// Ring 3's region: PML4 slot 1, which neither door's page tables use.
pub const USER_BASE: u64 = 0x0000_0080_0000_0000;
static NEXT_USER: AtomicU64 = AtomicU64::new(USER_BASE);

/// `pages` fresh, zeroed pages that ring 3 may read, write and execute.
pub fn alloc_user_pages(pages: u64) -> u64 {
    let virt = NEXT_USER.fetch_add(pages * PAGE_SIZE, Ordering::Relaxed);
    for page in 0..pages {
        let frame = alloc_frame().expect("mm: out of memory for user pages");
        map_with(
            virt + page * PAGE_SIZE,
            frame,
            Caching::WriteBack,
            Access::User,
        );
    }
    virt
}

static SANDBOX: spin::Once<crate::arch::user::Sandbox> = spin::Once::new();

/// The ring-3 sandbox (made on first use; the tests that use it run on one CPU).
pub fn user_sandbox() -> &'static crate::arch::user::Sandbox {
    SANDBOX.call_once(|| {
        let pages = alloc_user_pages(3);
        // SAFETY: three fresh, zeroed, user-accessible pages from
        // `alloc_user_pages`, never handed out again.
        unsafe { crate::arch::user::Sandbox::new(pages, pages + PAGE_SIZE, pages + 2 * PAGE_SIZE) }
    })
}
