//! `cargo xtask bench entry`: exception entry against its floors, per strategy.
//!
//! - `bench::int3_roundtrip`: INT3 -> #BP -> IRET on one CPU;
//! - `bench::nmi_roundtrip`: CPU 0 sends CPU 1 an NMI and waits until CPU 1
//!   has counted it: the floor of one cross-CPU NMI (printed, not the target's);
//! - `bench::nmi_self_roundtrip`: a CPU sends itself an NMI and waits for it:
//!   the floor the nested iteration is held against, since its NMI comes the
//!   same way (the #DB sends its own), with no second vCPU to wake;
//! - `bench::nested_roundtrip`: the nested #DB+NMI iteration alone (a #DB, an
//!   NMI landing inside it, the NMI's write that raises the nested #DB where
//!   the strategy lets it), measured against the self-sent NMI floor of the
//!   same boot;
//!   its details say where the cycles go (the checker's halves and the
//!   bodies of the #DB and of the NMI);
//! - `bench::db_roundtrip`: the nested iteration's outer #DB alone (the same
//!   watched write and entry, no NMI); with the self-sent NMI it is the floor
//!   under the nested iteration on this platform, printed beside it;
//! - `bench::nested_icebp_roundtrip`, `bench::db_icebp_roundtrip`: the same
//!   two with the outer #DB raised by ICEBP: the same entry and armed DR7
//!   without the emulator's watchpoint path;
//! - `bench::dr7_roundtrip`: DR7 cleared and put back with the watchpoint
//!   armed, no exception: what the DR7 guard's two writes cost by themselves;
//! - `scenarios::db_kernel_nmi_db`: the torture scenario's iteration, which
//!   adds its aiming (a seeded random delay before each NMI, sent by a second
//!   CPU), the register damage probe and its per-iteration verdicts.
//!
//! The round trips are measured with the checker and with `checker=off`, so
//! the strategy's own cost shows apart from the checker's. Each test reports
//! `cycles_per_iteration`; the TSC rate in the kernel's `hello` turns cycles
//! into iterations per second.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use testkit::Strategy;
use testkit::protocol::{OwnedEvent, Transcript, parse_stream};

use super::Setup;
use super::entry_floor as floor;
use super::entry_trips::{
    INT3, LINUX_TARGET, Measured, NESTED, NMI, NMI_SELF, Row, SCENARIO, TRIPS, Trips, median_of,
    numbers,
};
use crate::runner::suite;

/// One boot with `words`, parsed, and why it stopped early (`None`: it ran
/// to its end). The results before a crash still count.
fn boot(setup: &Setup, words: &[&str]) -> Result<(Transcript, Option<String>)> {
    let config = setup.config(words);
    let out = setup.artifacts.boot(
        &config,
        setup.accel(),
        setup.timeout(),
        crate::qemu::process::Echo::Quiet,
    )?;
    let transcript = parse_stream(out.serial.as_bytes());
    let early = (!transcript.is_complete()).then(|| {
        let tail = suite::failure_detail(&out.serial, &out.stderr);
        format!(
            "the boot with `{}` did not finish: {}; last line `{}`",
            words.join(" "),
            out.end,
            tail.last().map_or("", String::as_str)
        )
    });
    Ok((transcript, early))
}

/// One boot's numbers: the TSC rate, each named test's (`None`: no number),
/// and what went wrong.
struct Boot {
    mhz: u64,
    got: Vec<Option<Measured>>,
    problems: Vec<String>,
}

