//! `cargo xtask matrix` (the platform divergence table): the kernel's catalog on every platform this machine
//! offers, plus results imported from real hardware, as one hazard x platform
//! table with each departure from silicon marked (`table.rs`).
//!
//! (Not the boot matrix of `cargo xtask test`, `runner/matrix.rs`, which
//! checks that every door boots: this one compares platforms, hazard by hazard.)
//!
//! Platforms: QEMU TCG with the suites' `-cpu max` (x2APIC) and `-cpu qemu64`
//! (xAPIC), Intel-vendor,
//! both with one instruction per translation block so NMIs can land on any
//! instruction; Bochs when installed; QEMU KVM when the CPU offers VMX/SVM
//! and /dev/kvm opens (else the table says why not). `--import` adds a QR
//! text, serial log, JSON-lines, JUnit or LAVA result file per machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use anyhow::{Context, Result};
use testkit::Strategy;

use crate::cmd::opts::{self, SUITE_CPUS};
use crate::media::{kernel, limine};
use crate::qemu::accel::{self, Accel};
use crate::qemu::bochs;
use crate::qemu::emulator::Emulator;
use crate::report::console::{self, Console};
use crate::report::divergence as table;
use crate::report::finding::{Finding, Machine, Outcome};
use crate::report::lava_results;
use crate::report::platform::Platform;
use crate::report::tally::Tally;
use crate::report::verdict::{Report, Verdict};
use crate::runner::boot::{Artifacts, BootConfig, Door};
use crate::runner::sequence::{self, Shared, Spec};

/// Run the catalog on every platform here and print the hazard x platform table.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only the kernel tests whose name contains this text.
    #[arg(long, value_name = "SUBSTR")]
    filter: Option<String>,
    /// Under this strategy only [default: all four].
    #[arg(long, value_name = "STRATEGY", value_parser = opts::parse_strategy)]
    entry: Option<Strategy>,
    /// Iterations for every kernel test (each test caps it).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    iterations: Option<u32>,
    /// Results from elsewhere (QR text, serial log, `--json`, `--junit`,
    /// a LAVA job's log): one more column per machine they name.
    #[arg(long, value_name = "FILE")]
    import: Vec<PathBuf>,
    /// Run nothing here: only the imported results.
    #[arg(long)]
    no_run: bool,
    /// Also write the table as Markdown to PATH.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    /// Where the runs' results go as JSON lines, one per test and strategy
    /// with its machine (`cargo xtask results FILE` renders them again, or
    /// merges them with other machines') [default: target/matrix-results.jsonl].
    #[arg(long, value_name = "PATH")]
    save: Option<PathBuf>,
    /// Also write the table as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Seconds one boot may take before it counts as a hang.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    timeout: u64,
    /// Directory with the Limine 8.2.0 binaries (Bochs boots the ISO).
    #[arg(long, value_name = "DIR")]
    limine_dir: Option<PathBuf>,
}

/// One column to run here.
struct Column {
    machine: Machine,
    emulator: Emulator,
    accel: Accel,
    door: Door,
    cpu: String,
    smp: u32,
    lapic: String,
}

fn qemu(accel: Accel, cpu: &str) -> Column {
    let lapic = Emulator::Qemu.lapic_label(cpu);
    let model = cpu.split(',').next().unwrap_or(cpu);
    Column {
        machine: Machine {
            platform: Emulator::Qemu.platform(accel),
            cpu: format!("{model} ({})", lapic.replace("apic", "APIC")),
            ucode: None,
        },
        emulator: Emulator::Qemu,
        accel,
        door: Door::Pvh,
        cpu: cpu.into(),
        smp: 4,
        lapic,
    }
}

/// The platforms this machine offers, and a note for each it does not.
fn platforms() -> Result<(Vec<Column>, Vec<String>)> {
    let mut columns: Vec<Column> = SUITE_CPUS.iter().map(|cpu| qemu(Accel::Tcg, cpu)).collect();
    let mut notes = Vec::new();
    if bochs::installed() {
        columns.push(Column {
            machine: Machine {
                platform: Platform::Bochs,
                cpu: format!("{} (x2APIC, ips={})", bochs::CPU_MODEL, bochs::IPS),
                ucode: None,
            },
            emulator: Emulator::Bochs,
            accel: Accel::Tcg,
            door: Door::LimineBios,
            cpu: bochs::CPU_MODEL.into(),
            smp: 2,
            lapic: "x2apic".into(),
        });
    } else {
        notes.push(format!("Bochs: not available here: {}", bochs::MISSING));
    }
    let kvm = accel::choose(accel::Request::Auto)?;
    if kvm.accel == Accel::Kvm {
        columns.push(qemu(Accel::Kvm, "host"));
    } else {
        notes.push(format!(
            "KVM: not available here ({}); the hw-only tests run under KVM (--accel kvm) \
             and on bare metal",
            kvm.reason
        ));
    }
    notes.push(
        "bare metal: import a QR text or serial log with --import (cargo xtask image, \
         cargo xtask usb)"
            .into(),
    );
    Ok((columns, notes))
}

