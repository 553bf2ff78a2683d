//! A run as the report shows it, read from the `--json` lines of
//! `cargo xtask test` (see `jsonlog.rs`): results, the kernel's evidence for
//! each, and where the NMIs of each sweep landed (`window` events).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

/// One test result of one suite (strategy x LAPIC mode), or a host check.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cell {
    pub test: String,
    /// Empty for host checks (boot matrix, disk image).
    pub strategy: String,
    pub lapic: String,
    pub outcome: String,
    pub message: String,
    pub seconds: f64,
    /// From the kernel's own `result` event, when there was one.
    pub expected: Option<String>,
    pub iterations: Option<u64>,
    /// The kernel's counters (`corruptions`, `nmis`, ...), in its order.
    pub counters: Vec<(String, u64)>,
}

/// Landings of one sweep on one stub: offset -> (hits, corrupted, predicted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub test: String,
    pub strategy: String,
    pub lapic: String,
    pub stub: String,
    pub rows: BTreeMap<u64, Landing>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Landing {
    pub hits: u64,
    pub corrupted: u64,
    /// Under a timing expectation: whether a landing here must corrupt.
    pub predicted: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    pub cells: Vec<Cell>,
    pub windows: Vec<Window>,
}

/// Key of a kernel `result` event: test, strategy, LAPIC mode.
type Key = (String, String, String);

fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

impl Run {
    pub fn parse(jsonl: &str) -> Result<Run> {
        let mut run = Run::default();
        let mut kernel: BTreeMap<Key, Value> = BTreeMap::new();
        let mut windows: BTreeMap<(Key, String), Window> = BTreeMap::new();
        for (i, line) in jsonl.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record: Value = serde_json::from_str(line)
                .with_context(|| format!("line {}: not a JSON record", i + 1))?;
            match record.get("record").and_then(Value::as_str) {
                Some("event") => {
                    let event = record.get("event").cloned().unwrap_or(Value::Null);
                    let kind = event.get("type").or_else(|| event.get("event"));
                    let key = (
                        text(&event, "test"),
                        text(&record, "strategy"),
                        text(&record, "lapic"),
                    );
                    match kind.and_then(Value::as_str) {
                        Some("result") => {
                            kernel.insert(key, event);
                        }
                        Some("window") => {
                            let stub = text(&event, "stub");
                            let window =
                                windows
                                    .entry((key.clone(), stub.clone()))
                                    .or_insert_with(|| Window {
                                        test: key.0.clone(),
                                        strategy: key.1.clone(),
                                        lapic: key.2.clone(),
                                        stub,
                                        rows: BTreeMap::new(),
                                    });
                            add_landings(window, &event);
                        }
                        _ => {}
                    }
                }
                Some("result") => run.cells.push(Cell {
                    test: text(&record, "test"),
                    strategy: label(&record, 0),
                    lapic: label(&record, 1),
                    outcome: text(&record, "outcome"),
                    message: text(&record, "message"),
                    seconds: record.get("seconds").and_then(Value::as_f64).unwrap_or(0.0),
                    ..Cell::default()
                }),
                _ => {}
            }
        }
        for cell in &mut run.cells {
            let key = (cell.test.clone(), cell.strategy.clone(), cell.lapic.clone());
            if let Some(event) = kernel.get(&key) {
                cell.expected = event
                    .get("expected")
                    .and_then(Value::as_str)
                    .map(String::from);
                cell.iterations = event.get("iterations").and_then(Value::as_u64);
                if let Some(Value::Object(counters)) = event.get("counters") {
                    cell.counters = counters
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                        .collect();
                }
            }
        }
        run.windows = windows.into_values().collect();
        Ok(run)
    }

    /// The strategies in the run, in the order of the catalog.
    pub fn strategies(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for cell in &self.cells {
            if !cell.strategy.is_empty() && !seen.contains(&cell.strategy) {
                seen.push(cell.strategy.clone());
            }
        }
        seen.sort_by_key(|s| strategy_rank(s));
        seen
    }

    /// The kernel tests in the run, in the order they first appear.
    pub fn scenarios(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for cell in self.cells.iter().filter(|c| !c.strategy.is_empty()) {
            if !seen.contains(&cell.test) {
                seen.push(cell.test.clone());
            }
        }
        seen
    }
}

