//! The hazard x platform table: for each kernel test, what each machine
//! showed (outcome over the strategies, the key evidence) against what
//! silicon does (`reference.rs`). A cell that departs from the reference is
//! a platform divergence when the departure is explained (a measured one in
//! `reference::KNOWN`, the kernel's own `hw-only` skip on TCG, or the test's
//! telltale saying `not-reproduced`), and unexplained otherwise: an istorm
//! failure until shown to be the platform's.
//!
//! Rendered three ways: a terminal table with numbered notes, Markdown (the
//! README's), and JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

use crate::report::evidence::{evidence, shorten};
use crate::report::finding::{Finding, Machine, Outcome};
use crate::report::platform::Platform;
use crate::report::reference;

/// How a cell compares with the reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Agrees,
    /// The platform departs from silicon, for this reason.
    Divergence(String),
    /// Departs, and nothing explains it.
    Unexplained(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Outcomes over the strategies: `pass 4/4`, `pass 3/4, fail 1/4`.
    pub outcome: String,
    /// The first details a result gave (counts, coverage, reasons).
    pub evidence: String,
    pub status: Status,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub test: String,
    pub hazard: String,
    /// The reference's outcome, or `?` for a test without one.
    pub silicon: String,
    pub cells: Vec<Option<Cell>>,
}

#[derive(Clone, Debug, Default)]
pub struct Table {
    pub columns: Vec<Machine>,
    pub rows: Vec<Row>,
    /// Platforms that could not run here, with the reason.
    pub notes: Vec<String>,
}

/// One numbered note: a test's departure, on every machine that shows it.
struct Footnote<'a> {
    test: &'a str,
    machines: Vec<String>,
    status: &'a Status,
    cells: Vec<&'a Cell>,
}

impl Footnote<'_> {
    fn what(&self) -> String {
        format!("{} on {}", self.test, self.machines.join(", "))
    }
}

