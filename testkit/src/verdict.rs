//! From expectation and observation to an outcome.
//!
//! A verdict is a claim about someone's entry code, so each rests on counts:
//! see [`judge`].

use crate::context::{Evidence, Observed};
use crate::desc::{TestDesc, tags};
use crate::expect::{Expect, Machine, Strategy};
use crate::message::{Message, message};
use crate::protocol::{Expected, Outcome};
use core::fmt;

/// Why a test is not run at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The test's expectation for this strategy is `Skip(reason)`.
    Expected(&'static str),
    /// Tagged `hw-only` and running on TCG.
    HwOnly,
    TooFewCpus {
        need: u32,
        have: usize,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Expected(why) => f.write_str(why),
            Self::HwOnly => f.write_str("hw-only: QEMU TCG does not model this timing"),
            Self::TooFewCpus { need, have } => write!(f, "needs {need} CPUs, {have} up"),
        }
    }
}

/// Decides before running whether `test` can say anything here.
pub fn skip_reason(
    test: &TestDesc,
    strategy: Strategy,
    machine: Machine,
    cpus: usize,
) -> Option<SkipReason> {
    if let Expect::Skip(why) = test.expect.get(strategy) {
        return Some(SkipReason::Expected(why));
    }
    if machine == Machine::Tcg && test.has_tag(tags::HW_ONLY) {
        return Some(SkipReason::HwOnly);
    }
    if test.cpus as usize > cpus {
        return Some(SkipReason::TooFewCpus {
            need: test.cpus,
            have: cpus,
        });
    }
    None
}

/// An outcome and a short reason for it (empty for a plain pass).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub outcome: Outcome,
    pub reason: Message,
}

impl Judgement {
    fn new(outcome: Outcome, reason: fmt::Arguments<'_>) -> Self {
        Self {
            outcome,
            reason: message(reason),
        }
    }
}

/// What the runner adds to a test's own evidence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Incidents the runner drained from the checker after the test: findings
    /// the test itself did not collect (and might have hidden).
    pub drained: u64,
    /// Corruption events on the wire for this test (test's and runner's).
    pub reported: u64,
}

/// Judges one run (the rules are in `docs/verdicts.md`):
/// - `survive`: no checker incident (the test's and the runner's), no lost
///   NMI, no damaged register.
/// - `detect`: the hazard happened in a way that must corrupt, the checker
///   accounted for every such time (a detection rate of 100%), and put its
///   findings on the wire.
/// - `timing`: the test predicted per landing whether it must corrupt, both
///   kinds of landing happened, and the checker agreed with every prediction.
/// - a test that could not do its job fails under any expectation; one whose
///   hazard the platform never produced is `not-reproduced`.
pub fn judge(expect: Expect, observed: &Observed, tally: Tally) -> Judgement {
    let e = match (observed, expect) {
        (Observed::Failed(why), _) => return Judgement::new(Outcome::Fail, format_args!("{why}")),
        (_, Expect::Skip(why)) => return Judgement::new(Outcome::Skip, format_args!("{why}")),
        (Observed::NotReproduced(why), _) => {
            return Judgement::new(Outcome::NotReproduced, format_args!("{why}"));
        }
        (Observed::Survived, _) => Evidence::default(),
        (Observed::Ran(e), _) => *e,
    };
    let incidents = e.incidents + tally.drained;
    let fail = |args: fmt::Arguments<'_>| Judgement::new(Outcome::Fail, args);
    if e.lost_nmis > 0 {
        return fail(format_args!("{} NMIs lost", e.lost_nmis));
    }
    if e.damaged_registers > 0 {
        return fail(format_args!(
            "{} registers of the interrupted code damaged",
            e.damaged_registers
        ));
    }
    match expect {
        Expect::Skip(why) => Judgement::new(Outcome::Skip, format_args!("{why}")),
        Expect::Survive if incidents == 0 => Judgement::new(Outcome::Pass, format_args!("")),
        Expect::Survive if tally.drained > 0 && e.incidents == 0 => fail(format_args!(
            "checker found {incidents} incidents the test did not collect, under a strategy expected to survive"
        )),
        Expect::Survive => fail(format_args!(
            "checker found {incidents} incidents under a strategy expected to survive"
        )),
        Expect::Detect if e.hazards == 0 => fail(format_args!(
            "the hazard never happened in a way that must corrupt: nothing to detect"
        )),
        Expect::Detect if tally.reported == 0 => {
            fail(format_args!("expected corruption, none detected"))
        }
        Expect::Detect if e.detected < e.hazards => fail(format_args!(
            "detection rate {}% ({}/{}): below 100%",
            e.detected * 100 / e.hazards,
            e.detected,
            e.hazards
        )),
        Expect::Detect => Judgement::new(
            Outcome::Pass,
            format_args!("detected {}/{} (100%)", e.detected, e.hazards),
        ),
        Expect::Timing if e.mismatches > 0 => fail(format_args!(
            "prediction wrong at {} of {} landings",
            e.mismatches,
            e.predicted_corrupt + e.predicted_clean
        )),
        Expect::Timing if e.predicted_corrupt == 0 || e.predicted_clean == 0 => fail(format_args!(
            "prediction untested: {} landings predicted to corrupt, {} clean",
            e.predicted_corrupt, e.predicted_clean
        )),
        Expect::Timing if tally.reported == 0 => fail(format_args!(
            "{} landings must corrupt, none reported on the wire",
            e.predicted_corrupt
        )),
        Expect::Timing => Judgement::new(
            Outcome::Pass,
            format_args!(
                "prediction held: {} landings corrupted, {} clean",
                e.predicted_corrupt, e.predicted_clean
            ),
        ),
    }
}

