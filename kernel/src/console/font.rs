//! Text on a [`Surface`]: Noto Sans Mono, 16 pixels high, from the
//! `noto-sans-mono-bitmap` crate (pre-rasterised, one byte of coverage per
//! pixel, so edges are smoothed). Bigger text is the same glyphs scaled by an
//! integer: one font in the kernel image, at any size.

use noto_sans_mono_bitmap::{
    FontWeight, RasterHeight, RasterizedChar, get_raster, get_raster_width,
};

use crate::arch::framebuffer::{Rgb, Surface};

const WEIGHT: FontWeight = FontWeight::Regular;
const SIZE: RasterHeight = RasterHeight::Size16;

/// One character cell at scale 1, in pixels.
pub const WIDTH: usize = get_raster_width(WEIGHT, SIZE);
pub const HEIGHT: usize = SIZE.val();

/// Drawn for characters the font does not have (outside printable ASCII).
const FALLBACK: RasterizedChar = match get_raster('?', WEIGHT, SIZE) {
    Some(glyph) => glyph,
    None => panic!("the font has no '?'"),
};

fn glyph(c: char) -> RasterizedChar {
    get_raster(c, WEIGHT, SIZE).unwrap_or(FALLBACK)
}

/// `fg` over `bg` at `coverage` (0 = all `bg`, 255 = all `fg`), per channel.
fn blend(fg: Rgb, bg: Rgb, coverage: u8) -> Rgb {
    let a = u32::from(coverage);
    let channel = |shift: u32| {
        let (f, b) = ((fg >> shift) & 0xff, (bg >> shift) & 0xff);
        ((f * a + b * (255 - a)) / 255) << shift
    };
    channel(16) | channel(8) | channel(0)
}

/// Draws `c` with its top left corner at `(x, y)`, every glyph pixel as a
/// `scale` x `scale` square, background included.
pub fn draw_char(s: &mut Surface, x: usize, y: usize, c: char, scale: usize, fg: Rgb, bg: Rgb) {
    if c == ' ' {
        s.fill(x, y, WIDTH * scale, HEIGHT * scale, bg);
        return;
    }
    for (row, coverage) in glyph(c).rows().enumerate() {
        for (col, &a) in coverage.iter().enumerate() {
            let color = blend(fg, bg, a);
            let (px, py) = (x + col * scale, y + row * scale);
            if scale == 1 {
                s.put(px, py, color);
            } else {
                s.fill(px, py, scale, scale, color);
            }
        }
    }
}

/// Draws `text` on one line from `(x, y)`, cutting what would pass `x_max`;
/// returns the x just after the last character drawn.
pub fn draw_str(
    s: &mut Surface,
    at: (usize, usize),
    x_max: usize,
    text: &str,
    scale: usize,
    fg: Rgb,
    bg: Rgb,
) -> usize {
    let (mut x, y) = at;
    let step = WIDTH * scale;
    for c in text.chars() {
        if x + step > x_max {
            break;
        }
        draw_char(s, x, y, c, scale, fg, bg);
        x += step;
    }
    x
}
