//! The wire protocol between the kernel and the host runner.
//!
//! The kernel writes one JSON object per line on COM1, each behind [`PREFIX`],
//! so that ordinary log lines can sit between them:
//!
//! ```text
//! @istorm {"type":"start","test":"boot::nmi_all_to_all","strategy":"linux","iterations":100,"cpu":0,"timeout_ms":10000}
//! ```
//!
//! One definition serves both ends. [`Event`] is generic over its string type:
//! the kernel encodes `Event<&str>` (borrowed, no heap) with `serde-json-core`,
//! the host decodes `Event<String>` with `serde_json`. The host does not borrow
//! from the line because a borrowed `&str` cannot hold a JSON string that had
//! escapes in it (a panic message with a quote), and a result line must never
//! fail to decode for that.
//!
//! Compatibility: fields may be added (decoders ignore unknown ones, optional
//! fields may be absent); renaming or removing a field, or changing what one
//! means, bumps [`PROTOCOL_VERSION`], which `hello` carries.

#[cfg(feature = "std")]
mod decode;
mod encode;
mod hex;
pub mod host;
mod setting;
#[cfg(feature = "std")]
mod stream;
#[cfg(all(test, feature = "std"))]
mod stream_tests;
#[cfg(all(test, feature = "std"))]
mod tests;

#[cfg(feature = "std")]
pub use decode::{LineKind, OwnedEvent, parse_line};
pub use encode::{EncodeError, LINE_MAX, encode_line};
pub use hex::Hex;
pub use setting::Setting;
#[cfg(feature = "std")]
pub use stream::{Record, RecordKind, StreamError, StreamParser, Transcript, parse_stream};

use crate::expect::{Machine, Strategy};
use serde::{Deserialize, Serialize};

/// The start of every event line. A log line that merely contains it later on
/// is still a log line: only the start of a line counts.
pub const PREFIX: &str = "@istorm ";

/// Bumped on any change an older host would misread.
///
/// 2: outcome `not-reproduced`; strategies `shift-only` (was `shift-ist`) and
/// `linux-4.19`; `window` events; `done.not_reproduced`; evidence counters.
pub const PROTOCOL_VERSION: u32 = 2;

/// One thing that happened in a boot, in the order the kernel saw it.
///
/// Decoding is host-only (`std`): serde buffers an internally tagged enum in
/// an allocated `Content` before it knows the variant, and the kernel has no
/// heap. It only ever encodes.
// Results carry many optional counters; events are short-lived and never
// stored in bulk, so the size is not worth an indirection (and the kernel has
// no heap to box into).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "std", derive(Deserialize))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<S> {
    /// First event of a boot: what is running, and where.
    Hello {
        version: u32,
        door: Door,
        machine: Machine,
        cpus: u32,
        lapic: LapicMode,
        strategy: Strategy,
        seed: u64,
        /// TSC ticks per microsecond as the kernel calibrated them, for turning
        /// cycle counts into time (0: not calibrated).
        #[serde(default)]
        tsc_mhz: u64,
        /// Identifies the kernel build (e.g. a git describe or a hash).
        build: S,
    },
    /// How many tests the selection picked; one `planned` per test follows.
    Plan { count: u32 },
    /// One selected test, in the order they will run; lets the host name the
    /// tests a crash kept from running.
    Planned {
        test: S,
        /// For a test that must end the boot on purpose (a framework selftest):
        /// how, one of "panic", "exception", "hang", "triple-fault". The host
        /// counts it passed only when it sees exactly that failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_crash: Option<S>,
    },
    Start {
        test: S,
        strategy: Strategy,
        iterations: u32,
        cpu: u32,
        timeout_ms: u32,
    },
    /// Iterations done so far: tells slow from stuck.
    Progress {
        test: S,
        done: u32,
        /// NMIs landed so far where the test aims them (tests that send NMIs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nmis: Option<u64>,
    },
    /// The kernel asks the host for a machine check on one CPU now (QEMU's
    /// monitor `mce CPU BANK STATUS MCG_STATUS ADDR MISC`), while that CPU
    /// loops `during` ("db", "nmi", "idle"...). The host picks the moment,
    /// injects, and answers on COM1's receive line with a [`host::Reply`]
    /// carrying the same `seq`; a host that cannot inject answers `refused`.
    Inject {
        test: S,
        seq: u32,
        cpu: u32,
        bank: u32,
        status: Hex,
        mcg_status: Hex,
        during: S,
    },
    Result {
        test: S,
        strategy: Strategy,
        outcome: Outcome,
        expected: Expected,
        /// Iterations the test was given (0 for a skip); a test that stops early
        /// says so in `details`.
        iterations: u32,
        cycles: u64,
        cycles_per_iteration: u64,
        /// Why it failed or was skipped, or what the test wants said.
        details: S,
        #[serde(default)]
        counters: Counters,
    },
    /// One finding of the integrity checker.
    Corruption {
        test: S,
        cpu: u32,
        iteration: u32,
        vector: u8,
        /// The frame slot or check that differed: "rip", "rsp", "canary"...
        field: S,
        expected: Hex,
        seen: Hex,
    },
    /// Where a sweep's NMIs landed in one entry stub: one event per
    /// instruction of the path the strategy runs, sent after the test's result
    /// inputs are gathered and before its `result`.
    Window {
        test: S,
        /// The stub's symbol, e.g. "db_stub".
        stub: S,
        /// Byte offset of the instruction from the stub's symbol.
        offset: u32,
        /// NMIs whose interrupted RIP was this instruction.
        hits: u64,
        /// Of those, the ones after which the checker found a damaged frame.
        corrupted: u64,
        /// Under a `timing` expectation: whether a landing here must corrupt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        predicted: Option<bool>,
    },
    Panic {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<S>,
        cpu: u32,
        message: S,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rip: Option<Hex>,
        /// Set when the panic comes from an unexpected exception.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vector: Option<u8>,
    },
    /// The kernel's watchdog found a CPU stuck.
    Hang {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<S>,
        cpu: u32,
        rip: Hex,
    },
    /// Last event of a complete run.
    Done {
        passed: u32,
        failed: u32,
        skipped: u32,
        #[serde(default)]
        not_reproduced: u32,
    },
}

