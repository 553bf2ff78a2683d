//! The kill matrix of `cargo xtask mutants`: one row per mutant, one column
//! per scenario of the plans (the cell shows the reason, with the strategy
//! when a mutant ran that scenario under more than one), then each mutant's
//! verdict in a line, the survivors by name, and the score. The same as JSON.

use std::time::Duration;

use serde_json::{Value, json};

use super::mutants::{Cell, Outcome};

fn short(filter: &str) -> &str {
    filter.strip_prefix("scenarios::").unwrap_or(filter)
}

/// The scenario columns, in the order the catalog first names them.
fn columns(outcomes: &[Outcome]) -> Vec<&'static str> {
    let mut cols = Vec::new();
    for o in outcomes {
        for (p, _) in &o.cells {
            if !cols.contains(&p.filter) {
                cols.push(p.filter);
            }
        }
    }
    cols
}

fn cell_code(cell: &Cell) -> &'static str {
    match cell {
        Cell::Killed(kill, _) => kill.code(),
        Cell::Survived => "survived",
        Cell::NotReproduced(_) => "not-repr",
        Cell::Missing => "missing",
        Cell::NotRun => ".",
        Cell::HostError(_) => "host-err",
    }
}

/// The matrix as text, with a legend of the columns.
pub fn text(outcomes: &[Outcome], elapsed: Duration) -> String {
    let cols = columns(outcomes);
    let width = outcomes
        .iter()
        .map(|o| o.mutant.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!("{:width$}", "mutant");
    for i in 0..cols.len() {
        out += &format!(" {:>10}", format!("S{}", i + 1));
    }
    out += "\n";
    for o in outcomes {
        out += &format!("{:width$}", o.mutant.name);
        for col in &cols {
            let cells: Vec<&str> = o
                .cells
                .iter()
                .filter(|(p, _)| p.filter == *col)
                .map(|(_, c)| cell_code(c))
                .collect();
            let shown = if cells.is_empty() {
                String::new()
            } else {
                cells.join("/")
            };
            out += &format!(" {shown:>10}");
        }
        out += "\n";
    }
    for (i, col) in cols.iter().enumerate() {
        out += &format!("  S{} = {}\n", i + 1, short(col));
    }
    out += "\n";
    for o in outcomes {
        let bug = if o.mutant.bug.is_empty() {
            String::new()
        } else {
            format!(" ({})", o.mutant.bug)
        };
        match o.killed() {
            Some((p, kill, why)) => {
                out += &format!(
                    "killed   {}{bug}: {} by {} [{}]: {why}\n",
                    o.mutant.name,
                    kill.word(),
                    short(p.filter),
                    p.strategy.name()
                );
            }
            None => {
                let why: Vec<String> = o
                    .cells
                    .iter()
                    .map(|(p, c)| {
                        format!(
                            "{} [{}] {}",
                            short(p.filter),
                            p.strategy.name(),
                            survivor_note(c)
                        )
                    })
                    .collect();
                out += &format!("SURVIVED {}{bug}: {}\n", o.mutant.name, why.join("; "));
            }
        }
    }
    let killed = outcomes.iter().filter(|o| o.killed().is_some()).count();
    out += &format!("\n{}\n", score(killed, outcomes.len(), elapsed));
    out
}

fn survivor_note(cell: &Cell) -> String {
    match cell {
        Cell::Survived => "passed".into(),
        Cell::NotReproduced(why) => format!("not reproduced ({why})"),
        Cell::Missing => "no such scenario in this kernel yet".into(),
        Cell::HostError(why) => format!("host error ({why})"),
        Cell::NotRun => "not run".into(),
        Cell::Killed(..) => "killed".into(),
    }
}

/// The last line: the mutation score and the time it took.
pub fn score(killed: usize, total: usize, elapsed: Duration) -> String {
    let pct = (killed * 100).checked_div(total).unwrap_or(0);
    format!(
        "mutation score: {killed}/{total} killed ({pct}%), {} survived; {:.0} s",
        total - killed,
        elapsed.as_secs_f64()
    )
}

/// The whole run as one JSON document.
pub fn json(outcomes: &[Outcome], elapsed: Duration) -> Value {
    let mutants: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let probes: Vec<Value> = o
                .cells
                .iter()
                .map(|(p, c)| {
                    let (result, reason, detail) = match c {
                        Cell::Killed(kill, why) => ("killed", kill.word(), why.clone()),
                        Cell::Survived => ("survived", "", String::new()),
                        Cell::NotReproduced(why) => ("not-reproduced", "", why.clone()),
                        Cell::Missing => ("missing", "", String::new()),
                        Cell::NotRun => ("not-run", "", String::new()),
                        Cell::HostError(why) => ("host-error", "", why.clone()),
                    };
                    json!({
                        "scenario": p.filter,
                        "strategy": p.strategy.name(),
                        "result": result,
                        "reason": reason,
                        "detail": detail,
                    })
                })
                .collect();
            let killed = o.killed();
            json!({
                "name": o.mutant.name,
                "removes": o.mutant.removes,
                "bug": o.mutant.bug,
                "killed": killed.is_some(),
                "reason": killed.map(|(_, k, _)| k.word()),
                "killed_by": killed.map(|(p, _, _)| p.filter),
                "build_s": o.build.as_secs_f64(),
                "run_s": o.run.as_secs_f64(),
                "probes": probes,
            })
        })
        .collect();
    let killed = outcomes.iter().filter(|o| o.killed().is_some()).count();
    json!({
        "killed": killed,
        "total": outcomes.len(),
        "elapsed_s": elapsed.as_secs_f64(),
        "mutants": mutants,
    })
}
