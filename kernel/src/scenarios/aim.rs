//! Aiming an NMI from another CPU at a window of the victim's code: the delay
//! B waits before it sends is learned from where earlier NMIs landed. Not a
//! test: shared by the sweeps.

use crate::arch::time;
use crate::entry::counters::{Counter, Snapshot};
use crate::entry::nmi;

/// Where an iteration's NMI landed, relative to the window aimed at.
pub const NOT_LANDED: u64 = 0;
pub const BEFORE: u64 = 1;
pub const INSIDE: u64 = 2;
pub const AFTER: u64 = 3;

/// Steers B's delay towards the #DB handler: it learns which delays landed
/// inside, and draws most delays from that band (widened by a quarter on each
/// side), the rest from the whole span so that the band can move. Until
/// something lands inside, the span grows while NMIs arrive too early and
/// shrinks while they arrive too late, within bounds, so a slow host can
/// never push the delay (and the run time) out of proportion.
pub struct Aim {
    span: u64,
    min_span: u64,
    max_span: u64,
    inside: Option<(u64, u64)>,
    before: u64,
    after: u64,
}

impl Aim {
    pub fn new(span: u64) -> Self {
        let span = span.max(64);
        Self {
            span,
            min_span: 64,
            max_span: span * 16,
            inside: None,
            before: 0,
            after: 0,
        }
    }

    pub fn next_delay(&mut self, rng: &mut testkit::Rng) -> u64 {
        match self.inside {
            Some((lo, hi)) if !rng.chance(4) => {
                let margin = (hi - lo) / 4 + 1;
                rng.between(lo.saturating_sub(margin), hi + margin)
            }
            _ => rng.below(self.span),
        }
    }

    pub fn learn(&mut self, delay: u64, landing: u64) {
        match landing {
            INSIDE => {
                let (lo, hi) = self.inside.unwrap_or((delay, delay));
                self.inside = Some((lo.min(delay), hi.max(delay)));
            }
            BEFORE => self.before += 1,
            AFTER => self.after += 1,
            _ => {}
        }
        if self.inside.is_none() && self.before + self.after >= 64 {
            self.span = if self.before > self.after {
                (self.span * 2).min(self.max_span)
            } else {
                (self.span / 2).max(self.min_span)
            };
            self.before = 0;
            self.after = 0;
        }
    }
}

/// What the victim's NMI entry counted since `before`, once every NMI the
/// sender counted in `sent` has entered (or a second has passed): the
/// nested branches a sweep must show taken.
pub struct NmiCounts {
    pub entered: u64,
    pub by_flag: u64,
    pub by_rsp: u64,
    pub in_repeat: u64,
    pub first: u64,
}

impl NmiCounts {
    pub fn settle(victim: usize, before: &Snapshot, sent: u64) -> Self {
        let count = |c: Counter| Snapshot::take(victim).since(before, c);
        time::wait_until(1_000_000, || count(Counter::NmiEntered) >= sent);
        Self {
            entered: count(Counter::NmiEntered),
            by_flag: count(Counter::NmiNestedByFlag),
            by_rsp: count(Counter::NmiNestedByRsp),
            in_repeat: count(Counter::NmiNestedInRepeat),
            first: count(Counter::NmiFirst),
        }
    }
}

/// Landings tallied against a per-landing prediction (a `timing` verdict).
#[derive(Default)]
pub struct Tally {
    corrupt: u64,
    clean: u64,
    mismatches: u64,
    /// The first wrong one: its offset in the stub, and whether it corrupted.
    first_wrong: Option<(u64, bool)>,
}

impl Tally {
    pub fn count(&mut self, offset: u64, must_corrupt: bool, corrupted: bool) {
        if must_corrupt {
            self.corrupt += 1;
        } else {
            self.clean += 1;
        }
        if must_corrupt != corrupted {
            self.mismatches += 1;
            self.first_wrong.get_or_insert((offset, corrupted));
        }
    }

    pub fn fill(&self, e: &mut testkit::Evidence) {
        e.predicted_corrupt = self.corrupt;
        e.predicted_clean = self.clean;
        e.mismatches = self.mismatches;
    }

    /// The first wrong prediction (its offset in the stub, what happened), as
    /// the start of a note: empty when every prediction held.
    pub fn first_wrong(&self) -> FirstWrong {
        FirstWrong(self.first_wrong)
    }
}

pub struct FirstWrong(Option<(u64, bool)>);

impl core::fmt::Display for FirstWrong {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some((offset, true)) => {
                write!(f, "first wrong: +{offset:#x} corrupted, predicted clean; ")
            }
            Some((offset, false)) => {
                write!(f, "first wrong: +{offset:#x} clean, predicted to corrupt; ")
            }
            None => Ok(()),
        }
    }
}

impl core::fmt::Display for Tally {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "predicted_corrupt={} predicted_clean={} mismatches={}",
            self.corrupt, self.clean, self.mismatches
        )
    }
}

/// `nmi_prologue_windows`: whether a second NMI landing at `rip` while the
/// first NMI is held there must corrupt, from the stub's labels: clean
/// from `repeat_nmi` on, and on the ring-3 path once it has copied its frame.
pub fn must_corrupt(rip: u64, user_path: (u64, u64)) -> bool {
    let clean = (user_path.0..user_path.1).contains(&rip) || rip >= nmi::repeat_range().0;
    !clean
}

/// The ring-3 path after its copy, `nmi_user_copied..nmi_from_kernel` (labels
/// not exported yet), from the window table: the stub opens with 5
/// instructions (count, CLD, save rdx, CS test, branch), the ring-3 path
/// copies its frame in 9 more, then runs the NMI body and its IRETQ; that
/// body is the kernel path's from `end_repeat_nmi` less its 4-instruction
/// exit (add, STD, clear "executing", IRETQ).
pub fn user_path_range(ks: &[u64]) -> (u64, u64) {
    let end_repeat = nmi::repeat_range().1;
    let body = ks
        .iter()
        .filter(|&&a| a >= end_repeat)
        .count()
        .saturating_sub(4);
    let copied = 5 + 9;
    let at = |i: usize| ks.get(i).copied().unwrap_or(0);
    (at(copied), at(copied + body + 1))
}
