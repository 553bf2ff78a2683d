//! A test's verdict as the host reports it, and the one line a human reads
//! for it (`test NAME [labels] ... ok`). Every writer (console, `--json`,
//! JUnit) and every runner speaks these types.

use std::time::Duration;

use crate::report::platform::Platform;

/// How a pass of a test that must crash begins: the runner writes it, the
/// strategy table reads it.
pub const CRASHED_AS_EXPECTED: &str = "crashed as expected: ";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    /// Known in advance not to apply here.
    Skip(String),
    /// Tried, and the test's own telltale shows the platform never produced
    /// the hazard: no verdict on the entry code either way.
    NotReproduced(String),
}

/// A verdict with its name and, for failures, the lines worth reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub name: String,
    /// Where it ran (strategy, LAPIC mode): printed after the name in
    /// brackets, and the JUnit class name.
    pub labels: Vec<String>,
    pub verdict: Verdict,
    /// What a passing test has to say (the kernel's `details`), printed after
    /// `ok`; a failure or a skip says it in its verdict.
    pub note: String,
    /// Lines worth reading after a failure (the serial tail).
    pub detail: Vec<String>,
    /// Host time from the test's start to its result.
    pub duration: Option<Duration>,
    /// Where it ran, when it ran on a platform (not for host checks).
    pub platform: Option<Platform>,
}

impl Report {
    pub fn new(name: impl Into<String>, verdict: Verdict) -> Report {
        Report {
            name: name.into(),
            labels: Vec::new(),
            verdict,
            note: String::new(),
            detail: Vec::new(),
            duration: None,
            platform: None,
        }
    }

    /// `NAME [label, label]`, or the bare name.
    pub fn title(&self) -> String {
        if self.labels.is_empty() {
            self.name.clone()
        } else {
            format!("{} [{}]", self.name, self.labels.join(", "))
        }
    }

    /// The line a human reads: `test NAME [labels] ... ok (note)`.
    pub fn line(&self) -> String {
        let title = self.title();
        match &self.verdict {
            Verdict::Pass if self.note.is_empty() => format!("test {title} ... ok"),
            Verdict::Pass => format!("test {title} ... ok ({})", self.note),
            Verdict::Fail(why) => format!("test {title} ... FAILED ({why})"),
            Verdict::Skip(why) => format!("test {title} ... skipped ({why})"),
            Verdict::NotReproduced(why) => format!("test {title} ... not-reproduced ({why})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_cargo_test_with_labels_and_notes() {
        let mut r = Report::new("scenarios::db_kernel_nmi_db", Verdict::Pass);
        assert_eq!(r.line(), "test scenarios::db_kernel_nmi_db ... ok");
        r.labels = vec!["naive".into(), "x2apic".into()];
        r.note = "window_coverage=57/57 (100%)".into();
        assert_eq!(
            r.line(),
            "test scenarios::db_kernel_nmi_db [naive, x2apic] ... ok (window_coverage=57/57 (100%))"
        );
        r.verdict = Verdict::Skip("hw-only".into());
        assert!(r.line().ends_with("... skipped (hw-only)"));
        r.verdict = Verdict::NotReproduced("0 #DBs at the #BP entry".into());
        assert!(
            r.line()
                .ends_with("... not-reproduced (0 #DBs at the #BP entry)")
        );
        r.verdict = Verdict::Fail("rip differs".into());
        assert!(r.line().ends_with("... FAILED (rip differs)"));
    }
}
