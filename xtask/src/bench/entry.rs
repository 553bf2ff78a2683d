//! `cargo xtask bench entry`: exception entry against its floors, per strategy.
//!
//! - `bench::int3_roundtrip`: INT3 -> #BP -> IRET on one CPU;
//! - `bench::nmi_roundtrip`: CPU 0 sends CPU 1 an NMI and waits until CPU 1
//!   has counted it: the floor of one cross-CPU NMI;
//! - `scenarios::db_kernel_nmi_db`: one iteration is a nested #DB plus a
//!   cross-CPU NMI, so the NMI round trip is the floor it is measured against.
//!
//! Each test reports `cycles_per_iteration`; the kernel's `time: tsc_mhz=N`
//! line turns cycles into iterations per second.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use testkit::Strategy;
use testkit::protocol::{OwnedEvent, parse_stream};

use super::{Setup, median_u64};
use crate::{serial, suite};

const INT3: &str = "bench::int3_roundtrip";
const NMI: &str = "bench::nmi_roundtrip";
const SCENARIO: &str = "scenarios::db_kernel_nmi_db";
/// The strategy that must stay this close to the NMI floor.
const LINUX_TARGET: f64 = 2.0;

/// Boots once with `words`; the TSC rate and each named test's cycles per
/// iteration.
fn measure(setup: &Setup, words: &[&str], tests: &[&str]) -> Result<(u64, Vec<u64>)> {
    let config = setup.config(words);
    let out = setup.artifacts.boot(
        &config,
        setup.accel(),
        setup.timeout(),
        crate::process::Echo::Quiet,
    )?;
    let line = words.join(" ");
    let transcript = parse_stream(out.serial.as_bytes());
    if !transcript.is_complete() {
        let tail = suite::failure_detail(&out.serial, &out.stderr);
        bail!(
            "the boot with `{line}` did not finish: {}; last line `{}`",
            out.end,
            tail.last().map_or("", String::as_str)
        );
    }
    let mhz = serial::tsc_mhz(&out.serial)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("the boot with `{line}`"))?;
    let mut cycles = Vec::new();
    for test in tests {
        let found = transcript.events().find_map(|(_, e)| match e {
            OwnedEvent::Result {
                test: t,
                cycles_per_iteration,
                details,
                outcome,
                ..
            } if t == test => Some((*cycles_per_iteration, outcome.word(), details.clone())),
            _ => None,
        });
        match found {
            Some((c, _, _)) if c > 0 => cycles.push(c),
            Some((_, word, details)) => {
                bail!("{test} with `{line}`: {word} without a cycle count ({details})")
            }
            None => {
                bail!("the boot with `{line}` has no result for {test}: is the kernel up to date?")
            }
        }
    }
    Ok((mhz, cycles))
}

/// Iterations per second at `mhz` TSC ticks per microsecond.
pub fn per_second(mhz: u64, cycles_per_iteration: u64) -> f64 {
    mhz as f64 * 1e6 / cycles_per_iteration as f64
}

struct Row {
    strategy: Strategy,
    int3: u64,
    nmi: u64,
    scenario: u64,
}

pub fn run(setup: &Setup) -> Result<ExitCode> {
    let runs = setup.args.runs;
    let mut rows = Vec::new();
    let mut rates = Vec::new();
    for strategy in Strategy::ALL {
        let entry = format!("entry={}", strategy.name());
        let (mut int3, mut nmi, mut scenario) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (mhz, floors) = measure(setup, &[&entry, "filter=_roundtrip"], &[INT3, NMI])?;
            let (_, nested) = measure(setup, &[&entry, "filter=db_kernel_nmi_db"], &[SCENARIO])?;
            rates.push(mhz);
            int3.push(floors[0]);
            nmi.push(floors[1]);
            scenario.push(nested[0]);
        }
        rows.push(Row {
            strategy,
            int3: median_u64(int3),
            nmi: median_u64(nmi),
            scenario: median_u64(scenario),
        });
    }
    let mhz = median_u64(rates);
    println!(
        "\nentry round trips, {runs} runs each (median), {}, TSC {mhz} MHz:",
        setup.describe()
    );
    println!(
        "{:<10} {:>16} {:>12} {:>16} {:>16}",
        "strategy", "db_kernel_nmi_db", "x NMI floor", "INT3 floor", "NMI floor"
    );
    let rate = |c| format!("{:.0}/s", per_second(mhz, c));
    let mut linux = None;
    for row in &rows {
        let ratio = row.scenario as f64 / row.nmi as f64;
        if row.strategy == Strategy::Linux {
            linux = Some(ratio);
        }
        println!(
            "{:<10} {:>16} {:>11.2}x {:>16} {:>16}",
            row.strategy.name(),
            rate(row.scenario),
            ratio,
            rate(row.int3),
            rate(row.nmi)
        );
    }
    println!(
        "(iterations per second; cycles per iteration: {})",
        rows.iter()
            .map(|r| format!("{} {}/{}/{}", r.strategy, r.scenario, r.int3, r.nmi))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(ratio) = linux {
        let verdict = if ratio <= LINUX_TARGET { "yes" } else { "no" };
        println!("linux within 2x of the NMI round-trip floor: {verdict} ({ratio:.2}x)");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_become_iterations_per_second() {
        assert_eq!(per_second(2600, 2600), 1e6);
        assert_eq!(per_second(1000, 4000), 250_000.0);
    }
}
