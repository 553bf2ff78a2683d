//! `cargo xtask bench entry`: exception entry against its floors, per strategy.
//!
//! - `bench::int3_roundtrip`: INT3 -> #BP -> IRET on one CPU;
//! - `bench::nmi_roundtrip`: CPU 0 sends CPU 1 an NMI and waits until CPU 1
//!   has counted it: the floor of one cross-CPU NMI;
//! - `scenarios::db_kernel_nmi_db`: one iteration is a nested #DB plus a
//!   cross-CPU NMI, so the NMI round trip is the floor it is measured against.
//!
//! Each test reports `cycles_per_iteration`; the TSC rate in the kernel's
//! `hello` turns cycles into iterations per second. The nested iteration is
//! measured twice, with the checker and with `checker=off`, so the strategy's
//! own cost shows apart from the checker's; `bench::entry_phases` says where an
//! entry's cycles go (the checker's entry half, the body, its exit half).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use testkit::Strategy;
use testkit::protocol::{OwnedEvent, parse_stream};

use super::{Setup, median_u64};
use crate::runner::suite;

const INT3: &str = "bench::int3_roundtrip";
const NMI: &str = "bench::nmi_roundtrip";
const SCENARIO: &str = "scenarios::db_kernel_nmi_db";
const PHASES: &str = "bench::entry_phases";
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
        crate::qemu::process::Echo::Quiet,
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
    let mhz = transcript
        .events()
        .find_map(|(_, e)| match e {
            OwnedEvent::Hello { tsc_mhz, .. } => Some(*tsc_mhz),
            _ => None,
        })
        .filter(|&mhz| mhz > 0)
        .with_context(|| format!("the boot with `{line}` names no TSC rate in its hello"))?;
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