/// Weaker strategies first, as the README's table has them.
pub fn strategy_rank(name: &str) -> (usize, String) {
    const ORDER: &[&str] = &[
        "naive",
        "shift-ist",
        "shift-only",
        "dr7-guard",
        "linux-4.19",
        "linux",
    ];
    (
        ORDER.iter().position(|s| *s == name).unwrap_or(ORDER.len()),
        name.to_string(),
    )
}

fn label(record: &Value, at: usize) -> String {
    record
        .get("labels")
        .and_then(|l| l.get(at))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// A `window` event: one instruction (`offset`, `hits`, `corrupted`,
/// `predicted`) or, in the early shape, all of them as `rows`.
fn add_landings(window: &mut Window, event: &Value) {
    let mut add = |offset: Option<u64>, hits: Option<u64>, corrupted: Option<u64>, p| {
        if let (Some(offset), Some(hits)) = (offset, hits) {
            let row = window.rows.entry(offset).or_default();
            row.hits += hits;
            row.corrupted += corrupted.unwrap_or(0);
            row.predicted = row.predicted.or(p);
        }
    };
    if let Some(Value::Array(rows)) = event.get("rows") {
        for row in rows {
            let at = |i: usize| row.get(i).and_then(Value::as_u64);
            add(at(0), at(1), at(2), None);
        }
    } else {
        let at = |f: &str| event.get(f).and_then(Value::as_u64);
        let predicted = event.get("predicted").and_then(Value::as_bool);
        add(at("offset"), at("hits"), at("corrupted"), predicted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = r#"{"record":"event","boot":1,"strategy":"naive","lapic":"x2apic","line":3,"event":{"type":"window","test":"scenarios::t","stub":"db_stub","offset":4,"hits":7,"corrupted":2,"predicted":true}}
{"record":"event","boot":1,"strategy":"naive","lapic":"x2apic","line":4,"event":{"event":"window","test":"scenarios::t","stub":"db_stub","base":1,"rows":[[0,1,0],[4,1,1]]}}
{"record":"event","boot":1,"strategy":"naive","lapic":"x2apic","line":5,"event":{"type":"result","test":"scenarios::t","strategy":"naive","outcome":"pass","expected":"detect","iterations":10,"counters":{"corruptions":3,"nmis":10}}}
{"record":"result","test":"scenarios::t","labels":["naive","x2apic"],"outcome":"pass","message":"m","seconds":1.5}
{"record":"result","test":"scenarios::t","labels":["linux","x2apic"],"outcome":"fail","message":"n","seconds":0.5}
{"record":"result","test":"boot::pvh","labels":[],"outcome":"pass","message":"","seconds":0.2}
"#;

    #[test]
    fn results_meet_their_kernel_evidence_and_windows_add_up() {
        let run = Run::parse(LINES).unwrap();
        assert_eq!(run.cells.len(), 3);
        let naive = &run.cells[0];
        assert_eq!(naive.expected.as_deref(), Some("detect"));
        assert_eq!(naive.iterations, Some(10));
        assert_eq!(
            naive.counters,
            [("corruptions".into(), 3), ("nmis".into(), 10)]
        );
        assert_eq!(run.cells[1].expected, None);
        assert_eq!(run.strategies(), ["naive", "linux"]);
        assert_eq!(run.scenarios(), ["scenarios::t"]);
        assert_eq!(run.windows.len(), 1);
        let rows = &run.windows[0].rows;
        assert_eq!(rows[&0].hits, 1);
        assert_eq!(
            (rows[&4].hits, rows[&4].corrupted, rows[&4].predicted),
            (8, 3, Some(true))
        );
    }

    #[test]
    fn garbage_is_reported_with_its_line() {
        let e = Run::parse("{\"record\":\"result\"}\nnot json\n").unwrap_err();
        assert!(format!("{e:#}").starts_with("line 2:"), "{e:#}");
    }
}
