//! `--junit PATH`: the results as JUnit XML, the format CI systems read.
//!
//! One `<testsuite>` per place a test ran (`istorm.naive.x2apic`, or `istorm`
//! for host tests and boot checks), one `<testcase>` per report with that
//! place as its `classname`; a failure carries the report's text in
//! `<failure message=...>` and the serial tail as the element's text, a skip
//! is `<skipped message=.../>`, and a passing test's note (the kernel's
//! details) goes to `<system-out>`.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::report::markup::escape;
use crate::report::verdict::{Report, Verdict};

/// The `classname` of a report: `istorm` and its labels, dot-separated.
pub fn classname(report: &Report) -> String {
    std::iter::once("istorm")
        .chain(report.labels.iter().map(String::as_str))
        .map(|part| part.replace(['.', ' '], "_"))
        .collect::<Vec<_>>()
        .join(".")
}

/// The whole document.
pub fn render(reports: &[Report]) -> String {
    let mut suites: Vec<(String, Vec<&Report>)> = Vec::new();
    for report in reports {
        let class = classname(report);
        match suites.iter_mut().find(|(c, _)| *c == class) {
            Some((_, members)) => members.push(report),
            None => suites.push((class, vec![report])),
        }
    }
    let count =
        |rs: &[&Report], f: fn(&Verdict) -> bool| rs.iter().filter(|r| f(&r.verdict)).count();
    let failed = |v: &Verdict| matches!(v, Verdict::Fail(_));
    // JUnit's `skipped` holds both: known not to apply, and not reproduced.
    let skipped = |v: &Verdict| matches!(v, Verdict::Skip(_) | Verdict::NotReproduced(_));
    let seconds = |rs: &[&Report]| -> f64 {
        rs.iter()
            .filter_map(|r| r.duration)
            .map(|d| d.as_secs_f64())
            .sum()
    };
    let all: Vec<&Report> = reports.iter().collect();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"istorm\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        all.len(),
        count(&all, failed),
        count(&all, skipped),
        seconds(&all)
    );
    for (class, members) in &suites {
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
            escape(class),
            members.len(),
            count(members, failed),
            count(members, skipped),
            seconds(members)
        );
        for report in members {
            testcase(&mut xml, class, report);
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn testcase(xml: &mut String, class: &str, report: &Report) {
    let time = report.duration.map_or(0.0, |d| d.as_secs_f64());
    let _ = write!(
        xml,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{time:.3}\"",
        escape(class),
        escape(&report.name)
    );
    // Where it ran, and the outcome JUnit has no word for, as properties.
    let mut properties = Vec::new();
    if let Some(platform) = report.platform {
        properties.push(("platform", platform.name()));
    }
    if matches!(report.verdict, Verdict::NotReproduced(_)) {
        properties.push(("outcome", "not-reproduced"));
    }
    let mut inner = String::new();
    if !properties.is_empty() {
        inner.push_str("      <properties>\n");
        for (name, value) in properties {
            let _ = writeln!(
                inner,
                "        <property name=\"{name}\" value=\"{}\"/>",
                escape(value)
            );
        }
        inner.push_str("      </properties>\n");
    }
    match &report.verdict {
        Verdict::Pass if report.note.is_empty() => {}
        Verdict::Pass => {
            let _ = writeln!(
                inner,
                "      <system-out>{}</system-out>",
                escape(&report.note)
            );
        }
        Verdict::Skip(why) => {
            let _ = writeln!(inner, "      <skipped message=\"{}\"/>", escape(why));
        }
        Verdict::NotReproduced(why) => {
            let why = format!("not-reproduced: {why}");
            let _ = writeln!(inner, "      <skipped message=\"{}\"/>", escape(&why));
        }
        Verdict::Fail(why) => {
            let mut body = why.clone();
            for line in &report.detail {
                body.push('\n');
                body.push_str(line);
            }
            let _ = writeln!(
                inner,
                "      <failure message=\"{}\" type=\"failure\">{}</failure>",
                escape(why),
                escape(&body)
            );
        }
    }
    if inner.is_empty() {
        xml.push_str("/>\n");
    } else {
        let _ = write!(xml, ">\n{inner}    </testcase>\n");
    }
}

pub fn write(path: &Path, reports: &[Report]) -> Result<()> {
    std::fs::write(path, render(reports))
        .with_context(|| format!("--junit: cannot write `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report(name: &str, labels: &[&str], verdict: Verdict) -> Report {
        Report {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ..Report::new(name, verdict)
        }
    }

    fn sample() -> Vec<Report> {
        let mut pass = report(
            "scenarios::db_kernel_nmi_db",
            &["naive", "x2apic"],
            Verdict::Pass,
        );
        pass.note = "window_coverage=57/57 (100%) <all> & \"more\"".into();
        pass.duration = Some(Duration::from_millis(1500));
        let mut fail = report(
            "scenarios::db_kernel_nmi_db",
            &["naive", "xapic"],
            Verdict::Fail("crashed: exception #UD (vector 6) at rip 0x1: \"x\" <y>".into()),
        );
        fail.detail = vec!["serial \x1b[0m line\x07".into(), "qemu: oops".into()];
        vec![
            report("host::unit_tests", &[], Verdict::Pass),
            pass,
            fail,
            report(
                "scenarios::movss_entry_db::tf",
                &["naive", "x2apic"],
                Verdict::Skip("hw-only: QEMU TCG does not model this timing".into()),
            ),
        ]
    }

    #[test]
    fn the_xml_parses_back_with_every_case_in_its_place() {
        let xml = render(&sample());
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(root.attribute("tests"), Some("4"));
        assert_eq!(root.attribute("failures"), Some("1"));
        assert_eq!(root.attribute("skipped"), Some("1"));
        let suites: Vec<_> = root
            .children()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        let names: Vec<_> = suites.iter().filter_map(|s| s.attribute("name")).collect();
        assert_eq!(
            names,
            ["istorm", "istorm.naive.x2apic", "istorm.naive.xapic"]
        );
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 4);
        let pass = cases[1];
        assert_eq!(pass.attribute("classname"), Some("istorm.naive.x2apic"));
        assert_eq!(pass.attribute("name"), Some("scenarios::db_kernel_nmi_db"));
        assert_eq!(pass.attribute("time"), Some("1.500"));
        let out = pass
            .children()
            .find(|n| n.has_tag_name("system-out"))
            .unwrap();
        assert_eq!(
            out.text(),
            Some("window_coverage=57/57 (100%) <all> & \"more\"")
        );
        // Grouped by class: host, naive.x2apic (pass, skip), naive.xapic (fail).
        let failure = cases[3]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            failure.attribute("message"),
            Some("crashed: exception #UD (vector 6) at rip 0x1: \"x\" <y>")
        );
        let text = failure.text().unwrap();
        assert!(text.ends_with("\nserial [0m line\nqemu: oops"), "{text:?}");
        let skipped = cases[2]
            .children()
            .find(|n| n.has_tag_name("skipped"))
            .unwrap();
        assert!(skipped.attribute("message").unwrap().starts_with("hw-only"));
        assert!(cases[0].children().all(|n| !n.is_element()));
    }

    #[test]
    fn class_names_keep_dots_for_structure_only() {
        let r = report("t", &["shift-ist", "qemu64,+x2apic"], Verdict::Pass);
        assert_eq!(classname(&r), "istorm.shift-ist.qemu64,+x2apic");
        let r = report("t", &["a.b c"], Verdict::Pass);
        assert_eq!(classname(&r), "istorm.a_b_c");
    }

    #[test]
    fn an_empty_run_is_still_a_document() {
        let xml = render(&[]);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(doc.root_element().attribute("tests"), Some("0"));
    }
}
