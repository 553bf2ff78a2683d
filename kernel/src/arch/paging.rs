//! Page-table edits through the `x86_64` crate, on whichever tables are live
//! (Limine's, or the PVH door's boot tables). Frames come from the caller.

use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// Who may touch a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Kernel,
    /// Ring 3 too (the user-mode scenarios' code, stack and data).
    User,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    WriteBack,
    /// PCD | PWT: uncacheable with the default PAT, as MMIO needs.
    Uncached,
}

struct Frames<'a>(&'a mut dyn FnMut() -> Option<u64>);

// SAFETY: the closure hands out frames that are unused RAM and never hands one
// out twice (the caller's contract on `map_page`).
unsafe impl FrameAllocator<Size4KiB> for Frames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        (self.0)().map(|p| PhysFrame::containing_address(PhysAddr::new(p)))
    }
}

/// Maps one 4 KiB page writable (not executable-protected: EFER.NXE may be off).
///
/// # Safety
/// `hhdm_offset` maps all RAM; `virt` is in a region only the caller manages;
/// `frames` yields unused, never-repeated physical frames; one CPU at a time.
pub unsafe fn map_page(
    hhdm_offset: u64,
    virt: u64,
    phys: u64,
    caching: Caching,
    access: Access,
    frames: &mut dyn FnMut() -> Option<u64>,
) -> Result<(), &'static str> {
    let mut flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    flags |= match access {
        Access::Kernel => PageTableFlags::GLOBAL,
        Access::User => PageTableFlags::USER_ACCESSIBLE,
    };
    if caching == Caching::Uncached {
        flags |= PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH;
    }
    let pml4_phys = super::cpu::read_cr3() & 0x000f_ffff_ffff_f000;
    // SAFETY: CR3 names the live PML4, reachable through the HHDM; the caller
    // serialises edits.
    let pml4 = unsafe { &mut *((hhdm_offset + pml4_phys) as *mut PageTable) };
    // SAFETY: the HHDM offset maps all physical memory (caller's contract).
    let mut mapper = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(hhdm_offset)) };
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let frame = PhysFrame::containing_address(PhysAddr::new(phys));
    // SAFETY: the page is unused (caller's region) and the frame is the caller's.
    unsafe { mapper.map_to(page, frame, flags, &mut Frames(frames)) }
        .map_err(|_| "page already mapped or out of frames")?
        .flush();
    Ok(())
}
