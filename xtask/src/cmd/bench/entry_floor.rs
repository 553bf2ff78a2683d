//! `cargo xtask bench entry`'s floor under the nested iteration: per
//! strategy, its #DB alone plus the self-sent NMI alone, measured in the same
//! boot, for the scenario's trigger (a write watchpoint) and for ICEBP (the
//! same #DB entry without the emulator's watchpoint path); and, when the
//! floor is already above the target, the numbers that say why.

use testkit::Strategy;

use super::entry_trips::{
    DB, DB_ICEBP, DR7_PAIR, DR7_TOUCHES, DR7_WITH_TOUCHES, INT3, LINUX_TARGET, NESTED,
    NESTED_ICEBP, NMI_SELF, Row, Trips,
};

fn cycles(c: Option<u64>) -> String {
    c.map_or("n/a".to_string(), |c| c.to_string())
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("n/a".to_string(), |r| format!("{r:.2}x"))
}

/// `floor` against the self-sent NMI: the lowest ratio that #DB allows.
fn floor_per_nmi(t: &Trips, db: &str) -> Option<f64> {
    Some(t.floor(db)? as f64 / t.median(NMI_SELF)? as f64)
}

/// The nested iteration against its floor: what the nesting adds.
fn over_floor(t: &Trips, nested: &str, db: &str) -> Option<f64> {
    Some(t.median(nested)? as f64 / t.floor(db)? as f64)
}

pub(super) fn print(rows: &[Row]) {
    println!(
        "the floor under a nested iteration: its #DB alone (bench::db_roundtrip, \
         bench::db_icebp_roundtrip) + the self-sent NMI alone, in cycles; `floor/NMI` is the \
         lowest ratio that #DB allows, `nested/floor` what the nesting adds; `ICEBP` raises \
         the outer #DB with ICEBP instead of the scenario's write watchpoint (same entry, \
         same armed DR7, no watchpoint path); `DR7 pair` = DR7 cleared and put back:"
    );
    println!(
        "{:<10} {:<7} {:>9} {:>9} {:>12} {:>9} {:>9} {:>12} {:>8} {:>8}",
        "strategy",
        "checker",
        "#DB",
        "floor/NMI",
        "nested/floor",
        "ICEBP #DB",
        "floor/NMI",
        "ICEBP nested",
        "x NMI",
        "DR7 pair"
    );
    for row in rows {
        for (label, t) in [("on", &row.with), ("off", &row.without)] {
            println!(
                "{:<10} {label:<7} {:>9} {:>9} {:>12} {:>9} {:>9} {:>12} {:>8} {:>8}",
                row.strategy.name(),
                cycles(t.median(DB)),
                ratio(floor_per_nmi(t, DB)),
                ratio(over_floor(t, NESTED, DB)),
                cycles(t.median(DB_ICEBP)),
                ratio(floor_per_nmi(t, DB_ICEBP)),
                cycles(t.median(NESTED_ICEBP)),
                ratio(t.per_nmi(NESTED_ICEBP)),
                cycles(t.median(DR7_PAIR)),
            );
        }
    }
}