/// The `key=value` numbers of a result's details, in order.
fn numbers(details: &str) -> Vec<(String, u64)> {
    details
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// `bench::entry_phases` under `words`: cycles per entry of #DB and of NMI in
/// the checker's entry half, the body and its exit half.
fn phases(setup: &Setup, words: &[&str]) -> Result<[u64; 6]> {
    let config = setup.config(words);
    let out = setup.artifacts.boot(
        &config,
        setup.accel(),
        setup.timeout(),
        crate::qemu::process::Echo::Quiet,
    )?;
    let transcript = parse_stream(out.serial.as_bytes());
    let details = transcript
        .events()
        .find_map(|(_, e)| match e {
            OwnedEvent::Result { test, details, .. } if test == PHASES => Some(details.clone()),
            _ => None,
        })
        .with_context(|| format!("no result for {PHASES} with `{}`", words.join(" ")))?;
    let values: Vec<u64> = numbers(&details).into_iter().map(|(_, v)| v).collect();
    values
        .try_into()
        .map_err(|_| anyhow::anyhow!("{PHASES}: cannot read `{details}`"))
}

/// Iterations per second at `mhz` TSC ticks per microsecond.
pub fn per_second(mhz: u64, cycles_per_iteration: u64) -> f64 {
    mhz as f64 * 1e6 / cycles_per_iteration as f64
}

/// Medians of cycles per iteration; `None` where no run gave a number.
struct Row {
    strategy: Strategy,
    int3: Option<u64>,
    nmi: Option<u64>,
    scenario: Option<u64>,
    /// The nested iteration with `checker=off`: the strategy's own cost.
    bare: Option<u64>,
    /// `bench::entry_phases` with the checker, and without.
    phases: Option<[u64; 6]>,
    bare_phases: Option<[u64; 6]>,
}

fn median_of(samples: Vec<u64>) -> Option<u64> {
    (!samples.is_empty()).then(|| median_u64(samples))
}

pub fn run(setup: &Setup) -> Result<ExitCode> {
    let runs = setup.args.runs;
    let mut rows = Vec::new();
    let mut rates = Vec::new();
    let mut problems = Vec::new();
    for strategy in Strategy::ALL {
        let entry = format!("entry={}", strategy.name());
        let (mut int3, mut nmi, mut scenario) = (Vec::new(), Vec::new(), Vec::new());
        let mut bare = Vec::new();
        // A run that crashes or hangs costs its sample, not the table.
        for _ in 0..runs {
            match measure(setup, &[&entry, "filter=_roundtrip"], &[INT3, NMI]) {
                Ok((mhz, floors)) => {
                    rates.push(mhz);
                    int3.push(floors[0]);
                    nmi.push(floors[1]);
                }
                Err(e) => problems.push(format!("{e:#}")),
            }
            match measure(setup, &[&entry, "filter=db_kernel_nmi_db"], &[SCENARIO]) {
                Ok((mhz, nested)) => {
                    rates.push(mhz);
                    scenario.push(nested[0]);
                }
                Err(e) => problems.push(format!("{e:#}")),
            }
            let off = [entry.as_str(), "filter=db_kernel_nmi_db", "checker=off"];
            match measure(setup, &off, &[SCENARIO]) {
                Ok((_, nested)) => bare.push(nested[0]),
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        let filter = format!("filter={PHASES}");
        let with = phases(setup, &[&entry, &filter]).map_err(|e| problems.push(format!("{e:#}")));
        let without = phases(setup, &[&entry, &filter, "checker=off"])
            .map_err(|e| problems.push(format!("{e:#}")));
        rows.push(Row {
            strategy,
            int3: median_of(int3),
            nmi: median_of(nmi),
            scenario: median_of(scenario),
            bare: median_of(bare),
            phases: with.ok(),
            bare_phases: without.ok(),
        });
    }
    let Some(mhz) = median_of(rates) else {
        bail!("no run gave a number: {}", problems.join("; "));
    };
    println!(
        "\nentry round trips, {runs} runs each (median), {}, TSC {mhz} MHz:",
        setup.describe()
    );
    println!(
        "{:<10} {:>18} {:>12} {:>14} {:>14}",
        "strategy", "db_kernel_nmi_db", "x NMI floor", "INT3 floor", "NMI floor"
    );
    let rate = |c: Option<u64>| {
        c.map_or("n/a".to_string(), |c| {
            format!("{:.0}/s", per_second(mhz, c))
        })
    };
    let ratio = |row: &Row| Some(row.scenario? as f64 / row.nmi? as f64);
    for row in &rows {
        println!(
            "{:<10} {:>18} {:>12} {:>14} {:>14}",
            row.strategy.name(),
            rate(row.scenario),
            ratio(row).map_or("n/a".to_string(), |r| format!("{r:.2}x")),
            rate(row.int3),
            rate(row.nmi)
        );
    }
    let cycles = |c: Option<u64>| c.map_or("n/a".to_string(), |c| c.to_string());
    println!("cycles per iteration (scenario / INT3 / NMI):");
    for row in &rows {
        println!(
            "  {:<10} {} / {} / {}",
            row.strategy.name(),
            cycles(row.scenario),
            cycles(row.int3),
            cycles(row.nmi)
        );
    }
    println!("where an entry's cycles go (cycles per entry: checker in / body / checker out):");
    let three = |p: Option<[u64; 6]>, at: usize| {
        p.map_or("n/a".to_string(), |p| {
            format!("{} / {} / {}", p[at], p[at + 1], p[at + 2])
        })
    };
    for row in &rows {
        println!(
            "  {:<10} #DB {:<24} NMI {:<24} checker off: #DB {:<22} NMI {}",
            row.strategy.name(),
            three(row.phases, 0),
            three(row.phases, 3),
            three(row.bare_phases, 0),
            three(row.bare_phases, 3)
        );
    }
    let bare_ratio = |row: &Row| Some(row.bare? as f64 / row.nmi? as f64);
    println!("nested iteration x NMI floor, checker off (the strategy's own cost):");
    for row in &rows {
        println!(
            "  {:<10} {}",
            row.strategy.name(),
            bare_ratio(row).map_or("n/a".to_string(), |r| format!("{r:.2}x"))
        );
    }
    for problem in &problems {
        println!("lost a sample: {problem}");
    }
    match rows
        .iter()
        .find(|r| r.strategy == Strategy::Linux)
        .and_then(ratio)
    {
        Some(r) => {
            let verdict = if r <= LINUX_TARGET { "yes" } else { "no" };
            println!("linux within 2x of the NMI round-trip floor: {verdict} ({r:.2}x)");
            if let Some(b) = rows
                .iter()
                .find(|r| r.strategy == Strategy::Linux)
                .and_then(bare_ratio)
            {
                let verdict = if b <= LINUX_TARGET { "yes" } else { "no" };
                println!("linux within 2x without the checker's cost: {verdict} ({b:.2}x)");
            }
        }
        None => println!("linux within 2x of the NMI round-trip floor: unknown (no linux numbers)"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_numbers_are_read_in_order() {
        let d = "db: checker_in=5 body=6 checker_out=7; nmi: checker_in=8 body=9 checker_out=10 (cycles per entry)";
        let v: Vec<u64> = numbers(d).into_iter().map(|(_, v)| v).collect();
        assert_eq!(v, [5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn cycles_become_iterations_per_second() {
        assert_eq!(per_second(2600, 2600), 1e6);
        assert_eq!(per_second(1000, 4000), 250_000.0);
    }
}
