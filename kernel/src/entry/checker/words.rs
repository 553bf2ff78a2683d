//! The checker's one hot loop, as one instruction: comparing two runs of
//! words with `repe cmpsq`. A clean exit (the common case) costs one string
//! instruction per word instead of a load, a compare and a branch per word
//! in Rust; only a run that differs is walked word by word, by the callers'
//! slow paths, to name and repair each word.

use core::arch::asm;

/// Whether the `count` words at `a` equal the `count` words at `b`.
///
/// # Safety
/// Both runs must be readable for `count` words.
pub(super) unsafe fn same(a: *const u64, b: *const u64, count: usize) -> bool {
    if count == 0 {
        return true;
    }
    let equal: u8;
    // SAFETY: the caller's contract covers both reads; DF is clear (Rust's ABI,
    // and every stub runs `cld` before calling in); the asm writes only the
    // registers it names and the flags.
    unsafe {
        asm!(
            "repe cmpsq",
            "sete {equal}",
            equal = out(reg_byte) equal,
            inout("rcx") count => _,
            inout("rsi") a => _,
            inout("rdi") b => _,
            options(nostack, readonly),
        );
    }
    equal != 0
}
