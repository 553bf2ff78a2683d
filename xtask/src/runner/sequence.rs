//! One kernel suite on one machine: boots the kernel with `entry=STRATEGY`,
//! reads the wire protocol live, and boots again after each crash with
//! `skip=` naming every test that has a result, until all planned tests have
//! one (the rules are in `recovery.rs`).
//!
//! Each boot has two deadlines: the whole boot's (`--timeout`), and the
//! running test's own (`timeout_ms` from its `start` event plus slack, so the
//! kernel's watchdog can speak first). Reports go to a sink: the tally for
//! the suites, a closure for checks that judge a suite's results.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use testkit::protocol::{OwnedEvent, RecordKind, StreamParser};

use crate::qemu::accel::Accel;
use crate::qemu::crash::BootEnd;
use crate::qemu::process::Watch;
use crate::report::console::{self, Worker};
use crate::report::jsonlog::{BootTag, JsonLog};
use crate::report::platform::Platform;
use crate::report::tally::Tally;
use crate::report::verdict::{Report, Verdict};
use crate::runner::boot::{Artifacts, BootConfig};
use crate::runner::recovery::{Sequence, Step, TestRecord};
use crate::runner::suite;

/// Beyond a test's `timeout_ms`, the host waits this long before it kills
/// QEMU itself: the kernel's watchdog (0.5 s of grace) should report first.
pub const TEST_SLACK: Duration = Duration::from_secs(10);
/// The longest command line the kernel reads (`CMDLINE_MAX` in kernel/src/boot).
pub const KERNEL_CMDLINE_MAX: usize = 512;

/// What to run: a boot configuration whose `args` hold every word but `skip=`.
pub struct Spec {
    /// Strategy and LAPIC mode, for names and annotations.
    pub strategy: String,
    pub lapic: String,
    pub config: BootConfig,
    /// Retry a test that crashed once (see `recovery.rs`).
    pub retry: bool,
    pub boot_timeout: Duration,
    /// Whether planned tests count towards the progress bar's length.
    pub counted: bool,
}

impl Spec {
    pub fn labels(&self) -> Vec<String> {
        vec![self.strategy.clone(), self.lapic.clone()]
    }
}

/// What all sequences of a run share.
pub struct Shared<'a> {
    pub artifacts: &'a Artifacts,
    pub accel: Accel,
    pub tally: &'a Mutex<Tally>,
    pub json: Option<&'a JsonLog>,
    /// Boots started so far in the whole run (for `--json`'s boot numbers).
    pub boots: &'a AtomicUsize,
}

impl Shared<'_> {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `skip=` word for a list of names (none for an empty list).
pub fn skip_word(names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| format!("skip={}", names.join(",")))
}

