//! The report as one self-contained HTML page: no script, no fetch, styles
//! inline. Every number a check compares carries `data-check="KEY"`; the keys
//! are made by [`keys`], which the browser check rebuilds from the JSON alone.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::disasm;
use super::model::{Cell, Run, Window};
use super::parts::{Inputs, checked, keys, rows_of};
use super::tables;
use crate::report::markup::escape;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;\
vertical-align:top;text-align:left}th{background:#f3f3f3}code,.asm{font-family:monospace}\
.pass{background:#e3f6e3}.fail{background:#fbdcdc}.skip{background:#eee}\
.not-reproduced{background:#fff3cd}.ev{font-size:12px;color:#444}.num{text-align:right}\
.bad{color:#b00;font-weight:bold}";

pub fn render(inputs: &Inputs) -> String {
    let mut page = String::new();
    let title = escape(inputs.title);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <link rel=\"icon\" href=\"data:,\"><title>{title}</title><style>{STYLE}</style>\
         </head><body><h1>{title}</h1>\n"
    );
    summary(&mut page, inputs.run);
    matrix(&mut page, inputs.run);
    heat(&mut page, inputs);
    tables::timing(&mut page, inputs);
    if let Some(platforms) = inputs.platforms {
        page.push_str("<h2>Platform divergence</h2>\n");
        tables::value_table(&mut page, platforms);
    }
    tables::trend(&mut page, inputs.trend);
    tables::host_checks(&mut page, inputs.run);
    page.push_str("</body></html>\n");
    page
}

fn summary(page: &mut String, run: &Run) {
    page.push_str("<p>");
    for outcome in ["pass", "fail", "skip", "not-reproduced"] {
        let n = run.cells.iter().filter(|c| c.outcome == outcome).count();
        let _ = write!(
            page,
            "{} {outcome} &nbsp; ",
            checked(&keys::summary(outcome), n)
        );
    }
    page.push_str("</p>\n");
}

fn matrix(page: &mut String, run: &Run) {
    let strategies = run.strategies();
    page.push_str("<h2>Strategy x scenario</h2>\n<table><tr><th>scenario</th>");
    for s in &strategies {
        let _ = write!(page, "<th>{}</th>", escape(s));
    }
    page.push_str("</tr>\n");
    for test in run.scenarios() {
        let _ = write!(page, "<tr><th><code>{}</code></th>", escape(&test));
        for strategy in &strategies {
            page.push_str("<td>");
            for cell in run
                .cells
                .iter()
                .filter(|c| c.test == test && &c.strategy == strategy)
            {
                evidence(page, cell);
            }
            page.push_str("</td>");
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n");
}

fn evidence(page: &mut String, cell: &Cell) {
    let key = |what: &str| keys::cell(&cell.test, &cell.strategy, &cell.lapic, what);
    let _ = write!(
        page,
        "<div class=\"{}\" title=\"{}\"><b>{}</b> {}",
        escape(&cell.outcome),
        escape(&cell.message),
        escape(&cell.lapic),
        checked(&key("outcome"), &cell.outcome)
    );
    if let Some(expected) = &cell.expected {
        let _ = write!(page, " (expected {})", escape(expected));
    }
    page.push_str("<div class=\"ev\">");
    if let Some(n) = cell.iterations {
        let _ = write!(page, "iterations {}", checked(&key("iterations"), n));
    }
    for (name, value) in &cell.counters {
        let _ = write!(page, ", {} {}", escape(name), checked(&key(name), value));
    }
    page.push_str("</div></div>");
}

/// Grouped by stub and test: one column pair per strategy and LAPIC mode.
fn groups(run: &Run) -> BTreeMap<(String, String), Vec<&Window>> {
    let mut groups: BTreeMap<(String, String), Vec<&Window>> = BTreeMap::new();
    for w in &run.windows {
        groups
            .entry((w.stub.clone(), w.test.clone()))
            .or_default()
            .push(w);
    }
    for windows in groups.values_mut() {
        windows.sort_by_key(|w| (super::model::strategy_rank(&w.strategy), w.lapic.clone()));
    }
    groups
}

fn stub_name(symbol: &str) -> &str {
    disasm::STUBS
        .iter()
        .find(|(s, _)| *s == symbol)
        .map_or(symbol, |(_, name)| name)
}

fn heat(page: &mut String, inputs: &Inputs) {
    page.push_str("<h2>Where the NMIs landed</h2>\n");
    if inputs.run.windows.is_empty() {
        page.push_str("<p>This run has no window events.</p>\n");
        return;
    }
    page.push_str("<p>Per instruction: NMIs that landed there / of those, the ones after which the checker found a damaged frame. Blue: landings; red: corruptions.</p>\n");
    for ((stub, test), windows) in groups(inputs.run) {
        let _ = write!(
            page,
            "<h3>{} (<code>{}</code>) in <code>{}</code></h3>\n<table><tr><th>offset</th><th>instruction</th>",
            escape(stub_name(&stub)),
            escape(&stub),
            escape(&test)
        );
        for w in &windows {
            let _ = write!(
                page,
                "<th colspan=\"2\">{} {}</th>",
                escape(&w.strategy),
                escape(&w.lapic)
            );
        }
        page.push_str("</tr>\n");
        let max = windows
            .iter()
            .flat_map(|w| w.rows.values().map(|r| r.hits))
            .max()
            .unwrap_or(0)
            .max(1);
        for insn in rows_of(&stub, &windows, inputs.stubs) {
            let _ = write!(
                page,
                "<tr><td class=\"asm\">+{:#x}</td><td class=\"asm\" title=\"{}\">{}</td>",
                insn.offset,
                escape(&insn.bytes),
                escape(&insn.text)
            );
            for w in &windows {
                let row = w.rows.get(&insn.offset).copied().unwrap_or_default();
                let key =
                    |what| keys::heat(&w.test, &w.strategy, &w.lapic, &w.stub, insn.offset, what);
                let blue = 255 - (row.hits * 155 / max) as u8;
                let red = 255 - (row.corrupted * 155).checked_div(row.hits).unwrap_or(0) as u8;
                let _ = write!(
                    page,
                    "<td class=\"num\" style=\"background:rgb({blue},{blue},255)\">{}</td>\
                     <td class=\"num\" style=\"background:rgb(255,{red},{red})\">{}</td>",
                    checked(&key("hits"), row.hits),
                    checked(&key("corrupted"), row.corrupted)
                );
            }
            page.push_str("</tr>\n");
        }
        page.push_str("</table>\n");
    }
}
