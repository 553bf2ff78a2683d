//! The README's strategy table, generated from a run's `--json` lines: one row
//! per kernel scenario, one column per strategy, each cell the verdict and the
//! count it rests on (the detection rate, the held prediction, the incidents).
//! Both LAPIC modes are folded into one cell when they agree.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::model::{Cell, Run};
use crate::report::verdict::CRASHED_AS_EXPECTED;

fn counter(cell: &Cell, name: &str) -> Option<u64> {
    cell.counters
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
}

/// What one result shows, in a few words.
fn words(cell: &Cell) -> String {
    let expected = cell.expected.as_deref().unwrap_or("");
    match (cell.outcome.as_str(), expected) {
        ("fail", _) => "**FAILED**".into(),
        ("not-reproduced", _) => "not reproduced".into(),
        ("skip", _) if cell.message.contains("hw-only") => "`hw-only`".into(),
        ("skip", _) => "skipped".into(),
        ("pass", "detect") => match (counter(cell, "detected"), counter(cell, "hazards")) {
            (Some(d), Some(h)) => format!("corrupts, **detected** {d}/{h}"),
            _ => "corrupts, **detected**".into(),
        },
        ("pass", "timing") => {
            // The kernel says "prediction held: N landings corrupted, M clean".
            let held = cell.message.split(';').next().unwrap_or("").trim();
            format!("timing: {held}")
        }
        // An expected-crash test (`mce_nesting`): the crash is its pass.
        ("pass", _) if cell.message.starts_with(CRASHED_AS_EXPECTED) => {
            let rest = &cell.message[CRASHED_AS_EXPECTED.len()..];
            format!(
                "crashes as expected ({})",
                rest.split(':').next().unwrap_or(rest).trim()
            )
        }
        ("pass", _) => match counter(cell, "incidents") {
            Some(0) | None => "survives".into(),
            Some(n) => format!("survives? {n} incidents"),
        },
        (other, _) => other.to_string(),
    }
}

/// One text when every LAPIC mode says the same, else each mode's own.
fn fold(texts: &[(&str, String)]) -> String {
    if texts.iter().all(|(_, t)| *t == texts[0].1) {
        return texts[0].1.clone();
    }
    let each: Vec<String> = texts
        .iter()
        .map(|(lapic, t)| format!("{lapic}: {t}"))
        .collect();
    each.join("; ")
}

/// Per scenario, per strategy: each LAPIC mode's cell text.
type Rows<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Vec<(&'a str, String)>>>;

/// The table as Markdown, scenarios in name order.
pub fn markdown(run: &Run) -> String {
    let strategies = run.strategies();
    let mut rows: Rows = BTreeMap::new();
    for cell in &run.cells {
        if cell.strategy.is_empty() || !cell.test.starts_with("scenarios::") {
            continue;
        }
        let cells = rows.entry(&cell.test).or_default();
        cells
            .entry(&cell.strategy)
            .or_default()
            .push((&cell.lapic, words(cell)));
    }
    let mut out = String::new();
    let _ = writeln!(out, "| scenario | {} |", strategies.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(strategies.len()));
    for (test, cells) in &rows {
        let name = test.trim_start_matches("scenarios::");
        let texts: Vec<String> = strategies
            .iter()
            .map(|s| cells.get(s.as_str()).map_or("-".into(), |t| fold(t)))
            .collect();
        let _ = writeln!(out, "| `{name}` | {} |", texts.join(" | "));
    }
    out
}

/// Every sweep with a per-landing prediction (`shift-only`), as Markdown: per
/// instruction of the stub, the NMIs that landed there, how many of them the
/// checker found corrupting, and what the prediction said.
pub fn timing_markdown(run: &Run) -> String {
    let mut out = String::new();
    for w in run
        .windows
        .iter()
        .filter(|w| w.rows.values().any(|l| l.predicted.is_some()))
    {
        let (mut hits, mut corrupted) = (0, 0);
        let _ = writeln!(
            out,
            "\n`{}` [{}, {}] on `{}`:\n",
            w.test, w.strategy, w.lapic, w.stub
        );
        let _ = writeln!(out, "| offset | NMIs | corrupted | predicted |");
        let _ = writeln!(out, "|---|---|---|---|");
        for (offset, l) in &w.rows {
            hits += l.hits;
            corrupted += l.corrupted;
            let predicted = match l.predicted {
                Some(true) => "corrupt",
                Some(false) => "clean",
                None => "-",
            };
            let _ = writeln!(
                out,
                "| +{offset:#x} | {} | {} | {predicted} |",
                l.hits, l.corrupted
            );
        }
        let _ = writeln!(out, "| all | {hits} | {corrupted} | |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(test: &str, strategy: &str, lapic: &str, outcome: &str, expected: &str) -> Cell {
        Cell {
            test: test.into(),
            strategy: strategy.into(),
            lapic: lapic.into(),
            outcome: outcome.into(),
            expected: Some(expected.into()),
            ..Cell::default()
        }
    }

    #[test]
    fn cells_say_what_the_verdict_rests_on() {
        let mut detected = cell("scenarios::a", "naive", "x2apic", "pass", "detect");
        detected.counters = vec![("hazards".into(), 40), ("detected".into(), 40)];
        let mut timing = cell("scenarios::a", "shift-only", "x2apic", "pass", "timing");
        timing.message = "prediction held: 3 landings corrupted, 9 clean; nmi_in_db=7".into();
        let mut clean = cell("scenarios::a", "linux", "x2apic", "pass", "survive");
        clean.counters = vec![("incidents".into(), 0)];
        let failed = cell("scenarios::a", "linux", "xapic", "fail", "survive");
        let mut crashed = cell("scenarios::b", "linux", "x2apic", "pass", "survive");
        crashed.message = "crashed as expected: triple fault: QEMU exited with status 0".into();
        let run = Run {
            cells: vec![detected, timing, clean, failed, crashed],
            windows: Vec::new(),
        };
        let table = markdown(&run);
        assert!(
            table.starts_with("| scenario | naive | shift-only | linux |"),
            "{table}"
        );
        assert!(table.contains("corrupts, **detected** 40/40"), "{table}");
        assert!(table.contains("timing: prediction held: 3 landings corrupted, 9 clean"));
        assert!(
            table.contains("| `b` | - | - | crashes as expected (triple fault) |"),
            "{table}"
        );
        // The two LAPIC modes disagree: both are shown.
        assert!(
            table.contains("x2apic: survives; xapic: **FAILED**"),
            "{table}"
        );
    }
}
