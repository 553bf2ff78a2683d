//! How a run ends: one byte to QEMU's isa-debug-exit device (port 0xf4).
//!
//! QEMU exits with status `(value << 1) | 1`, so success is never 0 and never 1
//! (1 means QEMU itself failed): 0x10 -> 33 (success), 0x11 -> 35 (failure).
//! On a PC without the device the write goes nowhere and the CPU halts, leaving
//! the results on screen. The exit path takes no lock and cannot panic.

use super::port::outb;

const ISA_DEBUG_EXIT_PORT: u16 = 0xf4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0x10,
    Failure = 0x11,
}

pub fn exit(code: ExitCode) -> ! {
    // SAFETY: port 0xf4 is QEMU's exit device or nothing at all; writing it has
    // no effect on memory.
    unsafe { outb(ISA_DEBUG_EXIT_PORT, code as u8) };
    super::cpu::halt_forever()
}
