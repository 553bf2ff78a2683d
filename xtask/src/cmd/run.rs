//! `cargo xtask run`: set up what is missing, build, boot once, show the run
//! as a person reads it (`runner/live`: human lines, a progress bar per test;
//! the wire only with `--raw`, always in `target/artifacts/run-*.serial`), and
//! turn QEMU's exit status into ours (0 when the kernel reports success).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cmd::opts::{self, Common, Switch};
use crate::cmd::setup::{self, Purpose};
use crate::qemu::crash::BootEnd;
use crate::qemu::emulator::Emulator;
use crate::qemu::exit::Exit;
use crate::qemu::machine::{End, Live};
use crate::qemu::screenshot;
use crate::runner::boot::{Artifacts, BootConfig, Door};
use crate::runner::live::{Style, View};
use crate::{media::kernel, media::limine, qemu::accel};

/// Boot the kernel in QEMU and stream its serial console.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How QEMU starts the kernel.
    #[arg(long, value_enum, default_value_t = Door::LimineBios)]
    boot: Door,
    /// Number of CPUs (1 to 64).
    #[arg(long, default_value_t = 4, value_parser = opts::smp_parser())]
    smp: u32,
    /// QEMU CPU model (`max` offers x2APIC under TCG, `qemu64` does not).
    #[arg(long, value_name = "MODEL", default_value = "max", value_parser = opts::parse_cpu)]
    cpu: String,
    /// The program that runs the kernel. Bochs boots the Limine ISO under
    /// BIOS; its CPU model defaults to corei7_skylake_x (x2APIC), 1 to 8 CPUs.
    #[arg(long, value_enum, default_value_t = Emulator::Qemu)]
    emulator: Emulator,
    /// Under TCG, one instruction per translation block, as `cargo xtask
    /// test` runs the suites: what a person watches is what CI checks (the NMI
    /// sweeps reach every instruction of the entry windows only so).
    #[arg(long, value_enum, value_name = "on|off", default_value_t = Switch::On)]
    tcg_single_step: Switch,
    /// Also print the raw `@istorm {json}` wire lines (they always go to
    /// target/artifacts/run-*.serial).
    #[arg(long)]
    raw: bool,
    /// Install what is missing without asking (also when `CI` is set).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    common: Common,
    /// Kernel command-line words, e.g. `selftest=ud2`.
    #[arg(last = true, value_name = "KERNEL ARGS")]
    kernel_args: Vec<String>,
}

pub fn main(args: Args) -> Result<ExitCode> {
    opts::check_kernel_args(&args.kernel_args)?;
    setup::ensure(Purpose::Run, args.yes)?;
    let cpu = args.emulator.cpu_model(&args.cpu);
    let config = BootConfig::new(args.boot, args.smp, cpu, args.kernel_args)
        .with_single_step(args.tcg_single_step == Switch::On)
        .with_emulator(args.emulator);
    let choice = accel::choose(args.common.accel)?;
    let kernel = kernel::kernel_or(args.common.kernel.as_ref())?;
    let limine = if config.door.needs_limine() {
        Some(limine::require(args.common.limine_dir.as_deref())?)
    } else {
        None
    };
    let artifacts = Artifacts::new(kernel).with_limine(limine);
    artifacts.prepare(&config)?;
    match args.emulator.describe(config.smp, &config.cpu) {
        Some(line) => eprintln!("{line}"),
        None => eprintln!("{choice}"),
    }
    let serial = serial_path()?;
    let file = std::fs::File::create(&serial)
        .with_context(|| format!("cannot create `{}`", serial.display()))?;
    let timeout = args.common.timeout();
    let mut view = View::new(Style::for_stdout(args.raw), file, timeout);
    let held = screenshot::is_held(&config.args) && config.emulator == Emulator::Qemu;
    let live = if held {
        // A held run ends with a screenshot, and its verdict is the done event's.
        artifacts
            .boot_held(&config, choice.accel, timeout, &mut view)
            .map(|out| Live {
                end: match out.end {
                    End::Exited(exit) => BootEnd::Exited(exit),
                    End::Hang(after) => BootEnd::Killed {
                        after,
                        why: "the run's timeout".into(),
                    },
                },
                stderr: out.stderr,
                elapsed: out.elapsed,
            })
    } else {
        artifacts.boot_watched(&config, choice.accel, &mut view)
    };
    view.finish();
    let live = live?;
    eprintln!("serial: {} ({} wire events)", serial.display(), view.events);
    match live.end {
        BootEnd::Exited(Exit::Success) => {
            let how = match config.emulator {
                // Bochs has no exit device, and a held QEMU is stopped by the
                // host: the kernel's verdict is its done event.
                Emulator::Qemu if !held => live.end.to_string(),
                _ => "kernel reported success (its done event)".to_string(),
            };
            eprintln!("run: {how} in {:.2} s", live.elapsed.as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        end => {
            let stderr = live.stderr.trim();
            if !stderr.is_empty() {
                eprintln!("{stderr}");
            }
            bail!("{end}")
        }
    }
}

/// `target/artifacts/run-SECS.serial`, named so that names sort by time.
fn serial_path() -> Result<PathBuf> {
    let dir = crate::target_dir().join("artifacts");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(dir.join(format!("run-{secs:012}.serial")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        args: Args,
    }

    fn parse(words: &[&str]) -> Result<Args, clap::Error> {
        Probe::try_parse_from(std::iter::once("run").chain(words.iter().copied())).map(|p| p.args)
    }

    #[test]
    fn defaults_follow_the_design() {
        let a = parse(&[]).unwrap();
        assert_eq!(
            (a.boot, a.smp, a.cpu.as_str()),
            (Door::LimineBios, 4, "max")
        );
        assert!(a.kernel_args.is_empty());
    }

    #[test]
    fn kernel_words_come_after_the_separator() {
        let a = parse(&["--boot", "pvh", "--smp", "2", "--", "selftest=ud2", "x=1"]).unwrap();
        assert_eq!(a.boot, Door::Pvh);
        assert_eq!(a.kernel_args, ["selftest=ud2", "x=1"]);
        assert!(parse(&["--boot", "efi"]).is_err());
        assert!(parse(&["--smp", "65"]).is_err());
    }
}
