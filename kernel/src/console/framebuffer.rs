//! The framebuffer text console: every line that goes to COM1 also goes on
//! screen, except wire-protocol lines (`@istorm {...}`), which are for
//! machines. For PCs without a serial port; COM1 output does not change.
//!
//! Locking: the console lock already orders `print_fmt` callers, so the screen
//! lock is contended only by `print_fatal`, which may run without the console
//! lock. Both only ever *try* the screen lock and skip the screen if it is
//! busy: a dying CPU may hold it, and COM1 has the line anyway.
//!
//! Scrolling redraws only the cells whose character changes, from the copy of
//! the text kept here; the framebuffer is never read (see `surface`).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;
use testkit::protocol::PREFIX;

use super::font;
use crate::arch::boot_info::Framebuffer;
use crate::arch::framebuffer::{Rgb, Surface};
use crate::kprintln;

pub const BACKGROUND: Rgb = 0x10_14_1c;
pub const FOREGROUND: Rgb = 0xd8_d8_d8;

/// Text kept of the screen; a bigger screen uses the top left part.
const MAX_COLS: usize = 256;
const MAX_ROWS: usize = 128;
/// A space, or a cell nothing was written to: zero keeps the 32 KiB of cells
/// in `.bss` instead of the kernel image.
const BLANK: u8 = 0;
/// From this width on, console text is drawn twice as big.
const HIDPI_WIDTH: usize = 2560;

/// Where the current line stands in the wire-prefix check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Its first bytes still match `PREFIX`: held back until they decide.
    Start,
    Human,
    Wire,
}

struct Screen {
    surface: Option<Surface>,
    /// After the summary: the text console draws nothing more.
    frozen: bool,
    scale: usize,
    cols: usize,
    rows: usize,
    col: usize,
    row: usize,
    cells: [[u8; MAX_COLS]; MAX_ROWS],
    line: Line,
    held: [u8; PREFIX.len()],
    held_len: usize,
}

static SCREEN: Mutex<Screen> = Mutex::new(Screen {
    surface: None,
    frozen: false,
    scale: 0,
    cols: 0,
    rows: 0,
    col: 0,
    row: 0,
    cells: [[BLANK; MAX_COLS]; MAX_ROWS],
    line: Line::Start,
    held: [0; PREFIX.len()],
    held_len: 0,
});

/// Whether there is a screen to draw on: spares formatting every line twice
/// when there is none (PVH, or a framebuffer this code cannot use).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Takes the loader's framebuffer as the screen (first thing in `kernel_main`).
pub fn init(fb: Option<&Framebuffer>) {
    let Some(fb) = fb else { return };
    let Some(mut surface) = Surface::take(fb) else {
        kprintln!(
            "screen: {} bpp framebuffer not supported, serial only",
            fb.bpp
        );
        return;
    };
    let (cols, rows) = {
        let mut screen = SCREEN.lock();
        let scale = if surface.width >= HIDPI_WIDTH { 2 } else { 1 };
        surface.fill(0, 0, surface.width, surface.height, BACKGROUND);
        screen.scale = scale;
        screen.cols = (surface.width / (font::WIDTH * scale)).min(MAX_COLS);
        screen.rows = (surface.height / (font::HEIGHT * scale)).min(MAX_ROWS);
        screen.surface = Some(surface);
        (screen.cols, screen.rows)
    };
    ACTIVE.store(true, Ordering::Release);
    kprintln!(
        "screen: {}x{} framebuffer, {cols}x{rows} text",
        fb.width,
        fb.height
    );
}

/// Draws `args` on screen, if there is one and it is free. Called by the
/// console after it wrote the same text on COM1.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    if let Some(mut screen) = SCREEN.try_lock() {
        let _ = screen.write_fmt(args);
    }
}

/// Stops the text console and hands the whole screen to `draw` (the summary).
/// `None` without a screen, or if a dying CPU holds it.
pub fn take_over<R>(draw: impl FnOnce(&mut Surface) -> R) -> Option<R> {
    if !ACTIVE.load(Ordering::Acquire) {
        return None;
    }
    for _ in 0..1_000_000 {
        if let Some(mut screen) = SCREEN.try_lock() {
            screen.frozen = true;
            return screen.surface.as_mut().map(draw);
        }
        core::hint::spin_loop();
    }
    None
}

impl Write for Screen {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.frozen {
            s.bytes().for_each(|b| self.byte(b));
        }
        Ok(())
    }
}

impl Screen {
    fn byte(&mut self, b: u8) {
        match (self.line, b) {
            (_, b'\r') => {}
            (line, b'\n') => {
                self.release_held();
                if line != Line::Wire {
                    self.newline();
                }
                self.line = Line::Start;
            }
            (Line::Wire, _) => {}
            (Line::Human, _) => self.put(b),
            (Line::Start, _) => {
                self.held[self.held_len] = b;
                self.held_len += 1;
                if self.held[..self.held_len] != PREFIX.as_bytes()[..self.held_len] {
                    self.line = Line::Human;
                    self.release_held();
                } else if self.held_len == PREFIX.len() {
                    self.line = Line::Wire;
                    self.held_len = 0;
                }
            }
        }
    }

    /// Draws the bytes held back for the prefix check: they were not one.
    fn release_held(&mut self) {
        let (held, len) = (self.held, self.held_len);
        self.held_len = 0;
        held[..len].iter().for_each(|&b| self.put(b));
    }

    /// One byte of UTF-8 text: tabs become spaces, other control characters
    /// vanish, and a non-ASCII character becomes one `?`.
    fn put(&mut self, b: u8) {
        let c = match b {
            b'\t' | b' ' => BLANK,
            b'!'..=b'~' => b,
            0xc0.. => b'?',
            _ => return,
        };
        if self.cols == 0 || self.rows == 0 {
            return;
        }
        if self.col == self.cols {
            self.newline();
        }
        let (row, col) = (self.row, self.col);
        self.cells[row][col] = c;
        self.draw(row, col, c);
        self.col += 1;
    }

    fn newline(&mut self) {
        self.col = 0;
        if self.row + 1 < self.rows {
            self.row += 1;
        } else {
            self.scroll();
        }
    }

    /// Moves every line up one; redraws only the cells that change.
    fn scroll(&mut self) {
        for row in 0..self.rows {
            let below = self.cells.get(row + 1).filter(|_| row + 1 < self.rows);
            let next = below.copied().unwrap_or([BLANK; MAX_COLS]);
            for (col, &c) in next.iter().enumerate().take(self.cols) {
                if c != self.cells[row][col] {
                    self.draw(row, col, c);
                }
            }
            self.cells[row] = next;
        }
    }

    fn draw(&mut self, row: usize, col: usize, c: u8) {
        let scale = self.scale;
        if let Some(surface) = self.surface.as_mut() {
            let (x, y) = (col * font::WIDTH * scale, row * font::HEIGHT * scale);
            let c = if c == BLANK { ' ' } else { char::from(c) };
            font::draw_char(surface, x, y, c, scale, FOREGROUND, BACKGROUND);
        }
    }
}
