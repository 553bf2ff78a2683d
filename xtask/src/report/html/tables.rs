//! The page's tables past the matrix and the heat map: the timing table,
//! any JSON as a table (platform divergence), the trend, the host checks.

use std::fmt::Write;

use serde_json::Value;

use super::model::{Cell, Run, Window};
use super::parts::{Inputs, checked, keys, rows_of};
use super::trend::Point;
use crate::report::markup::escape;

/// Windows with a per-instruction prediction (the timing-dependent
/// strategies): predicted against seen.
pub fn timing(page: &mut String, inputs: &Inputs) {
    let timed: Vec<&Window> = inputs
        .run
        .windows
        .iter()
        .filter(|w| w.rows.values().any(|r| r.predicted.is_some()))
        .collect();
    page.push_str("<h2>Timing: predicted against seen</h2>\n");
    if timed.is_empty() {
        page.push_str("<p>No window in this run carries a prediction.</p>\n");
        return;
    }
    for w in timed {
        let insns = rows_of(&w.stub, &[w], inputs.stubs);
        let _ = write!(
            page,
            "<h3><code>{}</code> {} {}, <code>{}</code></h3>\n<table><tr><th>offset</th>\
             <th>instruction</th><th>predicted</th><th>landed</th><th>corrupted</th><th>held</th></tr>\n",
            escape(&w.test),
            escape(&w.strategy),
            escape(&w.lapic),
            escape(&w.stub)
        );
        for insn in insns {
            let Some(row) = w.rows.get(&insn.offset) else {
                continue;
            };
            let Some(predicted) = row.predicted else {
                continue;
            };
            let held = if row.hits == 0 {
                "not hit"
            } else if predicted == (row.corrupted == row.hits) && (predicted || row.corrupted == 0)
            {
                "yes"
            } else {
                "<span class=\"bad\">no</span>"
            };
            let _ = writeln!(
                page,
                "<tr><td class=\"asm\">+{:#x}</td><td class=\"asm\">{}</td><td>{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{held}</td></tr>",
                insn.offset,
                escape(&insn.text),
                if predicted { "corrupts" } else { "survives" },
                row.hits,
                row.corrupted
            );
        }
        page.push_str("</table>\n");
    }
}

/// Any JSON as a table: an array of objects gets a column per key.
pub fn value_table(page: &mut String, value: &Value) {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => match map.get("rows") {
            Some(Value::Array(items)) => items.iter().collect(),
            _ => vec![value],
        },
        other => vec![other],
    };
    let mut columns: Vec<String> = Vec::new();
    for row in &rows {
        if let Value::Object(map) = row {
            for k in map.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    page.push_str("<table><tr>");
    for c in &columns {
        let _ = write!(page, "<th>{}</th>", escape(c));
    }
    page.push_str("</tr>\n");
    for row in rows {
        page.push_str("<tr>");
        for c in &columns {
            let cell = match row.get(c) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            let _ = write!(page, "<td>{}</td>", escape(&cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n");
}

pub fn trend(page: &mut String, points: &[Point]) {
    page.push_str("<h2>Trend across runs kept under target/runs</h2>\n");
    if points.is_empty() {
        page.push_str("<p>No earlier runs kept.</p>\n");
        return;
    }
    let max = points
        .iter()
        .map(|p| p.iterations_per_s)
        .fold(1.0, f64::max);
    page.push_str("<table><tr><th>run</th><th>kernel iterations/s</th><th></th><th>window coverage</th></tr>\n");
    for p in points {
        let width = (p.iterations_per_s / max * 200.0).round() as u32;
        let coverage = p
            .coverage
            .map_or("-".to_string(), |c| format!("{:.1}%", c * 100.0));
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"num\">{:.0}</td><td><svg width=\"200\" height=\"10\">\
             <rect width=\"{width}\" height=\"10\" fill=\"#58a\"/></svg></td><td class=\"num\">{coverage}</td></tr>",
            escape(&p.run),
            p.iterations_per_s
        );
    }
    page.push_str("</table>\n");
}

pub fn host_checks(page: &mut String, run: &Run) {
    let host: Vec<&Cell> = run.cells.iter().filter(|c| c.strategy.is_empty()).collect();
    if host.is_empty() {
        return;
    }
    page.push_str("<h2>Host checks</h2>\n<table><tr><th>check</th><th>outcome</th><th>seconds</th><th>message</th></tr>\n");
    for c in host {
        let _ = writeln!(
            page,
            "<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td class=\"num\">{:.2}</td><td>{}</td></tr>",
            escape(&c.outcome),
            escape(&c.test),
            checked(&keys::cell(&c.test, "", "", "outcome"), &c.outcome),
            c.seconds,
            escape(&c.message)
        );
    }
    page.push_str("</table>\n");
}
