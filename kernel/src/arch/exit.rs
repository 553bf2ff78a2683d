//! How a run ends: one byte to QEMU's isa-debug-exit device. The codes and
//! the port are `testkit::exit`, shared with the host that reads them back.
//! On a PC without the device the write goes nowhere and the CPU halts, leaving
//! the results on screen. The exit path takes no lock and cannot panic.

pub use testkit::exit::ExitCode;
use testkit::exit::ISA_DEBUG_EXIT_PORT;

use super::port::outb;

pub fn exit(code: ExitCode) -> ! {
    // SAFETY: port 0xf4 is QEMU's exit device or nothing at all; writing it has
    // no effect on memory.
    unsafe { outb(ISA_DEBUG_EXIT_PORT, code.byte()) };
    super::cpu::halt_forever()
}