/// Boots once with `words`; the TSC rate and each named test's cycles per
/// iteration with its details, as far as the boot got.
fn measure(setup: &Setup, words: &[&str], tests: &[&str]) -> Result<Boot> {
    let (transcript, early) = boot(setup, words)?;
    let line = words.join(" ");
    let mhz = transcript
        .events()
        .find_map(|(_, e)| match e {
            OwnedEvent::Hello { tsc_mhz, .. } => Some(*tsc_mhz),
            _ => None,
        })
        .filter(|&mhz| mhz > 0)
        .with_context(|| format!("the boot with `{line}` names no TSC rate in its hello"))?;
    let mut problems: Vec<String> = early.into_iter().collect();
    let mut got = Vec::new();
    for test in tests {
        let result = transcript.events().find_map(|(_, e)| match e {
            OwnedEvent::Result {
                test: t,
                cycles_per_iteration,
                details,
                outcome,
                ..
            } if t == test => Some((*cycles_per_iteration, outcome.word(), details.clone())),
            _ => None,
        });
        got.push(match result {
            Some((cycles, word, details)) if cycles > 0 && word != "FAILED" => {
                Some(Measured { cycles, details })
            }
            Some((_, word, details)) => {
                problems.push(format!(
                    "{test} with `{line}`: {word} without a cycle count ({details})"
                ));
                None
            }
            // After a crash the missing ones are said by `early`.
            None if problems.is_empty() => {
                problems.push(format!(
                    "the boot with `{line}` has no result for {test}: is the kernel up to date?"
                ));
                None
            }
            None => None,
        });
    }
    Ok(Boot { mhz, got, problems })
}

/// The first six numbers of `bench::nested_roundtrip`'s details: #DB and NMI,
/// each checker in, body, checker out (cycles per entry).
fn split(details: &str) -> Option<[u64; 6]> {
    let values: Vec<u64> = numbers(details).into_iter().map(|(_, v)| v).collect();
    values.get(..6)?.try_into().ok()
}

/// Iterations per second at `mhz` TSC ticks per microsecond.
pub fn per_second(mhz: u64, cycles_per_iteration: u64) -> f64 {
    mhz as f64 * 1e6 / cycles_per_iteration as f64
}

pub fn run(setup: &Setup) -> Result<ExitCode> {
    let runs = setup.args.runs;
    let mut rows = Vec::new();
    let mut rates = Vec::new();
    let mut problems = Vec::new();
    for strategy in Strategy::ALL {
        let entry = format!("entry={}", strategy.name());
        let mut row = Row {
            strategy,
            with: Trips::default(),
            without: Trips::default(),
            scenario: Vec::new(),
        };
        // A run that crashes or hangs costs its samples, not the table.
        for _ in 0..runs {
            let off = [entry.as_str(), "filter=_roundtrip", "checker=off"];
            for (words, trips) in [
                (&[entry.as_str(), "filter=_roundtrip"][..], &mut row.with),
                (&off[..], &mut row.without),
            ] {
                match measure(setup, words, &TRIPS) {
                    Ok(b) => {
                        rates.push(b.mhz);
                        trips.add(&b.got);
                        problems.extend(b.problems);
                    }
                    Err(e) => problems.push(format!("{e:#}")),
                }
            }
            match measure(setup, &[&entry, "filter=db_kernel_nmi_db"], &[SCENARIO]) {
                Ok(b) => {
                    row.scenario.extend(b.got[0].as_ref().map(|m| m.cycles));
                    problems.extend(b.problems);
                }
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        rows.push(row);
    }
    let Some(mhz) = median_of(&rates) else {
        bail!("no run gave a number: {}", problems.join("; "));
    };
    print_table(&rows, mhz, runs, setup);
    floor::print(&rows);
    for problem in &problems {
        println!("lost a sample: {problem}");
    }
    verdict(&rows);
    Ok(ExitCode::SUCCESS)
}

fn print_table(rows: &[Row], mhz: u64, runs: u32, setup: &Setup) {
    println!(
        "\nentry round trips, {runs} runs each (median), {}, TSC {mhz} MHz:",
        setup.describe()
    );
    let cycles = |c: Option<u64>| c.map_or("n/a".to_string(), |c| c.to_string());
    let ratio = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{r:.2}x"));
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8} {:>10} {:>8}",
        "strategy",
        "nested",
        "NMI self",
        "NMI x-CPU",
        "INT3",
        "x self",
        "nested off",
        "self off",
        "x off",
        "scenario",
        "x x-CPU"
    );
    for row in rows {
        // The scenario's NMI comes from a second CPU: its floor is the cross-CPU one.
        let scenario = median_of(&row.scenario);
        let scenario_ratio = scenario
            .zip(row.with.median(NMI))
            .map(|(s, n)| s as f64 / n as f64);
        println!(
            "{:<10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8} {:>10} {:>8}",
            row.strategy.name(),
            cycles(row.with.median(NESTED)),
            cycles(row.with.median(NMI_SELF)),
            cycles(row.with.median(NMI)),
            cycles(row.with.median(INT3)),
            ratio(row.with.ratio()),
            cycles(row.without.median(NESTED)),
            cycles(row.without.median(NMI_SELF)),
            ratio(row.without.ratio()),
            cycles(scenario),
            ratio(scenario_ratio),
        );
    }
    println!(
        "(cycles per iteration; `nested` = bench::nested_roundtrip, a #DB with an NMI inside it \
         and the NMI's nested-#DB attempt, its NMI self-sent, held against `NMI self`, the \
         self-sent NMI round trip; `scenario` = db_kernel_nmi_db's iteration, with its \
         aimed random delay, a second CPU's handshake and its verdicts, held against the \
         cross-CPU NMI; INT3 ~{:.0}/s)",
        rows.iter()
            .find_map(|r| r.with.median(INT3))
            .map_or(0.0, |c| per_second(mhz, c))
    );
    println!("where a nested iteration's cycles go (cycles per iteration):");
    for row in rows {
        for (label, trips) in [("checker", &row.with), ("checker off", &row.without)] {
            if let Some(line) = where_it_goes(trips) {
                println!("  {:<10} {label:<11} {line}", row.strategy.name());
            }
        }
    }
}

