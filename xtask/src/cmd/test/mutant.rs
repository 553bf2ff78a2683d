//! `checker::mutant_ignore_rip_is_caught`: the naive strategy's
//! `scenarios::db_kernel_nmi_db` under a checker blind to RIP must not pass,
//! or the checker's RIP comparison proves nothing.

use crate::report::verdict::{Report, Verdict};

pub(super) const MUTANT: &str = "checker::mutant_ignore_rip_is_caught";
const MUTANT_TARGET: &str = "scenarios::db_kernel_nmi_db";

/// The checker mutant is caught when the target test does not pass under it:
/// a failed result and a crash both count.
pub(super) fn judge_mutant(seen: &[Report]) -> Report {
    let target = seen.iter().find(|r| r.name == MUTANT_TARGET);
    let (verdict, note) = match target.map(|r| &r.verdict) {
        Some(Verdict::Fail(why)) => (
            Verdict::Pass,
            format!("{MUTANT_TARGET} fails under checker=ignore-rip: {why}"),
        ),
        Some(Verdict::Pass) => (
            Verdict::Fail(format!(
                "a checker blind to RIP let naive pass {MUTANT_TARGET}: {}",
                target.map_or("", |r| r.note.as_str())
            )),
            String::new(),
        ),
        Some(Verdict::Skip(why) | Verdict::NotReproduced(why)) => (
            Verdict::Fail(format!("{MUTANT_TARGET} was skipped: {why}")),
            String::new(),
        ),
        None => {
            let why = seen
                .iter()
                .find_map(|r| match &r.verdict {
                    Verdict::Fail(why) => Some(format!(": {}", why)),
                    _ => None,
                })
                .unwrap_or_default();
            (
                Verdict::Fail(format!("{MUTANT_TARGET} never ran{why}")),
                String::new(),
            )
        }
    };
    Report {
        note,
        detail: target.map(|r| r.detail.clone()).unwrap_or_default(),
        ..Report::new(MUTANT, verdict)
    }
}
