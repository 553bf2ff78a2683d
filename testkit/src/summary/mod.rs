//! A whole run in one short line of text: what the kernel draws as a QR code at
//! the end of a run, for machines with a screen and no serial port, and also
//! sends on COM1 as `qr` events (`protocol::qr_parts`) so the host can check
//! it against the event stream.
//!
//! Defined once, here: the kernel encodes ([`encode`], no heap, into a caller's
//! buffer), the host decodes ([`decode`], `std`) and turns the result into the
//! same report as a serial run.
//!
//! # Format `IST1`
//!
//! Fields separated by `|`. First the header, every field present, in this
//! order:
//!
//! ```text
//! IST1|cpu=<model>|ucode=<0xHEX or na>|door=<limine|pvh>|lapic=<x2apic|xapic>
//!     |vm=<tcg|kvm|other-vm|no-hypervisor>|cpus=<n>|seed=<n>|strategy=<name>
//!     |pass=<n>|fail=<n>|skip=<n>
//! ```
//!
//! then one field per result, failed tests first, the rest in run order:
//!
//! ```text
//! <test>=<P|F|S|N>[,c<corruptions>][,n<nmis>][,d<dbs>]
//! ```
//!
//! A result runs under the strategy of the last `strategy=` field before it
//! (the header's, unless a later `strategy=<name>` field switches it). If not
//! every result fits, the last field is `...<n>`: `n` results were left out;
//! the header's counts still count them. Counters appear only when the test
//! measured them. Example (one line):
//!
//! ```text
//! IST1|cpu=Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz|ucode=0xf4|door=limine|lapic=x2apic
//!     |vm=no-hypervisor|cpus=8|seed=1|strategy=naive|pass=1|fail=1|skip=1
//!     |scenarios::db_kernel_nmi_db=F,c3,n200,d200|boot::nmi_all_to_all=P,n64
//!     |scenarios::movss_entry_db::tf=S
//! ```
//!
//! Text that cannot be written as is gets replaced: in the CPU model `|`
//! becomes `/`, control and non-ASCII characters `?`, and runs of spaces one
//! space; in a test name `|`, `=`, `,`, spaces and non-ASCII become `_`. Any
//! other change is a new format, `IST2`.

#[cfg(feature = "std")]
mod decode;
mod encode;
#[cfg(all(test, feature = "std"))]
mod tests;

#[cfg(feature = "std")]
pub use decode::{DecodeError, Decoded, decode};
pub use encode::{EncodeError, encode};

use crate::expect::{Machine, Strategy};
use crate::protocol::{Counters, Door, LapicMode, Outcome, Setting};

/// The first field: format and version.
pub const MAGIC: &str = "IST1";

/// Longest CPU model written (the CPUID brand string is 48 bytes).
pub const CPU_MAX: usize = 48;

/// What a run was, on what, and how it went in numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<S> {
    /// The CPUID brand string (or whatever names the CPU).
    pub cpu: S,
    /// The microcode revision, when the kernel could read it.
    pub ucode: Option<u32>,
    /// Where the run ran, as its `hello` said; results under a strategy other
    /// than the setting's say so.
    pub setting: Setting,
    pub passed: u32,
    pub failed: u32,
    /// Skipped and not-reproduced results together.
    pub skipped: u32,
}

/// One test's result. Of the counters only `corruptions`, `nmis` and `dbs`
/// travel; the others decode as not measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<S> {
    pub test: S,
    pub strategy: Strategy,
    pub outcome: Outcome,
    pub counters: Counters,
}

const fn outcome_letter(outcome: Outcome) -> char {
    match outcome {
        Outcome::Pass => 'P',
        Outcome::Fail => 'F',
        Outcome::Skip => 'S',
        Outcome::NotReproduced => 'N',
    }
}

const DOORS: [(Door, &str); 2] = [(Door::Limine, "limine"), (Door::Pvh, "pvh")];
const LAPICS: [(LapicMode, &str); 2] = [(LapicMode::X2apic, "x2apic"), (LapicMode::Xapic, "xapic")];
const MACHINES: [(Machine, &str); 4] = [
    (Machine::Tcg, "tcg"),
    (Machine::Kvm, "kvm"),
    (Machine::OtherVm, "other-vm"),
    (Machine::NoHypervisor, "no-hypervisor"),
];

/// The names the format writes, for showing them elsewhere (the summary screen).
pub fn door_name(door: Door) -> &'static str {
    name_of(&DOORS, door)
}

pub fn lapic_name(lapic: LapicMode) -> &'static str {
    name_of(&LAPICS, lapic)
}

pub fn machine_name(machine: Machine) -> &'static str {
    name_of(&MACHINES, machine)
}

/// The name of `value` in `table` (every variant is listed, so never empty).
fn name_of<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map_or("?", |(_, name)| name)
}