/// Runs the sequence to its end; each report goes to `sink`.
pub fn run<'a>(spec: &Spec, shared: &'a Shared<'a>, worker: &Worker, sink: &mut dyn FnMut(Report)) {
    let labels = spec.labels();
    let platform = spec.config.emulator.platform(shared.accel);
    let title = labels.join(", ");
    let mut seq = Sequence::new(spec.retry);
    while let Some(skip) = seq.next_skip() {
        let mut config = spec.config.clone();
        config.args.extend(skip_word(&skip));
        let cmdline = config.args.join(" ");
        let attempt = seq.boots() + 1;
        let mut steps = Vec::new();
        if cmdline.len() > KERNEL_CMDLINE_MAX {
            steps.extend(seq.abort(format!(
                "boot {attempt} cannot be started: its command line is {} bytes and the kernel \
                 reads at most {KERNEL_CMDLINE_MAX} (`{}...`)",
                cmdline.len(),
                cmdline.chars().take(80).collect::<String>()
            )));
        } else if let Err(e) = shared.artifacts.prepare(&config) {
            steps.extend(seq.abort(format!(
                "host failure: boot {attempt} cannot be prepared: {e:#}"
            )));
        }
        if !steps.is_empty() {
            let at = At {
                labels: &labels,
                boot: attempt,
                platform,
            };
            deliver(steps, &at, &Default::default(), shared, sink, "", "");
            break;
        }
        if attempt > 1 {
            shared.tally().say(&format!(
                "boot {attempt} [{title}]: resuming, skip= names the {} tests with a result",
                skip.len()
            ));
        }
        let tag = BootTag {
            boot: shared.boots.fetch_add(1, Ordering::Relaxed) + 1,
            sequence: title.clone(),
            strategy: spec.strategy.clone(),
            lapic: spec.lapic.clone(),
            attempt,
        };
        if let Some(json) = shared.json {
            json.boot(&tag, &cmdline);
        }
        seq.begin_boot();
        worker.set(format!("{title}: boot {attempt}"));
        let mut watch = BootWatch {
            platform,
            seq: &mut seq,
            parser: StreamParser::new(),
            serial: Vec::new(),
            started: Instant::now(),
            boot_timeout: spec.boot_timeout,
            starts: HashMap::new(),
            durations: HashMap::new(),
            tag: &tag,
            labels: &labels,
            shared,
            sink: &mut *sink,
            worker,
            iterations: 0,
            counted: spec.counted,
            taken: 0,
        };
        let run = shared
            .artifacts
            .boot_watched(&config, shared.accel, &mut watch);
        let (end, stderr, elapsed) = match run {
            Ok(live) => (live.end, live.stderr, live.elapsed),
            Err(e) => (
                BootEnd::NotRun(format!("{e:#}")),
                String::new(),
                watch.started.elapsed(),
            ),
        };
        // The line a crash cut short, if any: the rest was taken as it came.
        let parser = std::mem::take(&mut watch.parser);
        let taken = watch.taken;
        for record in parser.finish().records.into_iter().skip(taken) {
            watch.take(record.line, &record.kind);
        }
        if let Some(json) = shared.json {
            json.boot_end(&tag, &end.to_string(), elapsed.as_secs_f64());
        }
        let BootWatch {
            durations, serial, ..
        } = watch;
        let steps = seq.end_boot(&end);
        let serial = String::from_utf8_lossy(&serial);
        let at = At {
            labels: &labels,
            boot: attempt,
            platform,
        };
        deliver(steps, &at, &durations, shared, sink, &serial, &stderr);
    }
}

/// The sequence and boot that steps come from.
struct At<'a> {
    labels: &'a [String],
    /// Within the sequence, from 1.
    boot: usize,
    /// Where the boots run, recorded with every report.
    platform: Platform,
}

/// Turns the state machine's steps into reports, lines and warnings.
fn deliver(
    steps: Vec<Step>,
    at: &At,
    durations: &HashMap<String, Duration>,
    shared: &Shared,
    sink: &mut dyn FnMut(Report),
    serial: &str,
    stderr: &str,
) {
    let (labels, title) = (at.labels, at.labels.join(", "));
    for step in steps {
        match step {
            Step::Record(record) => {
                let crashed = record.crashed;
                let mut report = report(record, labels, durations);
                report.platform = Some(at.platform);
                if crashed && matches!(report.verdict, Verdict::Fail(_)) {
                    report.detail = suite::failure_detail(serial, stderr);
                }
                sink(report);
            }
            Step::Retry { test, reason } => shared.tally().say(&format!(
                "test {test} [{title}] ... crashed, trying once more ({reason})"
            )),
            Step::HostError { test, reason } => sink(Report {
                labels: labels.to_vec(),
                platform: Some(at.platform),
                detail: suite::failure_detail(serial, stderr),
                ..Report::new(
                    "host::emulator",
                    Verdict::Fail(format!(
                        "error: {reason}, while {test} ran; not the entry code's doing, \
                         {test} runs again"
                    )),
                )
            }),
            Step::Warning(warning) => {
                console::note(&format!("warning: boot {} [{title}]: {warning}", at.boot))
            }
            Step::Stopped(why) => sink(Report {
                labels: labels.to_vec(),
                platform: Some(at.platform),
                detail: suite::failure_detail(serial, stderr),
                ..Report::new("suite::boot", Verdict::Fail(why))
            }),
        }
    }
}

