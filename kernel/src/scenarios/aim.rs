//! Aiming an NMI from another CPU at a window of the victim's code: the delay
//! B waits before it sends is learned from where earlier NMIs landed. Not a
//! test: shared by the sweeps.

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

pub mod hold {
    //! Holding the first NMI at an execute breakpoint in its own stub, for
    //! `nmi_prologue_windows` (not a test): the #DB hook that re-opens NMIs there
    //! and tells the sender, the rescue run by the body of a second NMI that the
    //! entry took for a first one, and the watchpoints that show whether the
    //! first NMI still needed what the second overwrote.
    //!
    //! One iteration: `arm(k, rdx)` on A; B waits for `reached()`, sends the
    //! second NMI and calls `sent()`; after the round, `hit()`, `live()` and
    //! `nested_rip()` say what happened.

    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use crate::arch::{percpu, time};
    use crate::entry::breakpoint::{self, Breakpoint, Kind, NmiTop};
    use crate::entry::checker::IstFrame;
    use crate::entry::handlers::DbEvent;
    use crate::entry::nmi;
    use crate::scenarios::sender::{self, VICTIM};

    /// Nested NMI bodies in one iteration beyond which the entry is looping.
    const LIVELOCK: u64 = 64;
    /// DR1/DR2 watch the rdx slot and the hardware frame's RIP (`NmiTop` words).
    const WATCHED: [(usize, usize); 2] = [(1, 0), (2, 1)];
    /// 1: the first NMI hit k; 2: B sent the second; `GAVE_UP`: B stopped
    /// waiting for 1 (k not reached in time).
    static STAGE: AtomicU64 = AtomicU64::new(0);
    const GAVE_UP: u64 = 3;
    /// The first NMI hit k this iteration (in time for B or not).
    static HIT: AtomicBool = AtomicBool::new(false);
    static K: AtomicU64 = AtomicU64::new(0);
    /// k runs with DR7 clear (the NMI body's own DR7 save..restore): DR0 is
    /// armed from the first NMI's hook, inside that range, not before.
    static FROM_BODY: AtomicBool = AtomicBool::new(false);
    static ARMED_IN_BODY: AtomicBool = AtomicBool::new(false);
    /// IST_NMI's top words, saved by the #DB hook; the interrupted code's rdx.
    static SAVED: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
    static SPIN_RDX: AtomicU64 = AtomicU64::new(0);
    static RESTORED: AtomicBool = AtomicBool::new(false);
    /// The first NMI touched a restored word after the second NMI's body.
    static LIVE: AtomicBool = AtomicBool::new(false);
    static NESTED_BODIES: AtomicU64 = AtomicU64::new(0);
    static NESTED_RIP: AtomicU64 = AtomicU64::new(0);

    fn place(slot: usize, addr: u64, kind: Kind, len: u64) {
        let _ = breakpoint::arm(
            Breakpoint {
                slot,
                addr,
                kind,
                len,
            },
            true,
        );
    }

    fn park(slot: usize, kind: Kind, len: u64) {
        place(slot, breakpoint::parking_address(), kind, len);
    }

    /// A, before an iteration: DR0 (execute) on `k` (`from_body`: parked until
    /// the first NMI's hook arms it), the watchpoints parked; the interrupted
    /// code will hold `rdx`.
    pub fn arm(k: u64, rdx: u64, from_body: bool) {
        K.store(k, Ordering::Relaxed);
        FROM_BODY.store(from_body, Ordering::Relaxed);
        ARMED_IN_BODY.store(false, Ordering::SeqCst);
        STAGE.store(0, Ordering::SeqCst);
        HIT.store(false, Ordering::SeqCst);
        RESTORED.store(false, Ordering::SeqCst);
        LIVE.store(false, Ordering::SeqCst);
        NESTED_BODIES.store(0, Ordering::SeqCst);
        SPIN_RDX.store(rdx, Ordering::Relaxed);
        for (slot, _) in WATCHED {
            park(slot, Kind::ReadWrite, 8);
        }
        if from_body {
            park(0, Kind::Execute, 1);
        } else {
            place(0, k, Kind::Execute, 1);
        }
    }

