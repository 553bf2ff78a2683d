//! `cargo xtask bench boot`: wall time of whole QEMU processes, the median of
//! several runs each, against the floor (QEMU started paused and told to quit).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::ValueEnum;

use crate::boot::{Artifacts, BootConfig, Door};
use crate::exit::Exit;
use crate::limine::{self, Lookup};
use crate::opts::Common;
use crate::process::Echo;
use crate::qemu::{self, End, Machine};
use crate::{accel, build};

/// Measure boot times.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum)]
    what: Bench,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Bench {
    /// Boot-to-exit of each door against the QEMU floor.
    Boot,
}

const SMP: u32 = 4;
const CPU: &str = "max";
/// PVH must stay this close to the floor to count as the fast path.
const PVH_TARGET: f64 = 1.5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    }
}

pub fn main(args: Args) -> Result<ExitCode> {
    let Bench::Boot = args.what;
    let choice = accel::choose(args.common.accel)?;
    let timeout = args.common.timeout();
    let kernel = build::kernel_or(args.common.kernel.as_ref())?;
    let mut artifacts = Artifacts::new(kernel);
    let config = |door| BootConfig {
        door,
        smp: SMP,
        cpu: CPU.into(),
        args: Vec::new(),
    };
    let mut doors = vec![Door::Pvh];
    let mut skipped = Vec::new();
    match limine::locate(args.common.limine_dir.as_deref())? {
        Lookup::Found(l) => {
            for door in [Door::LimineBios, Door::LimineUefi] {
                artifacts.prepare(&config(door), Some(&l))?;
                doors.push(door);
            }
        }
        Lookup::Missing(why) => skipped.push(format!("limine doors skipped: {why}")),
    }
    eprintln!("{choice}");

    let machine = Machine {
        smp: SMP,
        cpu: CPU.into(),
        accel: choice.accel,
    };
    let floor = median(
        (0..args.runs)
            .map(|_| qemu::floor(&machine, timeout))
            .collect::<Result<_>>()?,
    );
    let mut rows = vec![("floor (-S, quit)".to_string(), floor)];
    for door in doors {
        let mut samples = Vec::new();
        for _ in 0..args.runs {
            let out = artifacts.boot(&config(door), choice.accel, timeout, Echo::Quiet)?;
            if out.end != End::Exited(Exit::Success) {
                bail!("{} boot did not succeed: {}", door.label(), out.end);
            }
            samples.push(out.elapsed);
        }
        rows.push((format!("{} boot-to-exit", door.label()), median(samples)));
    }

    println!(
        "\nboot times, {} runs each (median), smp {SMP}, cpu {CPU}, accel {}:",
        args.runs,
        choice.accel.qemu_name()
    );
    println!("{:<28} {:>9} {:>9}", "what", "seconds", "x floor");
    for (what, time) in &rows {
        let ratio = time.as_secs_f64() / floor.as_secs_f64();
        println!("{what:<28} {:>9.3} {ratio:>8.2}x", time.as_secs_f64());
    }
    for line in skipped {
        println!("{line}");
    }
    let pvh = rows[1].1.as_secs_f64() / floor.as_secs_f64();
    let verdict = if pvh <= PVH_TARGET { "yes" } else { "no" };
    println!("PVH within {PVH_TARGET}x of the floor: {verdict} ({pvh:.2}x)");
    Ok(ExitCode::SUCCESS)
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
    }
}