impl Expect {
    /// The wire form, without the skip reason (that goes into `details`).
    pub const fn kind(self) -> Expected {
        match self {
            Expect::Survive => Expected::Survive,
            Expect::Detect => Expected::Detect,
            Expect::Timing => Expected::Timing,
            Expect::Skip(_) => Expected::Skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TestResult;
    use crate::expect::Expectations;

    fn body(_: &mut crate::Context<'_>) -> TestResult {
        Ok(Observed::Survived)
    }

    fn desc() -> TestDesc {
        TestDesc::new("t::x", body, module_path!(), file!(), line!())
    }

    fn ran(e: Evidence) -> Observed {
        Observed::Ran(e)
    }

    const REPORTED: Tally = Tally {
        drained: 0,
        reported: 3,
    };

    #[test]
    fn survive_fails_on_any_incident_loss_or_damage() {
        let pass = |o: &Observed, t| judge(Expect::Survive, o, t).outcome;
        assert_eq!(pass(&Observed::Survived, Tally::default()), Outcome::Pass);
        let one = ran(Evidence {
            incidents: 1,
            ..Evidence::default()
        });
        assert_eq!(pass(&one, REPORTED), Outcome::Fail);
        // A finding the test never collected, drained by the runner, fails it.
        let hidden = judge(
            Expect::Survive,
            &Observed::Survived,
            Tally {
                drained: 2,
                reported: 2,
            },
        );
        assert_eq!(hidden.outcome, Outcome::Fail);
        assert!(hidden.reason.contains("did not collect"));
        let lost = judge(
            Expect::Survive,
            &ran(Evidence {
                lost_nmis: 1,
                ..Evidence::default()
            }),
            Tally::default(),
        );
        assert_eq!(lost.outcome, Outcome::Fail);
        assert!(lost.reason.contains("NMIs lost"));
        let damaged = ran(Evidence {
            damaged_registers: 1,
            ..Evidence::default()
        });
        assert_eq!(pass(&damaged, Tally::default()), Outcome::Fail);
    }

    #[test]
    fn detect_needs_a_full_detection_rate_on_the_wire() {
        let full = ran(Evidence {
            incidents: 50,
            hazards: 50,
            detected: 50,
            ..Evidence::default()
        });
        let ok = judge(Expect::Detect, &full, REPORTED);
        assert_eq!(ok.outcome, Outcome::Pass);
        assert!(ok.reason.contains("50/50"));
        let missed = ran(Evidence {
            incidents: 49,
            hazards: 50,
            detected: 49,
            ..Evidence::default()
        });
        let rate = judge(Expect::Detect, &missed, REPORTED);
        assert_eq!(rate.outcome, Outcome::Fail);
        assert!(rate.reason.contains("98%"), "{}", rate.reason);
        // A blind checker: the hazard happened, nothing reached the wire.
        let blind = judge(Expect::Detect, &full, Tally::default());
        assert_eq!(blind.outcome, Outcome::Fail);
        assert!(blind.reason.contains("expected corruption, none detected"));
        let no_hazard = judge(Expect::Detect, &Observed::Survived, REPORTED);
        assert_eq!(no_hazard.outcome, Outcome::Fail);
    }

    #[test]
    fn timing_fails_on_any_mismatch_or_untested_side() {
        let held = Evidence {
            predicted_corrupt: 10,
            predicted_clean: 30,
            incidents: 10,
            ..Evidence::default()
        };
        assert_eq!(
            judge(Expect::Timing, &ran(held), REPORTED).outcome,
            Outcome::Pass
        );
        let wrong = Evidence {
            mismatches: 1,
            ..held
        };
        let j = judge(Expect::Timing, &ran(wrong), REPORTED);
        assert_eq!(j.outcome, Outcome::Fail);
        assert!(j.reason.contains("1 of 40"));
        let one_sided = Evidence {
            predicted_clean: 0,
            ..held
        };
        assert_eq!(
            judge(Expect::Timing, &ran(one_sided), REPORTED).outcome,
            Outcome::Fail
        );
        assert_eq!(
            judge(Expect::Timing, &ran(held), Tally::default()).outcome,
            Outcome::Fail
        );
    }

    #[test]
    fn failure_and_not_reproduced() {
        let failed = Observed::Failed(message(format_args!("no NMI arrived")));
        for e in [
            Expect::Survive,
            Expect::Detect,
            Expect::Timing,
            Expect::Skip("x"),
        ] {
            assert_eq!(judge(e, &failed, Tally::default()).outcome, Outcome::Fail);
        }
        let nr = Observed::NotReproduced(message(format_args!("no #DB on the entry")));
        for e in [Expect::Survive, Expect::Detect, Expect::Timing] {
            let j = judge(e, &nr, Tally::default());
            assert_eq!(j.outcome, Outcome::NotReproduced);
            assert!(j.reason.contains("no #DB"));
        }
        let skip = judge(Expect::Skip("why"), &Observed::Survived, Tally::default());
        assert_eq!(skip.outcome, Outcome::Skip);
        assert_eq!(skip.reason.as_str(), "why");
    }

    #[test]
    fn skips_for_expectation_tcg_and_cpus() {
        let mut t = desc();
        assert_eq!(skip_reason(&t, Strategy::Linux, Machine::Tcg, 1), None);

        t.expect = Expectations::all(Expect::Survive)
            .with(Strategy::ShiftOnly, Expect::Skip("no NMI fix"));
        assert_eq!(
            skip_reason(&t, Strategy::ShiftOnly, Machine::Kvm, 4),
            Some(SkipReason::Expected("no NMI fix"))
        );
        assert_eq!(skip_reason(&t, Strategy::Linux, Machine::Kvm, 4), None);

        t.tags = &[tags::TCG, tags::HW_ONLY];
        assert_eq!(
            skip_reason(&t, Strategy::Linux, Machine::Tcg, 4),
            Some(SkipReason::HwOnly)
        );
        assert_eq!(skip_reason(&t, Strategy::Linux, Machine::Kvm, 4), None);
        assert_eq!(
            skip_reason(&t, Strategy::Linux, Machine::NoHypervisor, 4),
            None
        );

        t.cpus = 4;
        let few = skip_reason(&t, Strategy::Linux, Machine::Kvm, 2);
        assert_eq!(few, Some(SkipReason::TooFewCpus { need: 4, have: 2 }));
        assert_eq!(std::format!("{}", few.unwrap()), "needs 4 CPUs, 2 up");
    }

    #[test]
    fn expect_kinds() {
        assert_eq!(Expect::Skip("r").kind(), Expected::Skip);
        assert_eq!(Expect::Detect.kind(), Expected::Detect);
        assert_eq!(Expect::Survive.kind(), Expected::Survive);
        assert_eq!(Expect::Timing.kind(), Expected::Timing);
    }
}
