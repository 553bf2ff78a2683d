//! Mutation testing of the entry code: builds a kernel per mutant of
//! `testkit::mutants::CATALOG` (`media::kernel::mutant_kernel`), runs the
//! suites of its plan (PVH, one strategy, one test filter each) and reads
//! the verdicts: a test that fails kills the mutant, and the failure text
//! names why (corruption detected, NMI lost, register damaged, crash, hang,
//! or the scenario's own check). The matrix and the JSON are in
//! `mutants_matrix.rs`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use testkit::mutants::{Mutant, Probe};

use crate::media::kernel;
use crate::media::limine::Limine;
use crate::qemu::accel::Accel;
use crate::qemu::emulator::Emulator;
use crate::report::console::Worker;
use crate::report::tally::Tally;
use crate::report::verdict::{Report, Verdict};
use crate::runner::boot::{Artifacts, BootConfig, Door};
use crate::runner::sequence::{self, Shared, Spec};

/// Why a mutant died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    /// A detect or timing verdict flipped, or the checker found incidents
    /// under a strategy expected to survive.
    Corruption,
    NmiLost,
    RegisterDamaged,
    /// Panic, exception, triple fault.
    Crash,
    Hang,
    /// The scenario's own proof failed (a count, a landing, a #DB missing).
    Check,
}

impl Kill {
    pub fn word(self) -> &'static str {
        match self {
            Kill::Corruption => "corruption detected",
            Kill::NmiLost => "NMI lost",
            Kill::RegisterDamaged => "register damaged",
            Kill::Crash => "crash",
            Kill::Hang => "hang",
            Kill::Check => "scenario check failed",
        }
    }

    /// The matrix cell.
    pub fn code(self) -> &'static str {
        match self {
            Kill::Corruption => "CORRUPT",
            Kill::NmiLost => "NMI-LOST",
            Kill::RegisterDamaged => "REGS",
            Kill::Crash => "CRASH",
            Kill::Hang => "HANG",
            Kill::Check => "CHECK",
        }
    }
}

/// One probe's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// A test failed: the mutant is dead. The text is that test's verdict.
    Killed(Kill, String),
    /// Every test passed.
    Survived,
    /// The platform never produced the hazard (or the strategy skips it).
    NotReproduced(String),
    /// No test of this kernel matches the filter (a scenario still to come).
    Missing,
    /// An earlier probe killed the mutant already.
    NotRun,
    /// The host could not run it (build, emulator).
    HostError(String),
}

/// What a verdict's text says about why a test failed.
/// Only the verdict's first clause counts: what follows `; ` is the test's
/// notes (`incidents=0` says nothing about why it failed).
pub fn classify(text: &str) -> Kill {
    let t = text.split("; ").next().unwrap_or(text).to_ascii_lowercase();
    if t.contains("hang:") || t.starts_with("hang") || t.contains("no end in sight") {
        Kill::Hang
    } else if ["crash", "panic", "exception", "triple fault"]
        .iter()
        .any(|w| t.contains(w))
    {
        Kill::Crash
    } else if t.contains("nmis lost") || t.contains("nmi lost") || t.contains("lost nmi") {
        Kill::NmiLost
    } else if t.contains("damaged") && (t.contains("register") || t.contains("regs")) {
        Kill::RegisterDamaged
    } else if [
        "incident",
        "detection rate",
        "expected corruption",
        "prediction",
        "corrupt",
        "must corrupt",
    ]
    .iter()
    .any(|w| t.contains(w))
    {
        Kill::Corruption
    } else {
        Kill::Check
    }
}

