//! The run as the summary needs it, recorded from the events the harness
//! emits: `hello` for where it runs, each `result` for the table. Fixed size,
//! no heap; normal context only (the harness emits from the test runner).

use spin::{Mutex, MutexGuard};
use testkit::protocol::{Counters, Event, Outcome, Setting};
use testkit::summary::{Entry, Header};

/// More than the suite has tests: one result per test and boot.
const MAX_RESULTS: usize = 128;
/// Longer test names are cut (today's longest is under 40 bytes).
const NAME_MAX: usize = 80;

/// Failures whose reason is kept for the screen (the QR text has none).
const MAX_REASONS: usize = 16;
const REASON_MAX: usize = testkit::MESSAGE_LEN;

pub type Name = heapless::String<NAME_MAX>;
pub type Reason = heapless::String<REASON_MAX>;

pub struct Run {
    /// Where the run happens, from `hello`.
    pub setting: Option<Setting>,
    pub results: heapless::Vec<Entry<Name>, MAX_RESULTS>,
    /// Why the first failures failed, by index in `results`.
    pub reasons: heapless::Vec<(usize, Reason), MAX_REASONS>,
    /// Results that did not fit `results` (then the counts cover only those kept).
    pub lost: u32,
}

static RUN: Mutex<Run> = Mutex::new(Run {
    setting: None,
    results: heapless::Vec::new(),
    reasons: heapless::Vec::new(),
    lost: 0,
});

/// Notes what the summary needs from `event` (called by `report::emit`).
pub fn record(event: &Event<&str>) {
    match *event {
        Event::Hello { .. } => {
            let mut run = RUN.lock();
            run.setting = event.setting();
            run.results.clear();
            run.reasons.clear();
            run.lost = 0;
        }
        Event::Result {
            test,
            strategy,
            outcome,
            counters,
            details,
            ..
        } => {
            let entry = Entry {
                test: cut(test),
                strategy,
                outcome,
                // Only what the summary carries.
                counters: Counters {
                    corruptions: counters.corruptions,
                    nmis: counters.nmis,
                    dbs: counters.dbs,
                    ..Counters::default()
                },
            };
            let mut run = RUN.lock();
            let index = run.results.len();
            if run.results.push(entry).is_err() {
                run.lost += 1;
            } else if outcome == Outcome::Fail {
                let _ = run.reasons.push((index, cut(details)));
            }
        }
        _ => {}
    }
}

/// As much of `text` as fits, cut at a character boundary.
fn cut<const N: usize>(text: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    for c in text.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// The recorded run, locked while the summary is drawn.
pub fn run() -> MutexGuard<'static, Run> {
    RUN.lock()
}

impl Run {
    /// Why result `index` failed, if that was kept.
    pub fn reason(&self, index: usize) -> Option<&str> {
        let (_, reason) = self.reasons.iter().find(|(i, _)| *i == index)?;
        Some(reason)
    }

    /// The summary header for this run; counts are of the results kept.
    pub fn header<'a>(&self, cpu: &'a str, ucode: Option<u32>) -> Option<Header<&'a str>> {
        let setting = self.setting?;
        let count = |o| self.results.iter().filter(|e| e.outcome == o).count() as u32;
        Some(Header {
            cpu,
            ucode,
            setting,
            passed: count(Outcome::Pass),
            failed: count(Outcome::Fail),
            skipped: count(Outcome::Skip),
        })
    }
}
