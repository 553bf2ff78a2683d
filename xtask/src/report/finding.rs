//! One result from anywhere, and the readers that bring results in: JSON lines
//! (`--json`), JUnit XML (`--junit`), the end-of-run QR text, a serial log
//! (from a USB run, or a LAVA job's log). Each result names the machine it
//! ran on by platform, CPU model and microcode, so that a lab's fleet becomes
//! one table.

use std::fmt;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use testkit::protocol::{OwnedEvent, parse_stream};
use testkit::summary::{self, Decoded};

use crate::report::platform::Platform;

/// istorm's outcome vocabulary, as the JSON records write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
    /// Tried, and the platform never produced the hazard.
    NotReproduced,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
            Outcome::NotReproduced => "not-reproduced",
        }
    }

    /// From a JSON outcome, a result line's word (`ok`, `FAILED`, `skipped`,
    /// `not-reproduced`) or a JUnit/LAVA result word.
    pub fn from_word(word: &str) -> Option<Outcome> {
        Some(match word {
            "pass" | "ok" | "P" => Outcome::Pass,
            "fail" | "FAILED" | "failed" | "F" => Outcome::Fail,
            "skip" | "skipped" | "S" => Outcome::Skip,
            "not-reproduced" | "not_reproduced" | "N" => Outcome::NotReproduced,
            _ => return None,
        })
    }
}

/// The machine a result ran on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Machine {
    pub platform: Platform,
    /// The CPU model: QEMU's or Bochs' model name, or the brand string.
    pub cpu: String,
    pub ucode: Option<u64>,
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.platform, self.cpu)?;
        match self.ucode {
            Some(u) => write!(f, " ucode {u:#x}"),
            None => Ok(()),
        }
    }
}

/// One test under one strategy on one machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub test: String,
    pub strategy: String,
    pub outcome: Outcome,
    /// The reason of a failure or skip, or a pass's details (the evidence).
    pub message: String,
    pub machine: Machine,
}

impl Finding {
    /// One JSON line as `--json` writes results, with the machine spelled
    /// out (`platform`, `cpu`, `ucode`): what [`json_lines`] reads back.
    pub fn to_json_line(&self) -> String {
        serde_json::json!({
            "record": "result",
            "test": self.test,
            "labels": [self.strategy],
            "outcome": self.outcome.name(),
            "message": self.message,
            "platform": self.machine.platform.name(),
            "cpu": self.machine.cpu,
            "ucode": self.machine.ucode,
        })
        .to_string()
    }
}

/// Reads a results file of any kind istorm writes, telling the kind from the
/// text: JUnit XML, JSON lines, a serial log (with `@istorm` events), or a QR
/// text.
pub fn read(text: &str, origin: &str) -> Result<Vec<Finding>> {
    let trimmed = text.trim_start();
    let found = if trimmed.starts_with("<?xml") || trimmed.starts_with("<testsuites") {
        junit(text)
    } else if trimmed.starts_with('{') {
        json_lines(text)
    } else if text.contains(testkit::protocol::PREFIX) {
        serial_log(text)
    } else if trimmed.starts_with("IST1|") {
        qr(trimmed.trim())
    } else {
        bail!("not a results file istorm knows (JSON lines, JUnit, serial log, QR text)")
    };
    found.with_context(|| format!("reading `{origin}`"))
}

/// `--json` files: the `record: result` lines (other records are skipped).
pub fn json_lines(text: &str) -> Result<Vec<Finding>> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", n + 1))?;
        if v["record"] != "result" {
            continue;
        }
        let labels: Vec<&str> = v["labels"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let word = v["outcome"].as_str().unwrap_or("");
        let outcome = Outcome::from_word(word)
            .with_context(|| format!("line {}: unknown outcome `{word}`", n + 1))?;
        let platform = v["platform"]
            .as_str()
            .and_then(Platform::from_name)
            .unwrap_or(Platform::QemuTcg);
        let cpu = v["cpu"].as_str().or(labels.get(1).copied()).unwrap_or("?");
        found.push(Finding {
            test: v["test"].as_str().unwrap_or("?").to_string(),
            strategy: labels.first().copied().unwrap_or("").to_string(),
            outcome,
            message: v["message"].as_str().unwrap_or("").to_string(),
            machine: Machine {
                platform,
                cpu: cpu.to_string(),
                ucode: v["ucode"].as_u64(),
            },
        });
    }
    Ok(found)
}