fn report(record: TestRecord, labels: &[String], durations: &HashMap<String, Duration>) -> Report {
    Report {
        labels: labels.to_vec(),
        note: record.note,
        duration: durations.get(&record.test).copied(),
        ..Report::new(record.test, record.verdict)
    }
}

/// Follows one boot: parses the serial output as it arrives, feeds the state
/// machine, and keeps the two deadlines.
struct BootWatch<'a> {
    platform: Platform,
    seq: &'a mut Sequence,
    parser: StreamParser,
    serial: Vec<u8>,
    started: Instant,
    boot_timeout: Duration,
    starts: HashMap<String, Instant>,
    durations: HashMap<String, Duration>,
    tag: &'a BootTag,
    labels: &'a [String],
    shared: &'a Shared<'a>,
    /// Results are reported as they arrive; only those decided by the
    /// boot's end (crashes) wait for it, to carry the serial tail.
    sink: &'a mut dyn FnMut(Report),
    worker: &'a Worker,
    iterations: u32,
    counted: bool,
    /// Records of the parser handled so far.
    taken: usize,
}

impl BootWatch<'_> {
    fn take(&mut self, line: usize, kind: &RecordKind) {
        let planned = self.seq.planned();
        let json = self.shared.json;
        let steps = match kind {
            RecordKind::Log(_) => return,
            RecordKind::Error(error) => {
                if let Some(json) = json {
                    json.stream_error(self.tag, line, &error.to_string());
                }
                self.seq.stream_error(line, error)
            }
            RecordKind::Event(event) => {
                if let Some(json) = json {
                    json.event(self.tag, line, event);
                }
                self.follow(event);
                self.seq.event(line, event)
            }
        };
        let new = self.seq.planned() - planned;
        if self.counted && new > 0 {
            self.shared.tally().expect(new);
        }
        let at = At {
            labels: self.labels,
            boot: self.tag.attempt,
            platform: self.platform,
        };
        deliver(
            steps,
            &at,
            &self.durations,
            self.shared,
            &mut *self.sink,
            "",
            "",
        );
    }

    /// Timing and the status line.
    fn follow(&mut self, event: &OwnedEvent) {
        let title = &self.tag.sequence;
        let attempt = self.tag.attempt;
        match event {
            OwnedEvent::Start {
                test, iterations, ..
            } => {
                self.starts.insert(test.clone(), Instant::now());
                self.iterations = *iterations;
                self.worker
                    .set(format!("{title}: boot {attempt}: {test} 0/{iterations}"));
            }
            OwnedEvent::Progress { test, done, nmis } => self.worker.set(format!(
                "{title}: boot {attempt}: {test} {done}/{}{}",
                self.iterations,
                nmis.map_or(String::new(), |n| format!(", {n} NMIs landed"))
            )),
            OwnedEvent::Result { test, .. } => {
                if let Some(start) = self.starts.get(test) {
                    self.durations.insert(test.clone(), start.elapsed());
                }
            }
            _ => {}
        }
    }
}

impl Watch for BootWatch<'_> {
    fn output(&mut self, bytes: &[u8]) {
        self.serial.extend_from_slice(bytes);
        let records = self.parser.feed(bytes).to_vec();
        self.taken += records.len();
        for record in records {
            self.take(record.line, &record.kind);
        }
    }

    fn deadline(&self) -> Option<(Instant, String)> {
        let boot = (
            self.started + self.boot_timeout,
            format!("--timeout {} s for one boot", self.boot_timeout.as_secs()),
        );
        let test = self.seq.running().and_then(|(test, ms)| {
            let start = self.starts.get(test)?;
            Some((
                *start + Duration::from_millis(u64::from(ms)) + TEST_SLACK,
                format!(
                    "{test} ran past its timeout_ms {ms} + {} s slack",
                    TEST_SLACK.as_secs()
                ),
            ))
        });
        Some(match test {
            Some(test) if test.0 < boot.0 => test,
            _ => boot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_lists_are_one_word() {
        assert_eq!(skip_word(&[]), None);
        let names = ["a::x".to_string(), "b::y".to_string()];
        assert_eq!(skip_word(&names).as_deref(), Some("skip=a::x,b::y"));
    }
}
