//! Held runs and their screenshots. With `hold=1` on its command line the
//! kernel stays up after the run with the results and their QR code on the
//! screen and says `hold:` on COM1. The host then asks QEMU over QMP for a
//! screendump (PPM), keeps it as a PNG in `target/artifacts/`, and stops
//! QEMU. The QR code is read back from the PNG with `rqrr`.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use testkit::protocol::{OwnedEvent, parse_stream};

use crate::boot::BootConfig;
use crate::exit::Exit;
use crate::process::{self, Echo, Watch};
use crate::qemu::{self, End, Outcome};

/// The kernel word that holds the machine after the run.
pub const HOLD: &str = "hold=1";
const QMP_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a boot is held (and so ends with a screenshot).
pub fn is_held(args: &[String]) -> bool {
    args.iter().any(|a| a == HOLD)
}

/// Where screenshots and other run artifacts go.
pub fn artifacts_dir() -> PathBuf {
    crate::target_dir().join("artifacts")
}

/// The screenshot of a held boot: one per door.
pub fn png_path(config: &BootConfig) -> PathBuf {
    artifacts_dir().join(format!("screen-{}.png", config.door.ident()))
}

/// Follows a held boot's serial output and, at the kernel's `hold:` line,
/// takes the screenshot and stops QEMU.
struct Held<'a> {
    serial: Vec<u8>,
    /// Where the next unread line starts.
    scanned: usize,
    echo: Echo,
    qmp: &'a Path,
    png: &'a Path,
    deadline: Instant,
    shot: Option<Result<()>>,
}

impl Watch for Held<'_> {
    fn output(&mut self, bytes: &[u8]) {
        if self.echo == Echo::Live {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(bytes).and_then(|()| out.flush());
        }
        self.serial.extend_from_slice(bytes);
        while let Some(end) = self.serial[self.scanned..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.serial[self.scanned..self.scanned + end]);
            let held = line.trim().starts_with("hold:");
            self.scanned += end + 1;
            if held && self.shot.is_none() {
                let shot = capture(self.qmp, self.png);
                if shot.is_err() {
                    // Nothing more to wait for: stop QEMU now.
                    self.deadline = Instant::now();
                }
                self.shot = Some(shot);
            }
        }
    }

    fn deadline(&self) -> Option<(Instant, String)> {
        Some((self.deadline, "deadline".into()))
    }
}

/// Runs QEMU with `args` (serial on stdio) plus a QMP socket, takes the
/// screenshot to `png` once the kernel holds, and stops QEMU. The run's end
/// is the kernel's own verdict from its `done` event (what it would have
/// written to the exit device had it not been held); a run that never held
/// ends as it ended, and a failed screenshot is an error.
pub fn run_held(args: &[OsString], timeout: Duration, echo: Echo, png: &Path) -> Result<Outcome> {
    qemu::check_installed()?;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = crate::target_dir().join("qmp");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let socket = dir.join(format!("{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let mut qmp = OsString::from("unix:");
    qmp.push(&socket);
    qmp.push(",server=on,wait=off");
    let mut cmd = Command::new(qemu::PROGRAM);
    cmd.args(args).arg("-qmp").arg(qmp);
    let _ = std::fs::remove_file(png);
    let mut watch = Held {
        serial: Vec::new(),
        scanned: 0,
        echo,
        qmp: &socket,
        png,
        deadline: Instant::now() + timeout,
        shot: None,
    };
    let got = process::run_watched(&mut cmd, &mut watch);
    let _ = std::fs::remove_file(&socket);
    let got = got?;
    let serial = String::from_utf8_lossy(&watch.serial).into_owned();
    let end = match (watch.shot, got.status) {
        (Some(Err(e)), _) => return Err(e.context("taking the screenshot of the held run")),
        (Some(Ok(())), _) => {
            crate::console::note(&format!(
                "hold: screenshot `{}`; QEMU stopped by the host, the run's verdict is its done event's",
                png.display()
            ));
            End::Exited(verdict(&serial))
        }
        (None, Some(status)) => End::Exited(Exit::from_status(status)),
        (None, None) => End::Hang(timeout),
    };
    Ok(Outcome {
        end,
        serial,
        stderr: String::from_utf8_lossy(&got.stderr).into_owned(),
        elapsed: got.elapsed,
    })
}

/// The exit a held kernel would have made: success when its `done` event
/// counts no failure.
fn verdict(serial: &str) -> Exit {
    let done = parse_stream(serial.as_bytes())
        .events()
        .find_map(|(_, e)| match e {
            OwnedEvent::Done { failed, .. } => Some(*failed),
            _ => None,
        });
    match done {
        Some(0) => Exit::Success,
        _ => Exit::Failure,
    }
}

/// One QMP conversation: the greeting, capabilities, a screendump, quit.
fn capture(socket: &Path, png: &Path) -> Result<()> {
    let ppm = png.with_extension("ppm");
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to QMP at `{}`", socket.display()))?;
    stream.set_read_timeout(Some(QMP_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let greeting = read_reply(&mut reader)?;
    ensure!(
        greeting.get("QMP").is_some(),
        "QMP greeting expected, got {greeting}"
    );
    let mut ask = |command: Value| -> Result<()> {
        writeln!(writer, "{command}").context("writing to QMP")?;
        let reply = read_reply(&mut reader)?;
        match reply.get("error") {
            Some(error) => bail!("QMP {}: {error}", command["execute"]),
            None => Ok(()),
        }
    };
    ask(json!({ "execute": "qmp_capabilities" }))?;
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let filename = ppm.to_string_lossy();
    ask(json!({ "execute": "screendump", "arguments": { "filename": filename } }))?;
    // QEMU may close the socket before it answers `quit`.
    let _ = ask(json!({ "execute": "quit" }));
    let data = std::fs::read(&ppm).with_context(|| format!("cannot read `{}`", ppm.display()))?;
    let _ = std::fs::remove_file(&ppm);
    let image = Rgb::from_ppm(&data).context("QEMU's screendump")?;
    image.write_png(png)
}

/// The next QMP reply, skipping asynchronous events.
fn read_reply(reader: &mut impl BufRead) -> Result<Value> {
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).context("reading from QMP")?;
        ensure!(n > 0, "QMP closed the connection");
        let value: Value =
            serde_json::from_str(&line).with_context(|| format!("QMP sent `{}`", line.trim()))?;
        if value.get("event").is_none() {
            return Ok(value);
        }
    }
}

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
        use qrcodegen_no_heap::{QrCode, QrCodeEcc, Version};
        let text = "IST1|cpu=QEMU TCG|boot::nmi_all_to_all=P,n2";
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
        .unwrap();
        let modules: Vec<Vec<bool>> = (0..qr.size())
            .map(|y| (0..qr.size()).map(|x| qr.get_module(x, y)).collect())
            .collect();
        assert_eq!(draw(&modules, 3).read_qr().unwrap(), text);
    }

    #[test]
    fn only_hold_1_holds() {
        assert!(is_held(&["filter=boot::".into(), "hold=1".into()]));
        assert!(!is_held(&["hold=0".into(), "xhold=1".into()]));
    }

    #[test]
    fn a_held_run_ends_with_its_done_verdict() {
        let ok = "@istorm {\"type\":\"done\",\"passed\":1,\"failed\":0,\"skipped\":0}\n";
        assert_eq!(verdict(ok), Exit::Success);
        assert_eq!(
            verdict(&ok.replace("\"failed\":0", "\"failed\":1")),
            Exit::Failure
        );
        assert_eq!(verdict("hold: halted\n"), Exit::Failure);
    }
}
