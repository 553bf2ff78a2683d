//! What the page and its tables share: the inputs, the check keys, a
//! checked number, and the instruction rows of a stub.

use std::collections::BTreeMap;

use serde_json::Value;

use super::disasm::Insn;
use super::model::{Run, Window};
use super::trend::Point;
use crate::report::markup::escape;

/// What the page is made of.
pub struct Inputs<'a> {
    pub title: &'a str,
    pub run: &'a Run,
    /// Each stub's instructions, when the kernel ELF was at hand.
    pub stubs: &'a BTreeMap<String, Vec<Insn>>,
    /// The platform divergence JSON, when given.
    pub platforms: Option<&'a Value>,
    pub trend: &'a [Point],
}

pub mod keys {
    pub fn summary(outcome: &str) -> String {
        format!("summary/{outcome}")
    }
    pub fn cell(test: &str, strategy: &str, lapic: &str, what: &str) -> String {
        format!("cell/{test}/{strategy}/{lapic}/{what}")
    }
    pub fn heat(
        test: &str,
        strategy: &str,
        lapic: &str,
        stub: &str,
        offset: u64,
        what: &str,
    ) -> String {
        format!("heat/{test}/{strategy}/{lapic}/{stub}/{offset:#x}/{what}")
    }
}

/// A number (or word) the check compares.
pub(super) fn checked(key: &str, value: impl std::fmt::Display) -> String {
    format!(
        "<span data-check=\"{}\">{}</span>",
        escape(key),
        escape(&value.to_string())
    )
}

/// The instructions to list: the disassembly, else the offsets seen.
pub(super) fn rows_of(
    stub: &str,
    windows: &[&Window],
    stubs: &BTreeMap<String, Vec<Insn>>,
) -> Vec<Insn> {
    if let Some(insns) = stubs.get(stub) {
        return insns.clone();
    }
    let mut offsets: Vec<u64> = windows
        .iter()
        .flat_map(|w| w.rows.keys().copied())
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    offsets
        .into_iter()
        .map(|offset| Insn {
            offset,
            bytes: String::new(),
            text: "(no ELF)".into(),
        })
        .collect()
}
