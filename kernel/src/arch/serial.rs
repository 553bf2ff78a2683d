//! COM1, the 16550 UART every PC and QEMU has at port 0x3f8.
//!
//! Polled and lock-free at this level: the console above decides who may print.

use super::port::{inb, outb};

const COM1: u16 = 0x3f8;
const LINE_STATUS: u16 = COM1 + 5;
const TX_EMPTY: u8 = 1 << 5;

/// Programs COM1 for 115200 8N1 with FIFOs, interrupts off.
pub fn init() {
    // SAFETY: COM1 belongs to the kernel; this is the standard 16550 programming
    // sequence (divisor latch, line format, FIFO), with no memory effects.
    unsafe {
        outb(COM1 + 1, 0x00); // no UART interrupts: the kernel polls
        outb(COM1 + 3, 0x80); // DLAB on to set the divisor
        outb(COM1, 0x01); //     divisor 1 = 115200 baud
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03); // 8 bits, no parity, one stop bit, DLAB off
        outb(COM1 + 2, 0xc7); // FIFOs on and cleared
        outb(COM1 + 4, 0x03); // DTR + RTS
    }
}

/// Sends one byte, waiting for the transmitter.
pub fn write_byte(byte: u8) {
    // SAFETY: reading the line status and writing the data register of COM1 are
    // side-effect-free apart from sending the byte.
    unsafe {
        let mut spins = 0u32;
        // Bounded wait: a missing UART (some PCs) must not hang the kernel.
        while inb(LINE_STATUS) & TX_EMPTY == 0 && spins < 100_000 {
            spins += 1;
            core::hint::spin_loop();
        }
        outb(COM1, byte);
    }
}

const DATA_READY: u8 = 1 << 0;

/// One received byte, if the UART has one (never waits). The host runner
/// answers the kernel's requests on this line (`testkit::protocol::host`).
pub fn read_byte() -> Option<u8> {
    // SAFETY: reading the line status, and the data register only when it
    // holds a byte, has no effect beyond taking that byte from the FIFO.
    unsafe { (inb(LINE_STATUS) & DATA_READY != 0).then(|| inb(COM1)) }
}
