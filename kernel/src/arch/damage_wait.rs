//! The register damage kit's wait probe's cell (`damage::Hazard::Wait`): the
//! words the probe spins on with RSP pointing at them, and how another CPU or
//! a handler ends the spin.

use core::sync::atomic::{AtomicU64, Ordering};

/// Where a wait probe spins: it reads `target` (`[rsp]`) and jumps there,
/// its own loop until `release` points it at its resume label, which takes
/// its RSP back from `saved_rsp` (`[rsp + 8]`).
#[repr(C, align(16))]
pub struct WaitCell {
    target: AtomicU64,
    saved_rsp: AtomicU64,
    spin: AtomicU64,
    resume: AtomicU64,
}

impl WaitCell {
    pub const fn new() -> Self {
        Self {
            target: AtomicU64::new(0),
            saved_rsp: AtomicU64::new(0),
            spin: AtomicU64::new(0),
            resume: AtomicU64::new(0),
        }
    }

    /// The four `words` (16-aligned) as a cell, placed at `[spin, resume)`.
    pub fn over(words: &'static [AtomicU64], spin: u64, resume: u64) -> &'static WaitCell {
        assert!(words.len() == 4 && (words.as_ptr() as usize).is_multiple_of(16));
        // SAFETY: a `WaitCell` is four `AtomicU64`s (repr(C), align 16): the
        // four words, 16-aligned (both checked), borrowed for as long.
        let cell = unsafe { &*(words.as_ptr() as *const WaitCell) };
        cell.place(spin, resume);
        cell
    }

    /// Sets where the probe spins and where it resumes, `[spin, resume)`
    /// being its loop.
    pub fn place(&self, spin: u64, resume: u64) {
        self.spin.store(spin, Ordering::SeqCst);
        self.resume.store(resume, Ordering::SeqCst);
    }

    /// Before the probe runs: it will spin until `release`.
    pub fn arm(&self) {
        self.saved_rsp.store(0, Ordering::SeqCst);
        self.target
            .store(self.spin.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Ends the probe's spin (or lets it pass straight through, if it has
    /// not started yet).
    pub fn release(&self) {
        self.target
            .store(self.resume.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Whether the probe has started since `arm`.
    pub fn entered(&self) -> bool {
        self.saved_rsp.load(Ordering::SeqCst) != 0
    }

    /// Whether `rip` is an instruction of the probe's spin loop.
    pub fn spinning_at(&self, rip: u64) -> bool {
        rip >= self.spin.load(Ordering::SeqCst) && rip < self.resume.load(Ordering::SeqCst)
    }
}
