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
#[cfg(all(test, feature = "std"))]
mod malformed_tests;
mod methods;
mod qr;
mod setting;
#[cfg(feature = "std")]
mod stream;
#[cfg(all(test, feature = "std"))]
mod stream_tests;
#[cfg(all(test, feature = "std"))]
mod tests;
mod values;

#[cfg(feature = "std")]
pub use decode::{LineKind, OwnedEvent, parse_line};
#[cfg(feature = "std")]
pub use encode::line_of;
pub use encode::{EncodeError, LINE_MAX, encode_line};
pub use hex::Hex;
pub use qr::{QR_PART, QrParts, qr_parts};
pub use setting::Setting;
#[cfg(feature = "std")]
pub use stream::{Record, RecordKind, StreamError, StreamParser, Transcript, parse_stream};
pub use values::{Counters, Door, Expected, LapicMode, Outcome};

use crate::expect::{Machine, Strategy};
#[cfg(feature = "std")]
use serde::Deserialize;
use serde::Serialize;

/// The start of every event line. A log line that merely contains it later on
/// is still a log line: only the start of a line counts.
pub const PREFIX: &str = "@istorm ";

/// Bumped on any change an older host would misread.
///
/// 2: outcome `not-reproduced`; strategies `shift-only` (was `shift-ist`) and
/// `linux-4.19`; `window` events; `done.not_reproduced`; evidence counters;
/// `hello.tsc_mhz` and the `nmis_sent` counter, which replace the kernel's
/// `time:` and `nmi:` lines for the host.
///
/// 3: `qr` events (the summary, in parts) and the `hold` event replace the
/// kernel's `qr:` and `hold:` lines for the host.
pub const PROTOCOL_VERSION: u32 = 3;

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
    /// After `done`: the run's summary (testkit's `summary` text, what the
    /// screen shows as a QR code), cut into parts that each fit a line
    /// ([`qr_parts`] writes them, [`Transcript::summary_text`] joins them).
    Qr {
        /// 1-based, in order.
        part: u32,
        parts: u32,
        text: S,
    },
    /// Last of all under `hold=1`: the kernel halts with the results on
    /// screen, and the host may take its screenshot and stop the machine.
    Hold,
}