/// The cell of one test on one machine.
fn cell(test: &str, platform: Platform, found: &[&Finding]) -> Cell {
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    for f in found {
        *counts.entry(f.outcome).or_default() += 1;
    }
    let total = found.len();
    let outcome = counts
        .iter()
        .map(|(o, n)| format!("{} {n}/{total}", o.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let want = reference::of(test).map_or("pass", |r| r.outcome);
    // A skip the test's expectation asks for under one strategy (not
    // meaningful there) holds on every platform: not a departure. `hw-only`
    // is the platform's.
    let expectation_skip =
        |f: &Finding| f.outcome == Outcome::Skip && !f.message.contains("hw-only");
    let off: Vec<&&Finding> = found
        .iter()
        .filter(|f| f.outcome.name() != want && !expectation_skip(f))
        .collect();
    let evidence = off
        .first()
        .map(|f| f.message.as_str())
        .or(found
            .iter()
            .map(|f| f.message.as_str())
            .find(|m| !m.is_empty()))
        .map(|m| evidence(test, m))
        .unwrap_or_default();
    let status = match off.first() {
        None => Status::Agrees,
        Some(first) => {
            let known = reference::known(test, platform);
            if let Some(k) =
                known.filter(|k| off.iter().all(|f| k.outcomes.contains(&f.outcome.name())))
            {
                Status::Divergence(k.reason.to_string())
            } else if off.iter().all(|f| f.outcome == Outcome::NotReproduced) {
                Status::Divergence(format!(
                    "the test's telltale shows the platform never produced the hazard: {}",
                    shorten(&first.message)
                ))
            } else if platform == Platform::QemuTcg
                && off
                    .iter()
                    .all(|f| f.outcome == Outcome::Skip && f.message.contains("hw-only"))
            {
                Status::Divergence(format!("TCG, the kernel says: {}", first.message))
            } else {
                Status::Unexplained(format!(
                    "{} under {}: {}",
                    first.outcome.name(),
                    first.strategy,
                    shorten(&first.message)
                ))
            }
        }
    };
    Cell {
        outcome,
        evidence,
        status,
    }
}

/// The table of `findings`, one column per machine in the order first seen.
pub fn build(findings: &[Finding], notes: Vec<String>) -> Table {
    let mut columns: Vec<Machine> = Vec::new();
    for f in findings {
        if !columns.contains(&f.machine) {
            columns.push(f.machine.clone());
        }
    }
    let mut tests: Vec<String> = reference::REFERENCES
        .iter()
        .map(|r| r.test.to_string())
        .filter(|t| findings.iter().any(|f| f.test == *t))
        .collect();
    for f in findings {
        if reference::needed(&f.test) && !tests.contains(&f.test) {
            tests.push(f.test.clone());
        }
    }
    let rows = tests
        .into_iter()
        .map(|test| {
            let r = reference::of(&test);
            let cells = columns
                .iter()
                .map(|m| {
                    let found: Vec<&Finding> = findings
                        .iter()
                        .filter(|f| f.test == test && f.machine == *m)
                        .collect();
                    (!found.is_empty()).then(|| cell(&test, m.platform, &found))
                })
                .collect();
            Row {
                hazard: r
                    .map_or("(no reference: add one)", |r| r.hazard)
                    .to_string(),
                silicon: r.map_or("?", |r| r.outcome).to_string(),
                test,
                cells,
            }
        })
        .collect();
    Table {
        columns,
        rows,
        notes,
    }
}

impl Table {
    /// Cells that depart from silicon with nothing to explain it.
    pub fn unexplained(&self) -> usize {
        self.rows
            .iter()
            .flat_map(|r| &r.cells)
            .flatten()
            .filter(|c| matches!(c.status, Status::Unexplained(_)))
            .count()
    }

    /// The notes of the departures, numbered in table order; one note per
    /// test and reason, naming every machine it holds for.
    fn footnotes(&self) -> Vec<Footnote<'_>> {
        let mut notes: Vec<Footnote> = Vec::new();
        for row in &self.rows {
            for (col, c) in self.columns.iter().zip(&row.cells) {
                let Some(c) = c.as_ref().filter(|c| c.status != Status::Agrees) else {
                    continue;
                };
                match notes
                    .iter_mut()
                    .find(|n| n.test == row.test && *n.status == c.status)
                {
                    Some(note) => {
                        note.machines.push(col.to_string());
                        note.cells.push(c);
                    }
                    None => notes.push(Footnote {
                        test: &row.test,
                        machines: vec![col.to_string()],
                        status: &c.status,
                        cells: vec![c],
                    }),
                }
            }
        }
        notes
    }

    fn mark(&self, row: usize, col: usize) -> String {
        let Some(Some(c)) = self.rows[row].cells.get(col) else {
            return "-".into();
        };
        let n = self
            .footnotes()
            .iter()
            .position(|note| note.cells.iter().any(|x| std::ptr::eq(*x, c)))
            .map(|i| i + 1);
        match (&c.status, n) {
            (Status::Divergence(_), Some(n)) => format!("{} DIVERGES[{n}]", c.outcome),
            (Status::Unexplained(_), Some(n)) => format!("{} UNEXPLAINED[{n}]", c.outcome),
            _ => c.outcome.clone(),
        }
    }

    /// The terminal table, notes after it.
    pub fn render_text(&self) -> String {
        let mut header = vec!["test".to_string(), "silicon".to_string()];
        header.extend(self.columns.iter().map(|c| c.to_string()));
        let mut lines = vec![header];
        for (i, row) in self.rows.iter().enumerate() {
            let mut line = vec![row.test.clone(), row.silicon.clone()];
            line.extend((0..self.columns.len()).map(|c| self.mark(i, c)));
            lines.push(line);
        }
        let widths: Vec<usize> = (0..lines[0].len())
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for line in &lines {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(s, w)| format!("{s:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        for (n, note) in self.footnotes().iter().enumerate() {
            let why = match note.status {
                Status::Divergence(why) => format!("platform divergence: {why}"),
                Status::Unexplained(why) => format!("UNEXPLAINED (istorm failure?): {why}"),
                Status::Agrees => continue,
            };
            let _ = writeln!(out, "[{}] {}: {why}", n + 1, note.what());
        }
        for note in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        out
    }

    /// The Markdown table (as in the README), notes after it.
    pub fn render_markdown(&self) -> String {
        let mut out = String::from("| hazard | test | silicon |");
        for c in &self.columns {
            let _ = write!(out, " {c} |");
        }
        out.push_str("\n|---|---|---|");
        out.push_str(&"---|".repeat(self.columns.len()));
        out.push('\n');
        for (i, row) in self.rows.iter().enumerate() {
            let _ = write!(out, "| {} | `{}` | {} |", row.hazard, row.test, row.silicon);
            for (c, cell) in row.cells.iter().enumerate() {
                let text = match cell {
                    None => "-".to_string(),
                    Some(cell) if cell.evidence.is_empty() => self.mark(i, c),
                    Some(cell) => format!(
                        "{}<br>`{}`",
                        self.mark(i, c),
                        cell.evidence.replace('|', "/").replace('`', "'")
                    ),
                };
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
        out.push('\n');
        for (n, note) in self.footnotes().iter().enumerate() {
            let why = match note.status {
                Status::Divergence(why) => format!("platform divergence: {why}"),
                Status::Unexplained(why) => format!("**unexplained**: {why}"),
                Status::Agrees => continue,
            };
            let _ = writeln!(out, "{}. {}: {why}", n + 1, note.what());
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out.push_str("\nWhat silicon does, and where it is written:\n\n");
        for row in &self.rows {
            if let Some(r) = reference::of(&row.test) {
                let _ = writeln!(
                    out,
                    "- `{}`: {} ({})",
                    r.test,
                    r.silicon.split_whitespace().collect::<Vec<_>>().join(" "),
                    r.sources.join("; ")
                );
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let cell = |c: &Cell| {
            let (status, reason) = match &c.status {
                Status::Agrees => ("agrees", None),
                Status::Divergence(w) => ("platform-divergence", Some(w)),
                Status::Unexplained(w) => ("unexplained", Some(w)),
            };
            json!({"outcome": c.outcome, "evidence": c.evidence, "status": status, "reason": reason})
        };
        json!({
            "columns": self.columns.iter().map(|m| json!({
                "platform": m.platform.name(), "cpu": m.cpu, "ucode": m.ucode,
                "label": m.to_string(),
            })).collect::<Vec<_>>(),
            "rows": self.rows.iter().map(|r| json!({
                "test": r.test, "hazard": r.hazard, "silicon": r.silicon,
                "cells": r.cells.iter().map(|c| c.as_ref().map(cell)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}

#[cfg(test)]
#[path = "divergence_tests.rs"]
mod tests;