/// When the platform's floor is already above the target: the numbers that
/// say so, with checker=off (the strategy's own cost): the #DB alone against
/// the NMI, naive's #DB (no strategy work), the same #DB raised by ICEBP,
/// INT3, and the DR7 pair.
pub(super) fn why_not(rows: &[Row], linux: &Row) -> Option<String> {
    let off = &linux.without;
    let floor = floor_per_nmi(off, DB)?;
    if floor <= LINUX_TARGET {
        return None;
    }
    let naive = rows
        .iter()
        .find(|r| r.strategy == Strategy::Naive)
        .and_then(|r| r.without.median(DB));
    let icebp_floor = floor_per_nmi(off, DB_ICEBP);
    let (db, icebp_db) = (off.median(DB)?, off.median(DB_ICEBP)?);
    let icebp = match icebp_floor {
        Some(f) if f > LINUX_TARGET => format!(
            "Raised by ICEBP, the floor is still {f:.2}x: under this emulator, one \
             instruction per translated block, a #DB round trip through this entry costs \
             {} the NMI round trip.",
            ratio(off.per_nmi(DB_ICEBP))
        ),
        Some(f) => format!(
            "Raised by ICEBP, the floor is {f:.2}x, within the target; the nested ICEBP \
             iteration is {}.",
            ratio(off.per_nmi(NESTED_ICEBP))
        ),
        None => String::new(),
    };
    let dr7 = match (off.median(DR7_WITH_TOUCHES), off.median(DR7_TOUCHES)) {
        (Some(with), Some(alone)) => format!(
            ", and {} more than the page writes alone ({alone}) when 32 page writes follow \
             them: a watchpoint that changes inside a 2 MiB page empties QEMU's whole TLB, so \
             every page touched next is walked again",
            with.saturating_sub(alone)
        ),
        _ => String::new(),
    };
    Some(format!(
        "why not: on this platform the target is below the floor. With checker=off, \
         linux's #DB alone, raised as the scenario raises it (a write watchpoint), costs \
         {db} cycles, {} the self-sent NMI ({}), so with the NMI the floor is {floor:.2}x \
         before any nesting. The watchpoint path is the emulator's: the same #DB raised by \
         ICEBP costs {icebp_db} ({} less; at each watchpoint hit QEMU's TCG restores the CPU \
         state from the translated block, invalidates the block and runs the access again \
         as a one-instruction block). Naive's #DB from the same watchpoint, with no strategy \
         work, costs {}; an INT3 round trip {}. Linux's two DR7 writes cost {} a pair by \
         themselves{dr7}. {icebp}",
        ratio(off.per_nmi(DB)),
        cycles(off.median(NMI_SELF)),
        db.saturating_sub(icebp_db),
        cycles(naive),
        cycles(off.median(INT3)),
        cycles(off.median(DR7_PAIR)),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::entry_trips::{DR7, Measured, TRIPS};
    use super::*;

    /// One boot's numbers in `TRIPS` order: INT3, NMI, NMI self, nested, #DB,
    /// DR7 pair, nested ICEBP, #DB ICEBP.
    fn trips(cycles: [u64; TRIPS.len()]) -> Trips {
        let mut t = Trips::default();
        t.add(
            &TRIPS
                .map(|test| test)
                .into_iter()
                .zip(cycles)
                .map(|(test, cycles)| {
                    let details = if test == DR7 {
                        "pair=3 with_touches=50 touches_alone=20 (cycles per pair)"
                    } else {
                        ""
                    };
                    Some(Measured {
                        cycles,
                        details: details.to_string(),
                    })
                })
                .collect::<Vec<_>>(),
        );
        t
    }

    fn linux(db: u64, db_icebp: u64) -> Row {
        Row {
            strategy: Strategy::Linux,
            with: Trips::default(),
            without: trips([4, 100, 20, 110, db, 1, 80, db_icebp]),
            scenario: Vec::new(),
        }
    }

    #[test]
    fn the_floor_is_the_db_alone_plus_the_nmi_alone() {
        let t = trips([4, 100, 20, 110, 50, 1, 80, 30]);
        assert_eq!(t.floor(DB), Some(70));
        assert_eq!(floor_per_nmi(&t, DB), Some(3.5));
        assert_eq!(floor_per_nmi(&t, DB_ICEBP), Some(2.5));
        assert_eq!(over_floor(&t, NESTED, DB), Some(110.0 / 70.0));
        assert_eq!(over_floor(&Trips::default(), NESTED, DB), None);
    }

    #[test]
    fn why_not_speaks_only_when_the_floor_is_above_the_target() {
        let why = why_not(&[], &linux(50, 30)).expect("a floor of 3.5x is above 2x");
        assert!(why.contains("the floor is 3.50x"), "{why}");
        assert!(why.contains("costs 30 (20 less"), "{why}");
        assert!(why.contains("floor is still 2.50x"), "{why}");
        assert!(
            why.contains(
                "cost 3 a pair by themselves, and 30 more than the page writes alone (20)"
            ),
            "{why}"
        );
        let icebp_within = why_not(&[], &linux(50, 10)).expect("still above with the watchpoint");
        assert!(icebp_within.contains("the floor is 1.50x, within the target"));
        assert_eq!(why_not(&[], &linux(15, 10)), None);
    }
}