    /// The first NMI at k: save what a second NMI would overwrite, take DR0 off
    /// (moved, not disabled: DR7 is the #DB entry's to restore), let B send. A
    /// watchpoint hit: the first NMI touched a word after the second's body.
    pub fn on_db(event: &DbEvent) {
        if percpu::this().index() != VICTIM {
            return;
        }
        if event.dr6 & 0b110 != 0 {
            LIVE.store(true, Ordering::SeqCst);
            for (slot, _) in WATCHED {
                park(slot, Kind::ReadWrite, 8);
            }
        }
        if event.rip != K.load(Ordering::Relaxed) || HIT.swap(true, Ordering::SeqCst) {
            return;
        }
        for (saved, word) in SAVED.iter().zip(NmiTop::read().0) {
            saved.store(word, Ordering::Relaxed);
        }
        park(0, Kind::Execute, 1);
        // Unless B gave up, keep the #DB (and so NMI blocking) until B has sent:
        // however slowly B's CPU runs, the second NMI is pending at this IRET.
        let stage = STAGE.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
        if stage.is_ok() {
            sender::wait_for(&STAGE, 2);
        }
    }

    /// A body that interrupted the NMI stub: a second NMI the entry took for a
    /// first one. Puts back what it overwrote and watches it.
    pub fn on_nmi(frame: &mut IstFrame) {
        let rip = frame.regs.rip;
        let (start, end) = nmi::linux_range();
        if percpu::this().index() != VICTIM {
            return;
        }
        if !(start..end).contains(&rip) {
            // The first NMI's own body, between its DR7 save and restore: no
            // #DB entry restores DR7 over this write, and the stub's own
            // restore comes after k. The #DB at k is the first IRET since the
            // NMI: until it, NMIs stay blocked.
            if FROM_BODY.load(Ordering::Relaxed) && !ARMED_IN_BODY.swap(true, Ordering::SeqCst) {
                place(0, K.load(Ordering::Relaxed), Kind::Execute, 1);
            }
            return;
        }
        let nested = NESTED_BODIES.fetch_add(1, Ordering::SeqCst) + 1;
        NESTED_RIP.store(rip, Ordering::SeqCst);
        // The first NMI IRETs into its own stub with a frame a later one left
        // and runs its body on it forever: say so now, not at the timeout.
        assert!(
            nested < LIVELOCK,
            "NMI entry livelock: the first NMI's frame is lost, it keeps returning to {}",
            landing(rip)
        );
        if !HIT.load(Ordering::SeqCst) || RESTORED.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut words: [u64; 6] = core::array::from_fn(|i| SAVED[i].load(Ordering::Relaxed));
        words[0] = SPIN_RDX.load(Ordering::Relaxed);
        NmiTop(words).write();
        for (slot, word) in WATCHED {
            place(slot, NmiTop::address(word), Kind::ReadWrite, 8);
        }
    }

    /// `nmi_prologue_windows`'s prediction for a landing, as its label path.
    static USER_PATH: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

    pub fn set_user_path(path: (u64, u64)) {
        USER_PATH[0].store(path.0, Ordering::SeqCst);
        USER_PATH[1].store(path.1, Ordering::SeqCst);
    }

    /// A landing at `rip` and its prediction, for a failure message.
    pub fn landing(rip: u64) -> impl core::fmt::Display {
        struct Landing(u64);
        impl core::fmt::Display for Landing {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let (start, end) = nmi::linux_range();
                let path = (
                    USER_PATH[0].load(Ordering::SeqCst),
                    USER_PATH[1].load(Ordering::SeqCst),
                );
                if !(start..end).contains(&self.0) {
                    return write!(
                        f,
                        "{:#x}, outside the stub (in the first NMI's body)",
                        self.0
                    );
                }
                let predicted = if super::must_corrupt(self.0, path) {
                    "to corrupt"
                } else {
                    "clean"
                };
                write!(
                    f,
                    "nmi_stub_linux+{:#x} (predicted {predicted})",
                    self.0 - start
                )
            }
        }
        Landing(rip)
    }

    /// B: waits up to `timeout_us` for the first NMI to hit k; false (and A
    /// no longer waits for B) when it did not.
    pub fn reached(timeout_us: u64) -> bool {
        time::wait_until(timeout_us, || STAGE.load(Ordering::SeqCst) == 1)
            || STAGE
                .compare_exchange(0, GAVE_UP, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
    }

    /// B: the second NMI has left.
    pub fn sent() {
        STAGE.store(2, Ordering::SeqCst);
    }

    pub fn hit() -> bool {
        HIT.load(Ordering::SeqCst)
    }

    pub fn live() -> bool {
        LIVE.load(Ordering::SeqCst)
    }

    /// Where the body that overwrote the first NMI landed, if one did: it put the
    /// first NMI's frame back, maybe before B could read its own there.
    pub fn nested_rip() -> Option<u64> {
        RESTORED
            .load(Ordering::SeqCst)
            .then(|| NESTED_RIP.load(Ordering::SeqCst))
    }

    /// The first NMI's interrupted RIP, as saved at k.
    pub fn saved_rip() -> u64 {
        SAVED[1].load(Ordering::Relaxed)
    }
}
