//! A bump allocator over the usable regions of the memory map. The kernel never
//! frees memory: it allocates stacks and tables at boot and runs until it exits.

use crate::arch::boot_info::MemoryRegion;

use super::PAGE_SIZE;

const MAX_REGIONS: usize = 64;

pub struct FrameAllocator {
    regions: [MemoryRegion; MAX_REGIONS],
    count: usize,
    current: usize,
    next: u64,
}

impl FrameAllocator {
    pub const fn empty() -> Self {
        Self {
            regions: [MemoryRegion { start: 0, end: 0 }; MAX_REGIONS],
            count: 0,
            current: 0,
            next: 0,
        }
    }

    pub fn new(usable: &[MemoryRegion]) -> Self {
        let mut alloc = Self::empty();
        for region in usable.iter().take(MAX_REGIONS) {
            let start = region.start.div_ceil(PAGE_SIZE) * PAGE_SIZE;
            let end = region.end / PAGE_SIZE * PAGE_SIZE;
            if start < end {
                alloc.regions[alloc.count] = MemoryRegion { start, end };
                alloc.count += 1;
            }
        }
        alloc.next = alloc.regions[0].start;
        alloc
    }

    /// The first of `frames` free frames in a row (in one region of the map);
    /// a region too short for them is left behind, as `next` does at its end.
    pub fn next_run(&mut self, frames: u64) -> Option<u64> {
        let bytes = frames.checked_mul(PAGE_SIZE)?;
        while self.current < self.count {
            let region = self.regions[self.current];
            self.next = self.next.max(region.start);
            if self.next + bytes <= region.end {
                let start = self.next;
                self.next += bytes;
                return Some(start);
            }
            self.current += 1;
        }
        None
    }

    /// The next free frame's physical address.
    pub fn next(&mut self) -> Option<u64> {
        self.next_run(1)
    }
}