/// A report of a suite as a finding on `machine`.
pub fn finding_of(report: &Report, machine: &Machine) -> Finding {
    let (outcome, message) = match &report.verdict {
        Verdict::Pass => (Outcome::Pass, report.note.clone()),
        Verdict::Fail(why) => (Outcome::Fail, why.clone()),
        Verdict::Skip(why) => (Outcome::Skip, why.clone()),
        Verdict::NotReproduced(why) => (Outcome::NotReproduced, why.clone()),
    };
    Finding {
        test: report.name.clone(),
        strategy: report.labels.first().cloned().unwrap_or_default(),
        outcome,
        message,
        machine: machine.clone(),
    }
}

fn run_here(args: &Args, columns: &[Column]) -> Result<Vec<Finding>> {
    let kernel = kernel::kernel()?;
    let limine = if columns.iter().any(|c| c.door.needs_limine()) {
        Some(limine::require(args.limine_dir.as_deref())?)
    } else {
        None
    };
    let artifacts = Artifacts::new(kernel).with_limine(limine);
    let tally = Mutex::new(Tally::new(Console::for_stdout()));
    let found = Mutex::new(Vec::new());
    let boots = AtomicUsize::new(0);
    let strategies = args.entry.map_or(Strategy::ALL.to_vec(), |s| vec![s]);
    for column in columns {
        console::note(&format!("matrix: {}", column.machine));
        let shared = Shared {
            artifacts: &artifacts,
            accel: column.accel,
            tally: &tally,
            json: None,
            boots: &boots,
        };
        let worker = tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .console()
            .worker();
        for &strategy in &strategies {
            let mut words = vec![format!("entry={}", strategy.name())];
            words.extend(args.filter.as_ref().map(|f| format!("filter={f}")));
            words.extend(args.iterations.map(|n| format!("iterations={n}")));
            let spec = Spec {
                strategy: strategy.name().into(),
                lapic: column.lapic.clone(),
                config: BootConfig::new(column.door, column.smp, column.cpu.clone(), words)
                    .with_single_step(true)
                    .with_emulator(column.emulator),
                retry: true,
                boot_timeout: Duration::from_secs(args.timeout),
                counted: true,
            };
            artifacts.prepare(&spec.config)?;
            sequence::run(&spec, &shared, &worker, &mut |report| {
                let f = finding_of(&report, &column.machine);
                found.lock().unwrap_or_else(|p| p.into_inner()).push(f);
                tally
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(report);
            });
        }
    }
    tally
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .console()
        .finish();
    Ok(found.into_inner().unwrap_or_else(|p| p.into_inner()))
}

pub fn main(args: Args) -> Result<ExitCode> {
    let mut findings = Vec::new();
    for path in &args.import {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--import: cannot read `{}`", path.display()))?;
        findings.extend(lava_results::read_any(&text, &path.display().to_string())?);
    }
    // What this machine offers holds with or without runs.
    let (columns, notes) = platforms()?;
    if !args.no_run {
        let mut here = run_here(&args, &columns)?;
        let save = args
            .save
            .clone()
            .unwrap_or_else(|| crate::target_dir().join("matrix-results.jsonl"));
        let lines: String = here.iter().map(|f| f.to_json_line() + "\n").collect();
        std::fs::write(&save, lines)
            .with_context(|| format!("--save: cannot write `{}`", save.display()))?;
        eprintln!("matrix: results in {}", save.display());
        here.append(&mut findings);
        findings = here;
    }
    let table = table::build(&findings, notes);
    println!("\n{}", table.render_text());
    if let Some(path) = &args.markdown {
        std::fs::write(path, table.render_markdown())
            .with_context(|| format!("--markdown: cannot write `{}`", path.display()))?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&table.to_json())?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("--json: cannot write `{}`", path.display()))?;
    }
    let unexplained = table.unexplained();
    if unexplained > 0 {
        println!(
            "{unexplained} cells depart from silicon with no explanation: istorm failures until shown otherwise"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