/// `--junit` files: each `testcase`; the class name carries the labels
/// (`istorm.STRATEGY.LAPIC`), properties the platform.
pub fn junit(text: &str) -> Result<Vec<Finding>> {
    let doc = roxmltree::Document::parse(text).context("not well-formed XML")?;
    let mut found = Vec::new();
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let class = case.attribute("classname").unwrap_or("istorm");
        let labels: Vec<&str> = class.split('.').skip(1).collect();
        let property = |name: &str| {
            case.descendants()
                .filter(|n| n.has_tag_name("property"))
                .find(|n| n.attribute("name") == Some(name))
                .and_then(|n| n.attribute("value"))
        };
        let child = |tag: &str| case.children().find(|n| n.has_tag_name(tag));
        let (outcome, message) = if let Some(f) = child("failure").or(child("error")) {
            (Outcome::Fail, f.attribute("message").unwrap_or(""))
        } else if let Some(s) = child("skipped") {
            let why = s.attribute("message").unwrap_or("");
            let not_reproduced =
                property("outcome") == Some("not-reproduced") || why.starts_with("not-reproduced");
            let outcome = if not_reproduced {
                Outcome::NotReproduced
            } else {
                Outcome::Skip
            };
            (outcome, why)
        } else {
            let out = child("system-out").and_then(|n| n.text()).unwrap_or("");
            (Outcome::Pass, out)
        };
        found.push(Finding {
            test: case.attribute("name").unwrap_or("?").to_string(),
            strategy: labels.first().copied().unwrap_or("").to_string(),
            outcome,
            message: message.to_string(),
            machine: Machine {
                platform: property("platform")
                    .and_then(Platform::from_name)
                    .unwrap_or(Platform::QemuTcg),
                cpu: property("cpu")
                    .or(labels.get(1).copied())
                    .unwrap_or("?")
                    .to_string(),
                ucode: None,
            },
        });
    }
    Ok(found)
}

/// The machine a QR header names.
fn qr_machine(decoded: &Decoded) -> Machine {
    let h = &decoded.header;
    let ucode = h.ucode.map(u64::from);
    Machine {
        platform: Platform::from_kernel(summary::machine_name(h.setting.machine), &h.cpu, ucode),
        cpu: h.cpu.clone(),
        ucode,
    }
}

/// The QR text a kernel shows at the end of a run.
pub fn qr(text: &str) -> Result<Vec<Finding>> {
    let decoded = summary::decode(text.trim()).context("the QR text")?;
    let machine = qr_machine(&decoded);
    Ok(decoded
        .entries
        .iter()
        .filter_map(|e| {
            let code = summary_code(e.outcome);
            Some(Finding {
                test: e.test.clone(),
                strategy: e.strategy.name().to_string(),
                outcome: Outcome::from_word(code)?,
                message: String::new(),
                machine: machine.clone(),
            })
        })
        .collect())
}

/// A wire outcome's word, whatever variants the protocol grows.
fn summary_code(outcome: testkit::protocol::Outcome) -> &'static str {
    outcome.word()
}

/// A serial log: the `result` events (with their details), the machine from
/// the summary the kernel sends last in `qr` events (else from `hello`).
pub fn serial_log(text: &str) -> Result<Vec<Finding>> {
    let transcript = parse_stream(text.as_bytes());
    let qr_text = transcript.summary_text();
    let mut machine = Machine {
        platform: Platform::BareMetal,
        cpu: "?".into(),
        ucode: None,
    };
    if let Some(decoded) = qr_text.and_then(|t| summary::decode(&t).ok()) {
        machine = qr_machine(&decoded);
    } else if let Some(OwnedEvent::Hello { machine: m, .. }) = transcript
        .events()
        .map(|(_, e)| e)
        .find(|e| matches!(e, OwnedEvent::Hello { .. }))
    {
        machine.platform = Platform::from_kernel(summary::machine_name(*m), "?", None);
    }
    let mut found = Vec::new();
    for (_, event) in transcript.events() {
        if let OwnedEvent::Result {
            test,
            strategy,
            outcome,
            details,
            ..
        } = event
            && let Some(outcome) = Outcome::from_word(outcome.word())
        {
            found.push(Finding {
                test: test.clone(),
                strategy: strategy.name().to_string(),
                outcome,
                message: details.clone(),
                machine: machine.clone(),
            });
        }
    }
    if found.is_empty() {
        bail!("no result events in the serial log");
    }
    Ok(found)
}

#[cfg(test)]
#[path = "finding_tests.rs"]
mod tests;
