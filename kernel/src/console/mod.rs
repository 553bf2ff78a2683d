//! The console: serial (COM1), and the screen too when the loader set up a
//! framebuffer (`framebuffer`; at the end, `summary` takes the screen over).
//! `kprintln!` prints whole lines under a lock so that CPUs do not interleave.
//!
//! Not for NMI, #DB or #MC paths: they record into per-CPU slots and normal code
//! prints later (the lock could be held by the very code they interrupted).

mod font;
pub mod framebuffer;
mod qr;
pub mod results;
pub mod summary;

use core::fmt::{self, Write};
use spin::Mutex;

use crate::arch::serial;

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                serial::write_byte(b'\r');
            }
            serial::write_byte(byte);
        }
        Ok(())
    }
}

static CONSOLE: Mutex<Serial> = Mutex::new(Serial);

pub fn init() {
    serial::init();
    // Firmware (OVMF) leaves escape sequences without a newline on COM1; start
    // the kernel's output on a fresh line so no kernel line is glued to them.
    serial::write_byte(b'\r');
    serial::write_byte(b'\n');
}

#[doc(hidden)]
pub fn print_fmt(args: fmt::Arguments) {
    let mut console = CONSOLE.lock();
    let _ = console.write_fmt(args);
    framebuffer::write_fmt(args);
}

/// Last-resort printing for the panic and fatal-exception paths: takes the lock if
/// it can and prints anyway if it cannot (the holder may be the CPU that died).
pub fn print_fatal(args: fmt::Arguments) {
    for _ in 0..1_000_000 {
        if let Some(mut console) = CONSOLE.try_lock() {
            let _ = console.write_fmt(args);
            framebuffer::write_fmt(args);
            return;
        }
        core::hint::spin_loop();
    }
    let _ = Serial.write_fmt(args);
    framebuffer::write_fmt(args);
}

#[macro_export]
macro_rules! kprintln {
    () => { $crate::console::print_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
