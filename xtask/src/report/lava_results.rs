//! LAVA's results turned back into istorm's: the job log that `lava-run`
//! prints (one JSON object per line) or that a LAVA server keeps
//! (`output.yaml`: the same objects as a YAML list, `- {...}`).
//!
//! Test cases of suite `istorm` carry `NAME [strategy]` as their
//! `test_case_id`; the `target` lines of the same log are the kernel's serial
//! output, which names the machine (the `qr` events) and keeps each result's
//! details and the `not-reproduced` LAVA cannot say.

use anyhow::{Result, bail};
use serde_json::Value;

use crate::report::finding::{self, Finding, Machine, Outcome};
use crate::report::platform::Platform;

/// What a LAVA job said.
#[derive(Debug, Default)]
pub struct Job {
    pub findings: Vec<Finding>,
    /// The `istorm-summary/failed` case: pass when the kernel counted no failure.
    pub summary: Option<Outcome>,
    /// The `lava/job` case: did the job itself run to its end.
    pub job: Option<String>,
    pub errors: Vec<String>,
}

/// The log's objects, from either form.
fn objects(text: &str) -> impl Iterator<Item = Value> + '_ {
    text.lines().filter_map(|line| {
        let line = line.trim();
        let json = line.strip_prefix("- ").unwrap_or(line);
        serde_json::from_str::<Value>(json)
            .ok()
            .filter(|v| v.get("lvl").is_some())
    })
}

/// Whether `text` is a LAVA job log.
pub fn is_log(text: &str) -> bool {
    objects(text).next().is_some()
}

/// `NAME [strategy]` back into its parts.
fn split_case(id: &str) -> (String, String) {
    match id.split_once(" [") {
        Some((name, rest)) => (name.to_string(), rest.trim_end_matches(']').to_string()),
        None => (id.to_string(), String::new()),
    }
}

pub fn read_log(text: &str) -> Result<Job> {
    let mut job = Job::default();
    let mut serial = String::new();
    for v in objects(text) {
        let msg = &v["msg"];
        match v["lvl"].as_str() {
            Some("target" | "feedback") => {
                if let Some(line) = msg.as_str() {
                    // LAVA escapes the quotes of the lines it logs.
                    serial.push_str(&line.replace("\\\"", "\""));
                    serial.push('\n');
                }
            }
            Some("error") => job.errors.extend(msg.as_str().map(str::to_string)),
            Some("results") => {
                let result = msg["result"].as_str().unwrap_or("");
                match msg["definition"].as_str() {
                    Some("istorm") => {
                        let id = msg["extra"]["test_case_id"].as_str().unwrap_or("?");
                        let (test, strategy) = split_case(id);
                        let Some(outcome) = Outcome::from_word(result) else {
                            bail!("LAVA result `{result}` for {id} is not pass, fail or skip");
                        };
                        job.findings.push(Finding {
                            test,
                            strategy,
                            outcome,
                            message: String::new(),
                            machine: Machine {
                                platform: Platform::BareMetal,
                                cpu: "?".into(),
                                ucode: None,
                            },
                        });
                    }
                    Some("istorm-summary") => job.summary = Outcome::from_word(result),
                    Some("lava") if msg["case"] == "job" => job.job = Some(result.to_string()),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    // The kernel's own words: the machine, the details, not-reproduced.
    let from_serial = finding::serial_log(&serial).unwrap_or_default();
    let machine = from_serial.first().map(|f| f.machine.clone());
    for f in &mut job.findings {
        if let Some(m) = &machine {
            f.machine = m.clone();
        }
        if let Some(s) = from_serial
            .iter()
            .find(|s| s.test == f.test && s.strategy == f.strategy)
        {
            f.message = s.message.clone();
            if f.outcome == Outcome::Skip && s.outcome == Outcome::NotReproduced {
                f.outcome = Outcome::NotReproduced;
            }
        }
    }
    Ok(job)
}

/// Any results file, LAVA job logs included.
pub fn read_any(text: &str, origin: &str) -> Result<Vec<Finding>> {
    if is_log(text) {
        let job = read_log(text)?;
        if job.findings.is_empty() {
            bail!(
                "`{origin}`: the LAVA log has no istorm test case{}",
                job.errors
                    .first()
                    .map(|e| format!(" (LAVA: {e})"))
                    .unwrap_or_default()
            );
        }
        return Ok(job.findings);
    }
    finding::read(text, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"dt": "x", "lvl": "target", "msg": "@istorm {\"type\":\"hello\",\"version\":1,\"door\":\"pvh\",\"machine\":\"tcg\",\"cpus\":2,\"lapic\":\"x2apic\",\"strategy\":\"linux\",\"seed\":1,\"build\":\"x\"}"}
{"dt": "x", "lvl": "target", "msg": "@istorm {\\\"type\\\":\\\"result\\\",\\\"test\\\":\\\"boot::nmi_all_to_all\\\",\\\"strategy\\\":\\\"linux\\\",\\\"outcome\\\":\\\"pass\\\",\\\"expected\\\":\\\"survive\\\",\\\"iterations\\\":1,\\\"cycles\\\":1,\\\"cycles_per_iteration\\\":1,\\\"details\\\":\\\"sent=2\\\"}"}
{"dt": "x", "lvl": "results", "msg": {"case": "boot_nmi_all_to_all_linux_", "definition": "istorm", "extra": {"test_case_id": "boot::nmi_all_to_all [linux]"}, "level": "3.1", "result": "pass"}}
{"dt": "x", "lvl": "results", "msg": {"case": "failed", "definition": "istorm-summary", "extra": {"test_case_id": "failed"}, "result": "pass"}}
{"dt": "x", "lvl": "results", "msg": {"case": "job", "definition": "lava", "result": "pass"}}
"#;

    #[test]
    fn a_job_log_becomes_istorm_results_in_both_forms() {
        let yaml: String = LOG.lines().map(|l| format!("- {l}\n")).collect();
        for text in [LOG.to_string(), yaml] {
            assert!(is_log(&text));
            let job = read_log(&text).unwrap();
            assert_eq!(job.findings.len(), 1);
            let f = &job.findings[0];
            assert_eq!(
                (f.test.as_str(), f.strategy.as_str()),
                ("boot::nmi_all_to_all", "linux")
            );
            assert_eq!((f.outcome, f.message.as_str()), (Outcome::Pass, "sent=2"));
            assert_eq!(f.machine.platform, Platform::QemuTcg);
            assert_eq!(job.summary, Some(Outcome::Pass));
            assert_eq!(job.job.as_deref(), Some("pass"));
        }
        assert!(!is_log("IST1|cpu=x"));
        let empty = r#"{"lvl": "error", "msg": "Connection closed"}"#;
        let err = read_any(empty, "x").unwrap_err().to_string();
        assert!(err.contains("LAVA: Connection closed"), "{err}");
    }
}
