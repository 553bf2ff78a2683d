//! Held runs and their screenshots. With `hold=1` on its command line the
//! kernel stays up after the run with the results and their QR code on the
//! screen and sends the `hold` event. The host then asks QEMU over QMP for a
//! screendump (PPM), keeps it as a PNG in `target/artifacts/` (`report/picture.rs`),
//! and stops QEMU.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use testkit::protocol::{Event, LineKind, parse_line, parse_stream};

use crate::qemu::exit::Exit;
use crate::qemu::machine::{self, End, Outcome};
use crate::qemu::process::{self, Echo, Watch};
use crate::qemu::qmp::{self, Qmp};
use crate::report::picture::Rgb;

/// The kernel word that holds the machine after the run.
pub const HOLD: &str = "hold=1";

/// Whether a boot is held (and so ends with a screenshot).
pub fn is_held(args: &[String]) -> bool {
    args.iter().any(|a| a == HOLD)
}

/// Where screenshots and other run artifacts go.
pub fn artifacts_dir() -> PathBuf {
    crate::target_dir().join("artifacts")
}

/// Follows a held boot's serial output and, at the kernel's `hold` event,
/// takes the screenshot and stops QEMU.
struct Held<'a> {
    serial: Vec<u8>,
    /// Where the next unread line starts.
    scanned: usize,
    /// Shows the output as it comes (or not).
    show: &'a mut dyn FnMut(&[u8]),
    qmp: &'a Path,
    png: &'a Path,
    deadline: Instant,
    shot: Option<Result<()>>,
}

impl Watch for Held<'_> {
    fn output(&mut self, bytes: &[u8]) {
        (self.show)(bytes);
        self.serial.extend_from_slice(bytes);
        while let Some(end) = self.serial[self.scanned..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.serial[self.scanned..self.scanned + end]);
            let held = matches!(parse_line(&line), LineKind::Event(Event::Hold));
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
    let mut show = |bytes: &[u8]| {
        if echo == Echo::Live {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(bytes).and_then(|()| out.flush());
        }
    };
    run_held_shown(args, timeout, &mut show, png)
}

/// [`run_held`], with the output handed to `show` as it comes (a person's
/// view of the run: `cargo xtask run hold=1`).
pub fn run_held_shown(
    args: &[OsString],
    timeout: Duration,
    show: &mut dyn FnMut(&[u8]),
    png: &Path,
) -> Result<Outcome> {
    machine::check_installed()?;
    let (socket, qmp_args) = qmp::socket()?;
    let mut cmd = Command::new(machine::PROGRAM);
    cmd.args(args).args(qmp_args);
    let _ = std::fs::remove_file(png);
    let mut watch = Held {
        serial: Vec::new(),
        scanned: 0,
        show,
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
            crate::report::console::note(&format!(
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
    match parse_stream(serial.as_bytes()).done() {
        Some((_, 0, _)) => Exit::Success,
        _ => Exit::Failure,
    }
}

/// One QMP conversation: a screendump, then quit.
fn capture(socket: &Path, png: &Path) -> Result<()> {
    let ppm = png.with_extension("ppm");
    let mut qmp = Qmp::connect(socket)?;
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let filename = ppm.to_string_lossy();
    qmp.execute(json!({ "execute": "screendump", "arguments": { "filename": filename } }))?;
    // QEMU may close the socket before it answers `quit`.
    let _ = qmp.execute(json!({ "execute": "quit" }));
    let data = std::fs::read(&ppm).with_context(|| format!("cannot read `{}`", ppm.display()))?;
    let _ = std::fs::remove_file(&ppm);
    let image = Rgb::from_ppm(&data).context("QEMU's screendump")?;
    image.write_png(png)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(verdict("@istorm {\"type\":\"hold\"}\n"), Exit::Failure);
    }
}