/// The cell for one probe's reports.
pub fn judge(reports: &[Report]) -> Cell {
    if let Some(r) = reports
        .iter()
        .find(|r| matches!(r.verdict, Verdict::Fail(_)))
    {
        let Verdict::Fail(why) = &r.verdict else {
            unreachable!()
        };
        if why.contains("host failure") || why.contains("not judged") {
            return Cell::HostError(format!("{}: {why}", r.name));
        }
        return Cell::Killed(classify(why), format!("{}: {why}", r.name));
    }
    if reports.is_empty() {
        return Cell::Missing;
    }
    if reports.iter().any(|r| r.verdict == Verdict::Pass) {
        return Cell::Survived;
    }
    let why = reports
        .iter()
        .map(|r| match &r.verdict {
            Verdict::Skip(w) | Verdict::NotReproduced(w) => format!("{}: {w}", r.name),
            _ => r.name.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    Cell::NotReproduced(why)
}

/// The CPU model of every probe (the suites' x2APIC model).
pub const CPU: &str = "max,vendor=GenuineIntel";

/// How every probe boots.
pub struct Settings {
    pub accel: Accel,
    pub iterations: u32,
    pub smp: u32,
    pub cpu: String,
    /// QEMU (PVH) or Bochs (the Limine ISO under BIOS).
    pub emulator: Emulator,
    /// Limine, for the doors that need it (Bochs boots the Limine ISO).
    pub limine: Option<Limine>,
    pub timeout: Duration,
    /// Run every probe of the plan, not only up to the first kill.
    pub all_probes: bool,
}

/// One mutant's results, probe by probe.
pub struct Outcome {
    pub mutant: &'static Mutant,
    pub cells: Vec<(Probe, Cell)>,
    pub build: Duration,
    pub run: Duration,
}

impl Outcome {
    /// The first kill: the probe and the reason.
    pub fn killed(&self) -> Option<(&Probe, Kill, &str)> {
        self.cells.iter().find_map(|(p, c)| match c {
            Cell::Killed(kill, why) => Some((p, *kill, why.as_str())),
            _ => None,
        })
    }
}

/// Mutant builds share one target directory: one at a time.
static BUILD: Mutex<()> = Mutex::new(());

/// The report of one mutant for `cargo xtask test`: passes when killed.
pub fn report(outcome: &Outcome) -> Report {
    let name = format!("mutants::{}", outcome.mutant.name);
    match outcome.killed() {
        Some((p, kill, why)) => Report {
            note: format!(
                "killed: {} by {} [{}] ({why})",
                kill.word(),
                p.filter,
                p.strategy.name()
            ),
            ..Report::new(name, Verdict::Pass)
        },
        None => {
            let cells: Vec<String> = outcome
                .cells
                .iter()
                .map(|(p, c)| format!("{} [{}]: {c:?}", p.filter, p.strategy.name()))
                .collect();
            Report::new(
                name,
                Verdict::Fail(format!("the mutant survived: {}", cells.join("; "))),
            )
        }
    }
}

/// Builds `mutant` and runs its plan.
pub fn run(mutant: &'static Mutant, settings: &Settings, worker: &Worker) -> Outcome {
    worker.set(format!("mutant {}: building", mutant.name));
    let started = Instant::now();
    let elf: Result<PathBuf, String> = {
        let _one = BUILD.lock().unwrap_or_else(|p| p.into_inner());
        kernel::mutant_kernel(mutant.name).map_err(|e| format!("{e:#}"))
    };
    let build = started.elapsed();
    let started = Instant::now();
    let mut cells = Vec::new();
    let mut dead = false;
    for probe in mutant.plan {
        let cell = match &elf {
            Err(e) => Cell::HostError(e.clone()),
            Ok(_) if dead && !settings.all_probes => Cell::NotRun,
            Ok(elf) => {
                worker.set(format!(
                    "mutant {}: {} [{}]",
                    mutant.name,
                    probe.filter,
                    probe.strategy.name()
                ));
                judge(&probe_reports(elf, probe, settings, worker))
            }
        };
        dead |= matches!(cell, Cell::Killed(..));
        cells.push((*probe, cell));
    }
    Outcome {
        mutant,
        cells,
        build,
        run: started.elapsed(),
    }
}

/// Boots `elf` with the probe's strategy and filter; every test's report.
fn probe_reports(
    elf: &std::path::Path,
    probe: &Probe,
    s: &Settings,
    worker: &Worker,
) -> Vec<Report> {
    let artifacts = Artifacts::new(elf.to_path_buf()).with_limine(s.limine.clone());
    let tally = Mutex::new(Tally::new(crate::report::console::Console::quiet()));
    let boots = AtomicUsize::new(0);
    let shared = Shared {
        artifacts: &artifacts,
        accel: s.accel,
        tally: &tally,
        json: None,
        boots: &boots,
    };
    let door = match s.emulator {
        Emulator::Qemu => Door::Pvh,
        Emulator::Bochs => Door::LimineBios,
    };
    let mut words = vec![
        format!("entry={}", probe.strategy.name()),
        format!("filter={}", probe.filter),
    ];
    if !probe.full {
        words.push(format!("iterations={}", s.iterations));
    }
    let spec = Spec {
        strategy: probe.strategy.name().into(),
        lapic: s.emulator.lapic_label(&s.cpu),
        config: BootConfig::new(door, s.smp, s.cpu.clone(), words)
            .with_single_step(s.emulator == Emulator::Qemu && s.accel == Accel::Tcg)
            .with_emulator(s.emulator),
        // A crash is the finding; no second try.
        retry: false,
        boot_timeout: s.timeout,
        counted: false,
    };
    let mut reports = Vec::new();
    sequence::run(&spec, &shared, worker, &mut |r| reports.push(r));
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_texts_name_their_reason() {
        let cases = [
            (
                "checker found 3 incidents under a strategy expected to survive",
                Kill::Corruption,
            ),
            ("expected corruption, none detected", Kill::Corruption),
            ("detection rate 50% (1/2): below 100%", Kill::Corruption),
            ("prediction wrong at 3 of 40 landings", Kill::Corruption),
            ("2 NMIs lost", Kill::NmiLost),
            (
                "1 registers of the interrupted code damaged",
                Kill::RegisterDamaged,
            ),
            (
                "crashed: exception #PF (vector 14) on cpu 0: page fault",
                Kill::Crash,
            ),
            (
                "crashed: triple fault: QEMU exited with status 0",
                Kill::Crash,
            ),
            (
                "crashed: hang: the kernel's watchdog found cpu 0 stuck",
                Kill::Hang,
            ),
            ("the handlers never raised the second #DB", Kill::Check),
            (
                "no NMI landed inside a #DB handler in 100 iterations; incidents=0 lost_nmis=0",
                Kill::Check,
            ),
            (
                "prediction untested: 0 landings predicted to corrupt, 0 clean",
                Kill::Corruption,
            ),
            (
                "the checker missed a damaged dr7 (17 of 23 words missed)",
                Kill::Check,
            ),
        ];
        for (text, kill) in cases {
            assert_eq!(classify(text), kill, "{text}");
        }
    }

    #[test]
    fn a_failure_kills_and_nothing_is_missing_silently() {
        let pass = Report::new("t::a", Verdict::Pass);
        let fail = Report::new("t::b", Verdict::Fail("2 NMIs lost".into()));
        let nr = Report::new("t::c", Verdict::NotReproduced("no #DB".into()));
        assert!(matches!(
            judge(&[pass.clone(), fail]),
            Cell::Killed(Kill::NmiLost, _)
        ));
        assert_eq!(judge(&[pass]), Cell::Survived);
        assert!(matches!(judge(&[nr]), Cell::NotReproduced(_)));
        assert_eq!(judge(&[]), Cell::Missing);
    }
}
