//! From expectation and observation to an outcome.
//!
//! The rules (DESIGN.md section 4): `survive` passes only with no corruption at
//! all; `detect` passes only if corruption was really reported on the wire,
//! because a strategy that corrupts silently is exactly what the checker exists
//! to catch; `timing` passes either way but, like `detect`, never on a
//! corruption that was claimed and not reported; a test that could not do its
//! job fails under any expectation.

use crate::context::Observed;
use crate::desc::{TestDesc, tags};
use crate::expect::{Expect, Machine, Strategy};
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

/// An outcome and, when it is not a plain pass, a short reason for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub outcome: Outcome,
    pub reason: &'static str,
}

impl Judgement {
    const fn new(outcome: Outcome, reason: &'static str) -> Self {
        Self { outcome, reason }
    }
}

/// Judges one run. `reported` is how many corruption events the test put on
/// the wire (`Context::corruptions_reported`); a `Corrupted` observation
/// without them is not accepted as a detection.
pub fn judge(expect: Expect, observed: &Observed, reported: u64) -> Judgement {
    let claimed = match observed {
        Observed::Failed(_) => return Judgement::new(Outcome::Fail, "test failed"),
        Observed::Survived => 0,
        Observed::Corrupted { count } => *count,
    };
    match expect {
        Expect::Skip(why) => Judgement::new(Outcome::Skip, why),
        Expect::Survive if claimed == 0 && reported == 0 => Judgement::new(Outcome::Pass, ""),
        Expect::Survive => Judgement::new(
            Outcome::Fail,
            "corrupted under a strategy expected to survive",
        ),
        Expect::Detect if reported > 0 => {
            Judgement::new(Outcome::Pass, "corruption detected as expected")
        }
        Expect::Detect | Expect::Timing if claimed > 0 && reported == 0 => Judgement::new(
            Outcome::Fail,
            "test claims corruption but reported none on the wire",
        ),
        Expect::Timing if reported > 0 => {
            Judgement::new(Outcome::Pass, "timing-dependent: corruption detected")
        }
        Expect::Timing => Judgement::new(Outcome::Pass, "timing-dependent: survived"),
        Expect::Detect => Judgement::new(
            Outcome::Fail,
            "expected corruption to be detected; none was",
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
    use crate::message::message;

    fn body(_: &mut crate::Context<'_>) -> TestResult {
        Ok(Observed::Survived)
    }

    fn desc() -> TestDesc {
        TestDesc::new("t::x", body, module_path!(), file!(), line!())
    }

    const CORRUPTED: Observed = Observed::Corrupted { count: 2 };

    #[test]
    fn survive_passes_only_without_corruption() {
        assert_eq!(
            judge(Expect::Survive, &Observed::Survived, 0).outcome,
            Outcome::Pass
        );
        assert_eq!(
            judge(Expect::Survive, &Observed::Corrupted { count: 0 }, 0).outcome,
            Outcome::Pass
        );
        assert_eq!(judge(Expect::Survive, &CORRUPTED, 2).outcome, Outcome::Fail);
        // A reported corruption fails the test even if it then says it survived.
        assert_eq!(
            judge(Expect::Survive, &Observed::Survived, 1).outcome,
            Outcome::Fail
        );
    }

    #[test]
    fn detect_passes_only_when_really_reported() {
        assert_eq!(judge(Expect::Detect, &CORRUPTED, 2).outcome, Outcome::Pass);
        assert_eq!(
            judge(Expect::Detect, &Observed::Survived, 1).outcome,
            Outcome::Pass
        );
        let silent = judge(Expect::Detect, &Observed::Survived, 0);
        assert_eq!(silent.outcome, Outcome::Fail);
        assert!(silent.reason.contains("none was"));
        let unreported = judge(Expect::Detect, &CORRUPTED, 0);
        assert_eq!(unreported.outcome, Outcome::Fail);
        assert!(unreported.reason.contains("on the wire"));
    }

    #[test]
    fn timing_passes_either_way_but_not_silently() {
        let survived = judge(Expect::Timing, &Observed::Survived, 0);
        assert_eq!(
            survived,
            Judgement::new(Outcome::Pass, "timing-dependent: survived")
        );
        let detected = judge(Expect::Timing, &CORRUPTED, 2);
        assert_eq!(detected.outcome, Outcome::Pass);
        assert!(detected.reason.contains("detected"));
        assert_eq!(judge(Expect::Timing, &CORRUPTED, 0).outcome, Outcome::Fail);
    }

    #[test]
    fn failure_fails_under_every_expectation() {
        let failed = Observed::Failed(message(format_args!("no NMI arrived")));
        for e in [
            Expect::Survive,
            Expect::Detect,
            Expect::Timing,
            Expect::Skip("x"),
        ] {
            assert_eq!(judge(e, &failed, 0).outcome, Outcome::Fail);
        }
        assert_eq!(
            judge(Expect::Skip("why"), &Observed::Survived, 0),
            Judgement::new(Outcome::Skip, "why")
        );
    }

    #[test]
    fn skips_for_expectation_tcg_and_cpus() {
        let mut t = desc();
        assert_eq!(skip_reason(&t, Strategy::Linux, Machine::Tcg, 1), None);

        t.expect =
            Expectations::all(Expect::Survive).with(Strategy::ShiftIst, Expect::Skip("no NMI fix"));
        assert_eq!(
            skip_reason(&t, Strategy::ShiftIst, Machine::Kvm, 4),
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
