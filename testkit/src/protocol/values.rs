//! The values events carry: the door, the LAPIC mode, a result's outcome and
//! expectation, and the counters a test measured.

use serde::{Deserialize, Serialize};

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
