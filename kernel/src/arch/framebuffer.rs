//! The loader's linear framebuffer as pixels: the one place that writes to it
//! (the console draws text and the summary through a [`Surface`]).
//!
//! Only writes, never reads: on real hardware the framebuffer is uncached or
//! write-combining memory, where a read costs as much as a port access, so
//! whoever draws keeps its own copy of what is on screen (the text console
//! keeps its characters) instead of reading pixels back.

use core::sync::atomic::{AtomicBool, Ordering};

use super::boot_info::Framebuffer;

/// A colour as `0x00RRGGBB`: the 32-bit layout Limine and UEFI GOP hand over.
pub type Rgb = u32;

/// Invariant: `base` points at `stride * height` pixels of mapped framebuffer
/// that nothing else writes (`take` hands out one surface per boot).
pub struct Surface {
    base: *mut u32,
    pub width: usize,
    pub height: usize,
    /// Pixels (not bytes) from one row to the next.
    stride: usize,
}

// SAFETY: the surface owns its framebuffer (see `take`); moving it to another
// CPU moves that ownership along.
unsafe impl Send for Surface {}

/// Set once a surface exists: there is never a second writer.
static TAKEN: AtomicBool = AtomicBool::new(false);

impl Surface {
    /// The loader's framebuffer, if it is one this code can draw on (32 bits
    /// per pixel, rows aligned to pixels) and nobody took it before.
    ///
    /// Trusts `fb` as the rest of the kernel trusts `BootInfo`: `boot/` built
    /// it from the loader's answer, and the loader maps the framebuffer
    /// writable for `pitch * height` bytes at `addr` (Limine: in the HHDM).
    pub fn take(fb: &Framebuffer) -> Option<Surface> {
        let (width, height, pitch) = (fb.width as usize, fb.height as usize, fb.pitch as usize);
        let usable = fb.bpp == 32
            && fb.addr.is_multiple_of(4)
            && pitch.is_multiple_of(4)
            && pitch / 4 >= width
            && width > 0
            && height > 0;
        if !usable || TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Surface {
            base: fb.addr as *mut u32,
            width,
            height,
            stride: pitch / 4,
        })
    }

    /// Fills the rectangle at `(x, y)`, clipped to the screen.
    pub fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, color: Rgb) {
        let x_end = x.saturating_add(w).min(self.width);
        let y_end = y.saturating_add(h).min(self.height);
        for row in y.min(y_end)..y_end {
            for col in x.min(x_end)..x_end {
                self.store(col, row, color);
            }
        }
    }

    /// One pixel; outside the screen it is dropped.
    pub fn put(&mut self, x: usize, y: usize, color: Rgb) {
        if x < self.width && y < self.height {
            self.store(x, y, color);
        }
    }

    fn store(&mut self, x: usize, y: usize, color: Rgb) {
        debug_assert!(x < self.width && y < self.height);
        // SAFETY: x < width <= stride and y < height, so the pixel lies in the
        // framebuffer this surface owns (see the invariant); volatile because
        // the store is for the display, which the compiler cannot see read it.
        unsafe { self.base.add(y * self.stride + x).write_volatile(color) };
    }
}
