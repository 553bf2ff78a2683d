//! The tally of a run: reports collected as they arrive, each printed the
//! way `cargo test` prints (`test NAME ... ok`), the failures' details at the
//! end, and one closing line `N passed, N failed, N skipped, N not-reproduced`.

use std::process::ExitCode;

use crate::report::console::Console;
use crate::report::verdict::{Report, Verdict};

/// Collects reports, printing each as it arrives.
pub struct Tally {
    reports: Vec<Report>,
    console: Console,
    expected: usize,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally::new(Console::plain())
    }
}

impl Tally {
    pub fn new(console: Console) -> Tally {
        Tally {
            reports: Vec::new(),
            console,
            expected: 0,
        }
    }

    pub fn console(&self) -> &Console {
        &self.console
    }

    /// `n` more results are on their way (for the progress bar).
    pub fn expect(&mut self, n: usize) {
        self.expected += n;
        self.show_counts();
    }

    pub fn record(&mut self, report: Report) {
        self.console.line(&report.line());
        self.reports.push(report);
        self.show_counts();
    }

    /// A line that is not a result (a retry, a warning), above the bars.
    pub fn say(&self, text: &str) {
        self.console.line(text);
    }

    fn show_counts(&self) {
        let summary = self.summary();
        self.console
            .counts(self.reports.len(), self.expected, &summary);
    }

    pub fn reports(&self) -> &[Report] {
        &self.reports
    }

    /// `(passed, failed, skipped, not reproduced)`.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let count = |f: fn(&Verdict) -> bool| self.reports.iter().filter(|r| f(&r.verdict)).count();
        (
            count(|v| *v == Verdict::Pass),
            count(|v| matches!(v, Verdict::Fail(_))),
            count(|v| matches!(v, Verdict::Skip(_))),
            count(|v| matches!(v, Verdict::NotReproduced(_))),
        )
    }

    /// `N passed, N failed, N skipped, N not-reproduced`: the first two
    /// first, as scripts read them.
    pub fn summary(&self) -> String {
        let (passed, failed, skipped, not_reproduced) = self.counts();
        format!(
            "{passed} passed, {failed} failed, {skipped} skipped, {not_reproduced} not-reproduced"
        )
    }

    /// Prints the failures' details and the closing line; non-zero on any failure.
    pub fn finish(self) -> ExitCode {
        self.console.finish();
        for report in &self.reports {
            if let (Verdict::Fail(why), false) = (&report.verdict, report.detail.is_empty()) {
                println!("\n---- {} ----\n{why}", report.title());
                for line in &report.detail {
                    println!("    {line}");
                }
            }
        }
        let failed = self.counts().1;
        println!("\n{}", self.summary());
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_each_kind() {
        let mut tally = Tally::default();
        for verdict in [
            Verdict::Pass,
            Verdict::Pass,
            Verdict::Fail("x".into()),
            Verdict::Skip("y".into()),
            Verdict::NotReproduced("z".into()),
        ] {
            tally.record(Report::new("t", verdict));
        }
        assert_eq!(tally.counts(), (2, 1, 1, 1));
        assert_eq!(
            tally.summary(),
            "2 passed, 1 failed, 1 skipped, 1 not-reproduced"
        );
    }
}