/// `total = #DB entry and exit stub + #DB checker in + #DB body (NMI inside)
/// + #DB checker out`, the NMI split the same way.
fn where_it_goes(trips: &Trips) -> Option<String> {
    let total = trips.median(NESTED)?;
    let [d_in, d_body, d_out, n_in, n_body, n_out] = split(trips.details.as_deref()?)?;
    let db_stub = total.saturating_sub(d_in + d_body + d_out);
    let nmi_rest = d_body.saturating_sub(n_in + n_body + n_out);
    Some(format!(
        "{total} = #DB stub (pushes, strategy work, pops, IRET) {db_stub} + checker in {d_in} \
         + body {d_body} [NMI: checker in {n_in} + body {n_body} + checker out {n_out} + its \
         stub, delivery and the #DB's own body {nmi_rest}] + checker out {d_out}"
    ))
}

fn verdict(rows: &[Row]) {
    let Some(linux) = rows.iter().find(|r| r.strategy == Strategy::Linux) else {
        println!("linux within 2x of the NMI round-trip floor: unknown (no linux numbers)");
        return;
    };
    for (label, trips) in [("", &linux.with), (" with checker=off", &linux.without)] {
        match trips.ratio() {
            Some(r) => {
                let verdict = if r <= LINUX_TARGET { "yes" } else { "no" };
                println!(
                    "linux nested #DB+NMI iteration within {LINUX_TARGET}x of the (self-sent) NMI round trip{label}: {verdict} ({r:.2}x)"
                );
            }
            None => println!("linux within 2x{label}: unknown (no numbers)"),
        }
    }
    if let Some(line) = floor::why_not(rows, linux) {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_numbers_are_read_in_order() {
        let d = "db: checker_in=5 body=6 checker_out=7; nmi: checker_in=8 body=9 checker_out=10 (cycles per outer #DB and per NMI); nmi_in_db=2000 nested_db=0";
        assert_eq!(split(d), Some([5, 6, 7, 8, 9, 10]));
        assert_eq!(split("db: checker_in=5"), None);
    }

    #[test]
    fn cycles_become_iterations_per_second() {
        assert_eq!(per_second(2600, 2600), 1e6);
        assert_eq!(per_second(1000, 4000), 250_000.0);
    }
}
