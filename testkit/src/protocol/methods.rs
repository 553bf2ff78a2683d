//! What every event can say about itself: its `type` on the wire, the test it
//! belongs to, and the same event with its strings converted.

use super::Event;

impl<S> Event<S> {
    /// The same event with every string converted, e.g. `&str` to `String`.
    pub fn map_str<T>(self, mut f: impl FnMut(S) -> T) -> Event<T> {
        match self {
            Event::Hello {
                version,
                door,
                machine,
                cpus,
                lapic,
                strategy,
                seed,
                tsc_mhz,
                build,
            } => Event::Hello {
                version,
                door,
                machine,
                cpus,
                lapic,
                strategy,
                seed,
                tsc_mhz,
                build: f(build),
            },
            Event::Plan { count } => Event::Plan { count },
            Event::Planned { test, expect_crash } => Event::Planned {
                test: f(test),
                expect_crash: expect_crash.map(&mut f),
            },
            Event::Start {
                test,
                strategy,
                iterations,
                cpu,
                timeout_ms,
            } => Event::Start {
                test: f(test),
                strategy,
                iterations,
                cpu,
                timeout_ms,
            },
            Event::Progress { test, done, nmis } => Event::Progress {
                test: f(test),
                done,
                nmis,
            },
            Event::Inject {
                test,
                seq,
                cpu,
                bank,
                status,
                mcg_status,
                during,
            } => Event::Inject {
                test: f(test),
                seq,
                cpu,
                bank,
                status,
                mcg_status,
                during: f(during),
            },
            Event::Result {
                test,
                strategy,
                outcome,
                expected,
                iterations,
                cycles,
                cycles_per_iteration,
                details,
                counters,
            } => Event::Result {
                test: f(test),
                strategy,
                outcome,
                expected,
                iterations,
                cycles,
                cycles_per_iteration,
                details: f(details),
                counters,
            },
            Event::Corruption {
                test,
                cpu,
                iteration,
                vector,
                field,
                expected,
                seen,
            } => Event::Corruption {
                test: f(test),
                cpu,
                iteration,
                vector,
                field: f(field),
                expected,
                seen,
            },
            Event::Window {
                test,
                stub,
                offset,
                hits,
                corrupted,
                predicted,
            } => Event::Window {
                test: f(test),
                stub: f(stub),
                offset,
                hits,
                corrupted,
                predicted,
            },
            Event::Panic {
                test,
                cpu,
                message,
                rip,
                vector,
            } => Event::Panic {
                test: test.map(&mut f),
                cpu,
                message: f(message),
                rip,
                vector,
            },
            Event::Hang { test, cpu, rip } => Event::Hang {
                test: test.map(f),
                cpu,
                rip,
            },
            Event::Done {
                passed,
                failed,
                skipped,
                not_reproduced,
            } => Event::Done {
                passed,
                failed,
                skipped,
                not_reproduced,
            },
            Event::Qr { part, parts, text } => Event::Qr {
                part,
                parts,
                text: f(text),
            },
            Event::Hold => Event::Hold,
        }
    }

    /// The `type` this event has on the wire.
    pub const fn kind(&self) -> &'static str {
        match self {
            Event::Hello { .. } => "hello",
            Event::Plan { .. } => "plan",
            Event::Planned { .. } => "planned",
            Event::Start { .. } => "start",
            Event::Progress { .. } => "progress",
            Event::Inject { .. } => "inject",
            Event::Result { .. } => "result",
            Event::Corruption { .. } => "corruption",
            Event::Window { .. } => "window",
            Event::Panic { .. } => "panic",
            Event::Hang { .. } => "hang",
            Event::Done { .. } => "done",
            Event::Qr { .. } => "qr",
            Event::Hold => "hold",
        }
    }

    /// The test this event belongs to, if any.
    pub fn test(&self) -> Option<&S> {
        match self {
            Event::Planned { test, .. }
            | Event::Start { test, .. }
            | Event::Progress { test, .. }
            | Event::Inject { test, .. }
            | Event::Result { test, .. }
            | Event::Corruption { test, .. }
            | Event::Window { test, .. } => Some(test),
            Event::Panic { test, .. } | Event::Hang { test, .. } => test.as_ref(),
            Event::Hello { .. }
            | Event::Plan { .. }
            | Event::Done { .. }
            | Event::Qr { .. }
            | Event::Hold => None,
        }
    }
}
