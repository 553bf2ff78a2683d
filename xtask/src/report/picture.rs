//! Pictures: QEMU's PPM screendumps, PNG files in and out, and the QR code
//! read back from a picture with `rqrr`.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// An 8-bit RGB picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Rgb {
    /// A binary PPM (`P6`, maxval 255), as QEMU's screendump writes it.
    pub fn from_ppm(data: &[u8]) -> Result<Rgb> {
        let mut at = 0;
        let mut token = || -> Result<String> {
            loop {
                while at < data.len() && data[at].is_ascii_whitespace() {
                    at += 1;
                }
                if at < data.len() && data[at] == b'#' {
                    while at < data.len() && data[at] != b'\n' {
                        at += 1;
                    }
                    continue;
                }
                break;
            }
            let start = at;
            while at < data.len() && !data[at].is_ascii_whitespace() {
                at += 1;
            }
            ensure!(at > start, "the PPM header ends early");
            Ok(String::from_utf8_lossy(&data[start..at]).into_owned())
        };
        ensure!(token()? == "P6", "not a binary PPM (P6)");
        let mut number = |what: &str| -> Result<usize> {
            let text = token()?;
            text.parse()
                .with_context(|| format!("PPM {what} `{text}` is not a number"))
        };
        let width = number("width")?;
        let height = number("height")?;
        let max = number("maxval")?;
        ensure!(max == 255, "PPM maxval {max}, only 255 is read");
        // One whitespace byte separates the header from the pixels.
        let start = at + 1;
        let len = width * height * 3;
        ensure!(
            data.len() >= start + len,
            "the PPM holds {} pixel bytes, {width}x{height} needs {len}",
            data.len().saturating_sub(start)
        );
        Ok(Rgb {
            width,
            height,
            pixels: data[start..start + len].to_vec(),
        })
    }

    pub fn write_png(&self, path: &Path) -> Result<()> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create `{}`", path.display()))?;
        let width = u32::try_from(self.width).context("picture too wide")?;
        let height = u32::try_from(self.height).context("picture too tall")?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .with_context(|| format!("writing `{}`", path.display()))?;
        writer
            .write_image_data(&self.pixels)
            .with_context(|| format!("writing `{}`", path.display()))?;
        writer
            .finish()
            .with_context(|| format!("writing `{}`", path.display()))
    }

    pub fn read_png(path: &Path) -> Result<Rgb> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open `{}`", path.display()))?;
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder
            .read_info()
            .with_context(|| format!("reading `{}`", path.display()))?;
        let size = reader
            .output_buffer_size()
            .context("the PNG is too large")?;
        let mut buf = vec![0; size];
        let info = reader
            .next_frame(&mut buf)
            .with_context(|| format!("reading `{}`", path.display()))?;
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            png::ColorType::Grayscale => 1,
            png::ColorType::GrayscaleAlpha => 2,
            other => bail!(
                "`{}`: PNG colour type {other:?} is not read",
                path.display()
            ),
        };
        let pixels = buf[..info.buffer_size()]
            .chunks_exact(channels)
            .flat_map(|p| match channels {
                1 | 2 => [p[0], p[0], p[0]],
                _ => [p[0], p[1], p[2]],
            })
            .collect();
        Ok(Rgb {
            width: info.width as usize,
            height: info.height as usize,
            pixels,
        })
    }

    fn luma(&self, x: usize, y: usize) -> u8 {
        let p = &self.pixels[(y * self.width + x) * 3..][..3];
        ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000) as u8
    }

    /// The text of the first QR code found in the picture.
    pub fn read_qr(&self) -> Result<String> {
        let mut prepared =
            rqrr::PreparedImage::prepare_from_greyscale(self.width, self.height, |x, y| {
                self.luma(x, y)
            });
        let grids = prepared.detect_grids();
        ensure!(!grids.is_empty(), "no QR code in the picture");
        let mut last = None;
        for grid in grids {
            match grid.decode() {
                Ok((_, text)) => return Ok(text),
                Err(e) => last = Some(e),
            }
        }
        bail!(
            "a QR code was found but not read: {}",
            last.map_or_else(String::new, |e| e.to_string())
        )
    }
}

/// The modules of `text` as the kernel's encoder draws it (ECC L, smallest
/// version), row by row: for tests that need a QR code to read back.
#[cfg(test)]
pub fn qr_modules(text: &str) -> Vec<Vec<bool>> {
    use qrcodegen_no_heap::{QrCode, QrCodeEcc, Version};
    let mut temp = vec![0u8; Version::MAX.buffer_len()];
    let mut out = vec![0u8; Version::MAX.buffer_len()];
    let qr = QrCode::encode_text(
        text,
        &mut temp,
        &mut out,
        QrCodeEcc::Low,
        Version::MIN,
        Version::MAX,
        None,
        true,
    )
    .expect("the test text fits a QR code");
    (0..qr.size())
        .map(|y| (0..qr.size()).map(|x| qr.get_module(x, y)).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_headers_parse_and_bad_ones_are_named() {
        let ppm = b"P6\n# made by hand\n2 1\n255\n\x00\x00\x00\xff\xff\xff";
        let rgb = Rgb::from_ppm(ppm).unwrap();
        assert_eq!((rgb.width, rgb.height), (2, 1));
        assert_eq!(rgb.pixels, [0, 0, 0, 255, 255, 255]);
        let err = Rgb::from_ppm(b"P3\n1 1\n255\n0 0 0").unwrap_err();
        assert!(err.to_string().contains("P6"), "{err}");
        let err = Rgb::from_ppm(b"P6\n4 4\n255\n\x00").unwrap_err();
        assert!(err.to_string().contains("needs 48"), "{err}");
        let err = Rgb::from_ppm(b"P6\n4 x\n255\n").unwrap_err();
        assert!(err.to_string().contains("height `x`"), "{err}");
    }

    /// Draws a QR code as a screen shows one: dark modules on white, a
    /// quiet zone, `scale` pixels a module.
    fn draw(modules: &[Vec<bool>], scale: usize) -> Rgb {
        let quiet = 4;
        let side = (modules.len() + 2 * quiet) * scale;
        let mut pixels = vec![255u8; side * side * 3];
        for (y, row) in modules.iter().enumerate() {
            for (x, &dark) in row.iter().enumerate() {
                if !dark {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = (x + quiet) * scale + dx;
                        let py = (y + quiet) * scale + dy;
                        pixels[(py * side + px) * 3..][..3].fill(0);
                    }
                }
            }
        }
        Rgb {
            width: side,
            height: side,
            pixels,
        }
    }

    #[test]
    fn a_picture_round_trips_through_png_and_a_blank_one_has_no_qr() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let rgb = Rgb {
            width: 3,
            height: 2,
            pixels: (0..18).collect(),
        };
        rgb.write_png(&path).unwrap();
        assert_eq!(Rgb::read_png(&path).unwrap(), rgb);
        let blank = draw(&[], 1);
        let err = blank.read_qr().unwrap_err();
        assert!(err.to_string().contains("no QR code"), "{err}");
    }

    #[test]
    fn a_qr_code_from_the_kernels_encoder_is_read() {
        let text = "IST1|cpu=QEMU TCG|boot::nmi_all_to_all=P,n2";
        let modules = qr_modules(text);
        assert_eq!(draw(&modules, 3).read_qr().unwrap(), text);
    }
}
