//! Aiming an NMI from another CPU at a window of the victim's code: the delay
//! B waits before it sends is learned from where earlier NMIs landed. Not a
//! test: shared by the sweeps.

use crate::arch::time;
use crate::entry::counters::{Counter, Snapshot};

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
