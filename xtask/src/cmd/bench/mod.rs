//! `cargo xtask bench`: measurements, each the median of several runs, with
//! their ratios computed within one invocation and printed as a table.
//!
//! - `boot`: boot-to-exit of each door against the QEMU floor (`boot.rs`);
//! - `runner`: the test runner's own costs: an empty boot, a test, a crash
//!   and the boot after it (`runner.rs`);
//! - `entry`: exception-entry round trips per strategy against the INT3 and
//!   NMI floors (`entry.rs`);
//! - `jobs`: suites one at a time against two side by side (`jobs.rs`).
//!
//! `runner` and `entry` boot with the same QEMU options as the suites of
//! `cargo xtask test` (PVH, `-accel tcg,one-insn-per-tb=on` under TCG).

mod boot;
mod boot_blocks;
mod boot_split;
mod empty_pvh;
mod entry;
mod entry_floor;
mod entry_trips;
mod jobs;
mod runner;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;

use crate::cmd::opts::{self, Common, Switch};
use crate::media::kernel;
use crate::qemu::accel::{self, Accel, Choice};
use crate::qemu::emulator::Emulator;
use crate::qemu::machine::Machine;
use crate::runner::boot::{Artifacts, BootConfig, Door};

/// Measure boot times, the test runner's costs, or exception-entry round trips.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum)]
    what: Bench,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Number of CPUs (1 to 64; `entry` needs 2).
    #[arg(long, default_value_t = 4, value_parser = opts::smp_parser())]
    smp: u32,
    /// QEMU CPU model.
    #[arg(long, value_name = "MODEL", default_value = "max", value_parser = opts::parse_cpu)]
    cpu: String,
    /// `runner` and `entry` under TCG: one instruction per translation block,
    /// as the suites of `cargo xtask test` run (`boot` always runs plain tcg).
    #[arg(long, value_enum, value_name = "on|off", default_value_t = Switch::On)]
    tcg_single_step: Switch,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Bench {
    /// Boot-to-exit of each door against the QEMU floor.
    Boot,
    /// The runner's costs: an empty boot, one test, a crash and its reboot.
    Runner,
    /// Exception-entry round trips per strategy against the INT3 and NMI floors.
    Entry,
    /// Suites one at a time against two side by side; the expected speed-up per core.
    Jobs,
}

pub fn main(args: Args) -> Result<ExitCode> {
    match args.what {
        Bench::Boot => boot::run(&args),
        Bench::Runner => runner::run(&Setup::new(&args)?),
        Bench::Entry => entry::run(&Setup::new(&args)?),
        Bench::Jobs => jobs::run(&Setup::new(&args)?),
    }
}

/// What the `runner` and `entry` benches share: a built kernel, the
/// accelerator, and the suites' QEMU options.
struct Setup<'a> {
    args: &'a Args,
    choice: Choice,
    artifacts: Artifacts,
}

impl Setup<'_> {
    fn new(args: &Args) -> Result<Setup<'_>> {
        let choice = accel::choose(args.common.accel)?;
        let kernel = kernel::kernel_or(args.common.kernel.as_ref())?;
        eprintln!("{choice}");
        Ok(Setup {
            args,
            choice,
            artifacts: Artifacts::new(kernel),
        })
    }

    /// A PVH boot with the suites' options and these kernel words.
    fn config(&self, words: &[&str]) -> BootConfig {
        BootConfig {
            door: Door::Pvh,
            smp: self.args.smp,
            cpu: self.args.cpu.clone(),
            args: words.iter().map(|w| w.to_string()).collect(),
            single_step: self.args.tcg_single_step == Switch::On,
            emulator: Emulator::Qemu,
        }
    }

    fn accel(&self) -> Accel {
        self.choice.accel
    }

    fn timeout(&self) -> Duration {
        self.args.common.timeout()
    }

    /// `smp 4, cpu max, accel tcg,one-insn-per-tb=on`.
    fn describe(&self) -> String {
        let machine = Machine {
            smp: self.args.smp,
            cpu: self.args.cpu.clone(),
            accel: self.accel(),
            single_step: self.args.tcg_single_step == Switch::On,
        };
        format!(
            "smp {}, cpu {}, accel {}",
            machine.smp,
            machine.cpu,
            machine.accel_arg()
        )
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    }
}

fn median_u64(samples: Vec<u64>) -> u64 {
    let nanos = samples.into_iter().map(Duration::from_nanos).collect();
    median(nanos).as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        assert_eq!(median(ms(&[5, 1, 3])), Duration::from_millis(3));
        assert_eq!(
            median(ms(&[4, 1, 3, 2])),
            Duration::from_millis(2) + Duration::from_micros(500)
        );
        assert_eq!(median(ms(&[7])), Duration::from_millis(7));
        assert_eq!(median_u64(vec![9, 1, 5, 7]), 6);
    }

    #[test]
    fn benches_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Probe {
            #[command(flatten)]
            args: Args,
        }
        let p = Probe::try_parse_from(["bench", "entry", "--runs", "3"]).unwrap();
        assert!(matches!(p.args.what, Bench::Entry));
        assert_eq!((p.args.runs, p.args.smp), (3, 4));
        assert_eq!(p.args.tcg_single_step, Switch::On);
        assert!(Probe::try_parse_from(["bench", "nothing"]).is_err());
    }
}
