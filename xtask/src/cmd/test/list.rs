//! `cargo xtask test --list`, and the `list=1` boot that names every
//! registered kernel test (also used to drop suites no test would run in).

use std::process::ExitCode;

use anyhow::{Context, Result, bail, ensure};
use testkit::protocol::{OwnedEvent, parse_stream};

use super::Args;
use crate::media::kernel;
use crate::media::limine;
use crate::qemu::accel::{self, Accel};
use crate::qemu::emulator::Emulator;
use crate::qemu::process::Echo;
use crate::runner::boot::{Artifacts, BootConfig, Door};

/// `--list`: one boot with `list=1`; the names of the `planned` events.
pub(super) fn list(args: &Args) -> Result<ExitCode> {
    let choice = accel::choose(args.common.accel)?;
    let kernel = kernel::kernel_or(args.common.kernel.as_ref())?;
    let limine = if args.boot.needs_limine() {
        Some(limine::require(args.common.limine_dir.as_deref())?)
    } else {
        None
    };
    let artifacts = Artifacts::new(kernel).with_limine(limine);
    let names = list_boot(args, &artifacts, choice.accel, args.boot)?;
    let shown: Vec<&String> = names
        .iter()
        .map(|(name, _)| name)
        .filter(|name| args.wanted(name))
        .collect();
    for name in &shown {
        println!("{name}");
    }
    eprintln!("{} of {} registered tests", shown.len(), names.len());
    Ok(ExitCode::SUCCESS)
}

/// Boots once with `list=1`: every registered test, with its crash expectation.
pub(super) fn list_boot(
    args: &Args,
    artifacts: &Artifacts,
    accel: Accel,
    door: Door,
) -> Result<Vec<(String, Option<String>)>> {
    // A listing boots QEMU whatever runs the suites.
    let cpu = match args.emulator {
        Emulator::Qemu => args.cpus().swap_remove(0),
        Emulator::Bochs => "max".into(),
    };
    let config = BootConfig::new(door, args.smp, cpu, vec!["list=1".into()]);
    artifacts.prepare(&config)?;
    let out = artifacts.boot(&config, accel, args.common.timeout(), Echo::Quiet)?;
    listed(&out.serial).with_context(|| format!("listing the kernel's tests ({})", out.end))
}

/// The tests a `list=1` boot names, with their crash expectations.
fn listed(serial: &str) -> Result<Vec<(String, Option<String>)>> {
    let transcript = parse_stream(serial.as_bytes());
    if let Some((line, error)) = transcript
        .errors()
        .find(|(_, e)| !matches!(e, testkit::protocol::StreamError::MissingDone))
    {
        bail!("line {line}: {error}");
    }
    ensure!(
        transcript.is_complete(),
        "the boot ended without a done event"
    );
    Ok(transcript
        .events()
        .filter_map(|(_, e)| match e {
            OwnedEvent::Planned { test, expect_crash } => {
                Some((test.clone(), expect_crash.clone()))
            }
            _ => None,
        })
        .collect())
}
