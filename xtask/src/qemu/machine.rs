//! Starting QEMU: the machine options every run shares, the version check, and
//! one run with a timeout whose result says how it ended.

use std::ffi::OsString;
use std::fmt;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use testkit::exit::ISA_DEBUG_EXIT_PORT;

use crate::qemu::accel::Accel;
use crate::qemu::crash::BootEnd;
use crate::qemu::exit::Exit;
use crate::qemu::inject::{Injecting, Injector, QemuMonitor};
use crate::qemu::process::{self, Echo, Watch};

pub const PROGRAM: &str = "qemu-system-x86_64";
const MIN_MAJOR: u32 = 10;

/// The machine QEMU emulates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub smp: u32,
    pub cpu: String,
    pub accel: Accel,
    /// Under TCG, end every translation block after one instruction
    /// (`-accel tcg,one-insn-per-tb=on`): interrupts and NMIs can then land
    /// between any two instructions, not only between blocks. Ignored by KVM.
    pub single_step: bool,
}

impl Machine {
    /// The value of `-accel`.
    pub fn accel_arg(&self) -> String {
        match (self.accel, self.single_step) {
            (Accel::Tcg, true) => "tcg,one-insn-per-tb=on".to_string(),
            (accel, _) => accel.qemu_name().to_string(),
        }
    }

    /// Options shared by every run, the serial port excepted.
    pub fn args(&self) -> Vec<OsString> {
        let smp = self.smp.to_string();
        let accel = self.accel_arg();
        let exit = format!("isa-debug-exit,iobase={ISA_DEBUG_EXIT_PORT:#x},iosize=0x04");
        [
            "-machine",
            "q35",
            "-m",
            "256M",
            "-smp",
            &smp,
            "-cpu",
            &self.cpu,
            "-accel",
            &accel,
            "-no-reboot",
            "-display",
            "none",
            "-device",
            &exit,
        ]
        .iter()
        .map(OsString::from)
        .collect()
    }
}

/// The major version from `qemu-system-x86_64 --version` output.
fn major_version(text: &str) -> Option<u32> {
    let rest = text.split("version ").nth(1)?;
    rest.split(['.', ' ']).next()?.trim().parse().ok()
}

/// Checks once per process that QEMU is installed and new enough.
pub fn check_installed() -> Result<()> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| check().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn check() -> Result<()> {
    let mut cmd = process::tool(PROGRAM, "qemu-system-x86")
        .context("QEMU 10 from Debian bookworm-backports is required")?;
    cmd.arg("--version");
    let out = process::run_captured(&mut cmd, Duration::from_secs(30), None, Echo::Quiet)?;
    let text = String::from_utf8_lossy(&out.stdout);
    match major_version(&text) {
        Some(major) if major >= MIN_MAJOR => Ok(()),
        Some(major) => bail!(
            "{PROGRAM} is version {major}, istorm needs QEMU {MIN_MAJOR} or newer \
             (Debian `qemu-system-x86` from bookworm-backports)"
        ),
        None => bail!(
            "cannot read a version from `{PROGRAM} --version`: {}",
            text.trim()
        ),
    }
}

/// How a QEMU run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    Exited(Exit),
    /// Still running at the timeout, then killed.
    Hang(Duration),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Exited(exit) => exit.fmt(f),
            End::Hang(after) => write!(f, "hang after {} s", after.as_secs()),
        }
    }
}

/// A finished run: how it ended, what the kernel printed, what QEMU complained.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub end: End,
    pub serial: String,
    pub stderr: String,
    pub elapsed: Duration,
}

#[cfg(test)]
impl Outcome {
    /// A canned run for tests: how it ended and what the kernel printed.
    pub fn canned(end: End, serial: &str) -> Outcome {
        Outcome {
            end,
            serial: serial.into(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
        }
    }
}

/// Runs QEMU with `args` (which must route the serial port to stdio).
pub fn run(args: &[OsString], timeout: Duration, echo: Echo) -> Result<Outcome> {
    check_installed()?;
    let mut cmd = Command::new(PROGRAM);
    cmd.args(args);
    let got = process::run_captured(&mut cmd, timeout, None, echo)?;
    Ok(Outcome {
        end: match got.status {
            Some(status) => End::Exited(Exit::from_status(status)),
            None => End::Hang(timeout),
        },
        serial: String::from_utf8_lossy(&got.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&got.stderr).into_owned(),
        elapsed: got.elapsed,
    })
}

/// A finished streamed run.
pub struct Live {
    pub end: BootEnd,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs QEMU with `args` (serial port on stdio), handing the serial output to
/// `watch` as it arrives and killing QEMU at `watch`'s deadline. The run has
/// a QMP socket, through which the kernel's `inject` requests are served.
pub fn run_watched(args: &[OsString], watch: &mut dyn Watch) -> Result<Live> {
    check_installed()?;
    let (monitor, qmp_args) = QemuMonitor::new()?;
    let mut cmd = Command::new(PROGRAM);
    cmd.args(args).args(qmp_args);
    let mut watch = Injecting {
        inner: watch,
        injector: Injector::new(monitor),
    };
    let got = process::run_watched(&mut cmd, &mut watch)?;
    let end = match (got.status, got.killed) {
        (Some(status), _) => BootEnd::Exited(Exit::from_status(status)),
        (None, why) => BootEnd::Killed {
            after: got.elapsed,
            why: why.unwrap_or_else(|| "deadline".into()),
        },
    };
    Ok(Live {
        end,
        stderr: String::from_utf8_lossy(&got.stderr).into_owned(),
        elapsed: got.elapsed,
    })
}

/// Starts QEMU paused (`-S`) with the monitor on stdio, tells it to quit, and
/// returns the wall time: the floor under any boot.
pub fn floor(machine: &Machine, timeout: Duration) -> Result<Duration> {
    check_installed()?;
    let mut cmd = Command::new(PROGRAM);
    cmd.args(machine.args())
        .args(["-S", "-monitor", "stdio", "-serial", "null"]);
    let got = process::run_captured(&mut cmd, timeout, Some(b"quit\n"), Echo::Quiet)?;
    match got.status {
        Some(status) if status.success() => Ok(got.elapsed),
        Some(status) => bail!(
            "QEMU did not quit cleanly ({status}): {}",
            String::from_utf8_lossy(&got.stderr).trim()
        ),
        None => bail!("QEMU did not quit within {} s", timeout.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read() {
        let v10 = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n\
                   Copyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers\n";
        assert_eq!(major_version(v10), Some(10));
        assert_eq!(major_version("QEMU emulator version 7.2.15\n"), Some(7));
        assert_eq!(major_version("garbage"), None);
    }

    #[test]
    fn machine_options_are_the_contract() {
        let m = Machine {
            smp: 4,
            cpu: "max".into(),
            accel: Accel::Tcg,
            single_step: false,
        };
        let args: Vec<String> = m
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "-machine q35 -m 256M -smp 4 -cpu max -accel tcg -no-reboot -display none \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04"
        );
        let step = Machine {
            single_step: true,
            ..m.clone()
        };
        assert_eq!(step.accel_arg(), "tcg,one-insn-per-tb=on");
        let kvm = Machine {
            accel: Accel::Kvm,
            ..step
        };
        assert_eq!(kvm.accel_arg(), "kvm");
    }

    #[test]
    fn a_hang_reads_as_one() {
        assert_eq!(
            End::Hang(Duration::from_secs(30)).to_string(),
            "hang after 30 s"
        );
    }
}