/// Which front door booted the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Door {
    Limine,
    Pvh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LapicMode {
    X2apic,
    Xapic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// Known in advance not to apply here (expectation, `hw-only` on TCG, CPUs).
    Skip,
    /// Tried, and the test's own telltale shows the platform never produced
    /// the hazard: says nothing about the entry code either way.
    #[serde(rename = "not-reproduced")]
    NotReproduced,
}

impl Outcome {
    /// The word a human reads after `test NAME ...`, as libtest prints it.
    pub const fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "ok",
            Outcome::Fail => "FAILED",
            Outcome::Skip => "skipped",
            Outcome::NotReproduced => "not-reproduced",
        }
    }
}

/// The expectation a result was judged against, so that "pass" can be read as
/// "survived" or "corruption detected".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    Survive,
    Detect,
    Timing,
    Skip,
}

/// What a test measured; absent means "not measured", not zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corruptions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nmis: Option<u64>,
    /// NMIs a test sent by its own count; with `nmis` (received) it proves
    /// delivery (`boot::nmi_all_to_all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nmis_sent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u64>,
    /// Corruptions by kind (their sum is `corruptions`): an IST frame that
    /// changed under its handler, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_mismatches: Option<u64>,
    /// ... an interrupted IST stack that changed under its interrupter, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_clobbers: Option<u64>,
    /// ... and an IST entry whose frame landed on a live frame of its own stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlaps: Option<u64>,
    /// Deepest use of the #DB IST stack (bytes below its top, from stack paint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_stack_bytes: Option<u64>,
    /// Checker incidents: IST entries found with a damaged frame or stack (one
    /// per entry, whatever the number of words), including those the runner
    /// drained after the test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incidents: Option<u64>,
    /// Times the hazard happened in a way that must corrupt an unprotected
    /// entry (the denominator of the detection rate) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hazards: Option<u64>,
    /// ... and how many of those the checker accounted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<u64>,
    /// NMIs sent and never entered on the victim (by the entry's own count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_nmis: Option<u64>,
    /// NMIs the platform merged: sent while the victim had one pending, proven
    /// by the victim's own counters; reported apart from lost ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_nmis: Option<u64>,
    /// Timing: landings whose outcome the prediction got wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatches: Option<u64>,
    /// Registers of the interrupted code found changed after the hazard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged_registers: Option<u64>,
}

impl Counters {
    /// Adds `n` to a counter, starting it at zero if it was not measured yet.
    pub fn add(counter: &mut Option<u64>, n: u64) {
        *counter = Some(counter.unwrap_or(0).saturating_add(n));
    }
}

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
            Event::Hello { .. } | Event::Plan { .. } | Event::Done { .. } => None,
        }
    }
}
