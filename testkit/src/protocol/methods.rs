//! What every event can say about itself: its `type` on the wire, the test it
//! belongs to, and the same event with its strings converted.

use super::Event;

/// Rebuilds `$event` variant by variant: the fields before `;` move over as
/// they are, those after it are strings and go through `$f`, and those after
/// `?` are optional strings.
macro_rules! map_strings {
    ($event:expr, $f:ident, $($variant:ident { $($same:ident),* ; $($text:ident),* $(? $opt:ident)? }),* $(,)?) => {
        match $event {
            $(Event::$variant { $($same,)* $($text,)* $($opt,)? } => Event::$variant {
                $($same,)*
                $($text: $f($text),)*
                $($opt: $opt.map(&mut $f),)?
            },)*
        }
    };
}

impl<S> Event<S> {
    /// The same event with every string converted, e.g. `&str` to `String`.
    pub fn map_str<T>(self, mut f: impl FnMut(S) -> T) -> Event<T> {
        map_strings!(self, f,
            Hello { version, door, machine, cpus, lapic, strategy, seed, tsc_mhz; build },
            Plan { count; },
            Planned { ; test ? expect_crash },
            Start { strategy, iterations, cpu, timeout_ms; test },
            Progress { done, nmis; test },
            Inject { seq, cpu, bank, status, mcg_status; test, during },
            Result { strategy, outcome, expected, iterations, cycles, cycles_per_iteration, counters; test, details },
            Corruption { cpu, iteration, vector, expected, seen; test, field },
            Window { offset, hits, corrupted, predicted; test, stub },
            Panic { cpu, rip, vector; message ? test },
            Hang { cpu, rip; ? test },
            Done { passed, failed, skipped, not_reproduced; },
            Qr { part, parts; text },
            Hold { ; },
        )
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
