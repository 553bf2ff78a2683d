//! The summary as a QR code (`qrcodegen-no-heap`): byte mode, the smallest
//! version that holds the text at ECC level L, then the highest ECC level that
//! version still holds. When the whole summary does not fit the biggest
//! version allowed, it is cut (testkit's `...<n>` field) until it does.

use qrcodegen_no_heap::{DataTooLong, QrCode, QrCodeEcc, QrSegment, Version};
use testkit::summary::{self, Entry, Header};

use crate::arch::framebuffer::{Rgb, Surface};

/// Dense enough for a phone at 3 pixels a module; holds 1273 bytes at ECC L.
pub const MAX_VERSION: Version = Version::new(25);
/// Bytes of summary text tried first.
pub const TEXT_MAX: usize = 1200;
/// Bytes a code of `MAX_VERSION` holds at ECC L in byte mode (ISO/IEC 18004
/// capacity table, version 25-L): any text of `TEXT_MAX` bytes fits it.
const MAX_VERSION_BYTES: usize = 1273;
const _: () = assert!(TEXT_MAX <= MAX_VERSION_BYTES);
const BUF_LEN: usize = MAX_VERSION.buffer_len();
/// Light modules around the code, as the standard asks.
const QUIET: usize = 4;

const DARK: Rgb = 0x00_00_00;
const LIGHT: Rgb = 0xff_ff_ff;

/// The biggest version whose code, quiet zone included, fits `side` pixels at
/// `module_px` pixels a module; `None` if not even version 1 does.
pub fn max_version(side: usize, module_px: usize) -> Option<Version> {
    let modules = side / module_px.max(1);
    let version = modules.checked_sub(2 * QUIET + 17)? / 4;
    (version >= 1).then(|| Version::new(version.min(usize::from(MAX_VERSION.value())) as u8))
}

/// Writes the summary into `text`, cut until a code of version `max` or
/// smaller holds it; returns its length (`None` if not even the header fits).
pub fn fit<H: AsRef<str>, T: AsRef<str>>(
    header: &Header<H>,
    entries: &[Entry<T>],
    text: &mut [u8],
    max: Version,
) -> Option<usize> {
    let mut scratch = [0u8; BUF_LEN];
    let mut budget = text.len();
    loop {
        let len = summary::encode(header, entries, &mut text[..budget]).ok()?;
        if len <= MAX_VERSION_BYTES && max.value() >= MAX_VERSION.value() {
            // Fits by the capacity table: no need to build the codewords (a
            // run without a screen asks only for the text).
            return Some(len);
        }
        let segment = QrSegment::make_bytes(&text[..len]);
        let fits = QrCode::encode_segments_to_codewords(
            &[segment],
            &mut scratch,
            QrCodeEcc::Low,
            Version::MIN,
            max,
            false,
        );
        // Each retry is shorter than the text before, so this ends.
        budget = match fits {
            Ok(_) => return Some(len),
            Err(DataTooLong::DataOverCapacity(used, capacity)) => {
                len.checked_sub(used.saturating_sub(capacity).div_ceil(8).max(1))?
            }
            Err(DataTooLong::SegmentTooLong) => len.checked_sub(len / 4 + 1)?,
        };
    }
}

/// A code for `text`, ready to draw.
pub struct Code {
    out: [u8; BUF_LEN],
    temp: [u8; BUF_LEN],
}

impl Code {
    pub const fn new() -> Code {
        Code {
            out: [0; BUF_LEN],
            temp: [0; BUF_LEN],
        }
    }

    /// Encodes `text` (which `fit` sized for `max`).
    pub fn encode(&mut self, text: &[u8], max: Version) -> Option<QrCode<'_>> {
        let temp = self.temp.get_mut(..text.len())?;
        temp.copy_from_slice(text);
        QrCode::encode_binary(
            &mut self.temp,
            text.len(),
            &mut self.out,
            QrCodeEcc::Low,
            Version::MIN,
            max,
            None,
            true,
        )
        .ok()
    }
}

/// The error correction level `code` was made with. Not the crate's
/// `error_correction_level()`: that reads the format bits without removing the
/// standard's 0x5412 mask and says Q for L (qrcodegen-no-heap 1.8.1).
pub fn ecc_name(code: &QrCode<'_>) -> &'static str {
    // Format bits 14 and 13 (modules (0, 8) and (1, 8)), unmasked; L=01 M=00 Q=11 H=10.
    let masked = u8::from(code.get_module(0, 8)) << 1 | u8::from(code.get_module(1, 8));
    ["M", "L", "H", "Q"][usize::from(masked ^ 0b10)]
}

/// Pixels a side the code takes at `module_px`, quiet zone included.
pub fn side(code: &QrCode<'_>, module_px: usize) -> usize {
    (code.size() as usize + 2 * QUIET) * module_px
}

/// Draws `code` with its quiet zone, top left at `(x, y)`.
pub fn draw(s: &mut Surface, code: &QrCode<'_>, (x, y): (usize, usize), module_px: usize) {
    let side = side(code, module_px);
    s.fill(x, y, side, side, LIGHT);
    let size = code.size();
    for my in 0..size {
        for mx in 0..size {
            if code.get_module(mx, my) {
                let px = x + (QUIET + mx as usize) * module_px;
                let py = y + (QUIET + my as usize) * module_px;
                s.fill(px, py, module_px, module_px, DARK);
            }
        }
    }
}
