//! `cargo xtask mutants`: mutation testing of the entry code. Every mutant of
//! `testkit::mutants::CATALOG` is a kernel built with `ISTORM_MUTANT=NAME`
//! (one defect, compiled in with GAS `.if` or a Rust `const`; the real build
//! is unchanged), booted under PVH with the strategy and test filter of each
//! probe of its plan until one kills it (`runner/mutants.rs`). Prints the kill
//! matrix, each mutant's verdict with its reason, the survivors and the
//! mutation score with the time it took (`runner/mutants_matrix.rs`); exits
//! non-zero when a mutant survives.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testkit::mutants::{CATALOG, Mutant, find};

use crate::cmd::opts::{self, Common};
use crate::media::limine;
use crate::qemu::emulator::Emulator;
use crate::qemu::{accel, bochs};
use crate::report::console::{self, Console};
use crate::runner::mutants::{self, CPU, Settings};
use crate::runner::mutants_matrix;

/// Build each mutant of the entry code and run the scenarios that must kill it.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these mutants (comma-separated names; `--list` shows them).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    only: Vec<String>,
    /// Only the fast subset (the one `cargo xtask test` runs).
    #[arg(long)]
    fast: bool,
    /// Print the catalog and exit.
    #[arg(long)]
    list: bool,
    /// Run every probe of a mutant's plan, not only up to the first kill.
    #[arg(long)]
    all_probes: bool,
    /// Iterations per test (each test caps it; a probe marked full, a sweep
    /// that needs its whole plan, runs its own count).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// CPUs per boot.
    #[arg(long, default_value_t = 4, value_parser = opts::smp_parser())]
    smp: u32,
    /// Write the matrix as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// The program that runs the probes. Under Bochs they boot the Limine
    /// ISO under BIOS on corei7_skylake_x (x2APIC): the historic bugs'
    /// second platform column.
    #[arg(long, value_enum, default_value_t = Emulator::Qemu)]
    emulator: Emulator,
    #[command(flatten)]
    common: Common,
}

/// The per-boot timeout unless `--timeout` says otherwise: a mutant that
/// hangs is usually caught by the kernel's watchdog well before.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn chosen(args: &Args) -> Result<Vec<&'static Mutant>> {
    if args.only.is_empty() {
        return Ok(CATALOG.iter().filter(|m| !args.fast || m.fast).collect());
    }
    args.only
        .iter()
        .map(|name| match find(name) {
            Some(m) => Ok(m),
            None => bail!("no mutant called `{name}` (cargo xtask mutants --list)"),
        })
        .collect()
}

pub fn main(args: Args) -> Result<ExitCode> {
    if args.list {
        for m in &CATALOG {
            let bug = if m.bug.is_empty() { "-" } else { m.bug };
            println!("{:34} {bug:58} {}", m.name, m.removes);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let chosen = chosen(&args)?;
    let choice = accel::choose(args.common.accel)?;
    let cpu = match args.emulator {
        Emulator::Qemu => CPU.to_string(),
        Emulator::Bochs => bochs::CPU_MODEL.to_string(),
    };
    // Bochs boots the Limine ISO: find Limine before the first build.
    let limine = match args.emulator {
        Emulator::Qemu => None,
        Emulator::Bochs => Some(limine::require(args.common.limine_dir.as_deref())?),
    };
    let platform = match args.emulator {
        Emulator::Qemu => choice.to_string(),
        Emulator::Bochs => "Bochs, Limine ISO under BIOS".to_string(),
    };
    console::note(&format!(
        "{platform}; {} mutants, {cpu} x {}, {} iterations",
        chosen.len(),
        args.smp,
        args.iterations
    ));
    let settings = Settings {
        accel: choice.accel,
        iterations: args.iterations,
        smp: args.smp,
        cpu,
        emulator: args.emulator,
        limine,
        timeout: args.common.timeout_or(BOOT_TIMEOUT),
        all_probes: args.all_probes,
    };
    let started = Instant::now();
    let console = Console::for_stdout();
    let worker = console.worker();
    let mut outcomes = Vec::new();
    for mutant in chosen {
        let outcome = mutants::run(mutant, &settings, &worker);
        let verdict = match outcome.killed() {
            Some((p, kill, _)) => format!("killed ({}, {})", kill.word(), p.filter),
            None => "SURVIVED".into(),
        };
        console.line(&format!(
            "mutant {}: {verdict} [build {:.0} s, run {:.0} s]",
            mutant.name,
            outcome.build.as_secs_f64(),
            outcome.run.as_secs_f64()
        ));
        outcomes.push(outcome);
    }
    drop(worker);
    console.finish();
    let elapsed = started.elapsed();
    print!("\n{}", mutants_matrix::text(&outcomes, elapsed));
    if let Some(path) = &args.json {
        let doc = mutants_matrix::json(&outcomes, elapsed);
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing `{}`", path.display()))?;
    }
    let survived = outcomes.iter().any(|o| o.killed().is_none());
    Ok(if survived {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
