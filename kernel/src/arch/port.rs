//! Port I/O: the two instructions everything on the legacy bus needs.

/// Writes one byte to an I/O port.
///
/// # Safety
/// The caller owns the device behind `port` and knows the write is meaningful to it.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded from the caller; `out` touches no memory.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads one byte from an I/O port.
///
/// # Safety
/// The caller owns the device behind `port`; some devices change state on read.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: forwarded from the caller; `in` touches no memory.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}
