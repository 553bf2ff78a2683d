//! The summary a kernel draws as a QR code at the end of a run (format
//! `IST1`, defined in `testkit::summary`) as the host's reports: one per
//! result, labelled like a suite's, and the header as one line.

use testkit::protocol::Counters;
use testkit::summary::{self, Decoded};

use crate::report::verdict::{Report, Verdict};

/// The header as one line: where the run ran.
pub fn describe(decoded: &Decoded) -> String {
    let h = &decoded.header;
    let ucode = h
        .ucode
        .map_or_else(|| "n/a".to_string(), |u| format!("{u:#x}"));
    format!(
        "run: cpu {}, microcode {ucode}, {} cpus, {} boot, {}, vm {}, strategy {}, seed {}",
        h.cpu,
        h.setting.cpus,
        summary::door_name(h.setting.door),
        summary::lapic_name(h.setting.lapic),
        summary::machine_name(h.setting.machine),
        h.setting.strategy.name(),
        h.setting.seed
    )
}

/// The counters a summary carries, as the words a note shows.
fn counter_words(c: &Counters) -> String {
    [
        ("corruptions", c.corruptions),
        ("nmis", c.nmis),
        ("dbs", c.dbs),
    ]
    .iter()
    .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
    .collect::<Vec<_>>()
    .join(" ")
}

/// One report per result, labelled like a suite's (strategy, LAPIC mode).
/// The summary has no details: a failure says `failed` and its counters.
pub fn reports(decoded: &Decoded) -> Vec<Report> {
    let lapic = summary::lapic_name(decoded.header.setting.lapic);
    decoded
        .entries
        .iter()
        .map(|e| {
            let words = counter_words(&e.counters);
            let verdict = match e.outcome {
                testkit::protocol::Outcome::Pass => Verdict::Pass,
                testkit::protocol::Outcome::Fail if words.is_empty() => {
                    Verdict::Fail("failed".into())
                }
                testkit::protocol::Outcome::Fail => Verdict::Fail(format!("failed: {words}")),
                testkit::protocol::Outcome::Skip => {
                    Verdict::Skip("skipped (the reason is on the serial log only)".into())
                }
                testkit::protocol::Outcome::NotReproduced => {
                    Verdict::NotReproduced("the reason is on the serial log only".into())
                }
            };
            let note = match e.outcome {
                testkit::protocol::Outcome::Pass => words,
                _ => String::new(),
            };
            Report {
                labels: vec![e.strategy.name().to_string(), lapic.to_string()],
                note,
                ..Report::new(e.test.clone(), verdict)
            }
        })
        .collect()
}

/// A summary of three results, one of each outcome, for the tests here and
/// in `runner/held_check.rs`.
#[cfg(test)]
pub const SAMPLE_QR: &str = "IST1|cpu=QEMU TCG CPU version 2.5+|ucode=na|door=limine|lapic=x2apic\
    |vm=tcg|cpus=2|seed=1|strategy=naive|pass=1|fail=1|skip=1\
    |scenarios::db_kernel_nmi_db=F,c3,n200,d200|boot::nmi_all_to_all=P,n2\
    |scenarios::movss_entry_db::tf=S";

#[cfg(test)]
mod tests {
    use super::*;

    const QR: &str = SAMPLE_QR;

    #[test]
    fn a_summary_becomes_the_reports_of_a_run() {
        let decoded = summary::decode(QR).unwrap();
        let lines: Vec<String> = reports(&decoded).iter().map(Report::line).collect();
        assert_eq!(
            lines,
            [
                "test scenarios::db_kernel_nmi_db [naive, x2apic] ... FAILED (failed: \
                 corruptions=3 nmis=200 dbs=200)",
                "test boot::nmi_all_to_all [naive, x2apic] ... ok (nmis=2)",
                "test scenarios::movss_entry_db::tf [naive, x2apic] ... skipped (skipped (the \
                 reason is on the serial log only))",
            ]
        );
        assert_eq!(
            describe(&decoded),
            "run: cpu QEMU TCG CPU version 2.5+, microcode n/a, 2 cpus, limine boot, x2apic, \
             vm tcg, strategy naive, seed 1"
        );
    }
}
