//! `cargo xtask bench entry`'s data: the tests one boot measures, and per
//! strategy and checker setting the samples they gave.

use std::collections::BTreeMap;

use testkit::Strategy;

use super::median_u64;

pub(super) const INT3: &str = "bench::int3_roundtrip";
pub(super) const NMI: &str = "bench::nmi_roundtrip";
pub(super) const NMI_SELF: &str = "bench::nmi_self_roundtrip";
pub(super) const NESTED: &str = "bench::nested_roundtrip";
pub(super) const DB: &str = "bench::db_roundtrip";
pub(super) const NESTED_ICEBP: &str = "bench::nested_icebp_roundtrip";
pub(super) const DB_ICEBP: &str = "bench::db_icebp_roundtrip";
pub(super) const DR7: &str = "bench::dr7_roundtrip";
/// `bench::dr7_roundtrip`'s numbers: the DR7 pair alone, the pair with pages
/// touched after each write, the touches alone.
pub(super) const DR7_PAIR: &str = "bench::dr7_roundtrip.pair";
pub(super) const DR7_WITH_TOUCHES: &str = "bench::dr7_roundtrip.with_touches";
pub(super) const DR7_TOUCHES: &str = "bench::dr7_roundtrip.touches_alone";
pub(super) const SCENARIO: &str = "scenarios::db_kernel_nmi_db";
/// The round trips one boot measures, in `Trips::add`'s order.
pub(super) const TRIPS: [&str; 8] = [INT3, NMI, NMI_SELF, NESTED, DB, DR7, NESTED_ICEBP, DB_ICEBP];
/// The strategy that must stay this close to the NMI floor.
pub(super) const LINUX_TARGET: f64 = 2.0;

/// One test's number: cycles per iteration and its details.
pub(super) struct Measured {
    pub(super) cycles: u64,
    pub(super) details: String,
}

/// One strategy's samples under one checker setting: per test, the cycles
/// per iteration of each boot that gave a number, and the details of the
/// last nested iteration.
#[derive(Default)]
pub(super) struct Trips {
    /// Per test, and per `test.key` for each `key=value` number of its details.
    samples: BTreeMap<String, Vec<u64>>,
    pub(super) details: Option<String>,
}

impl Trips {
    /// One boot's numbers, in the order of `TRIPS`.
    pub(super) fn add(&mut self, got: &[Option<Measured>]) {
        for (test, m) in TRIPS.into_iter().zip(got) {
            if let Some(m) = m {
                self.samples
                    .entry(test.to_string())
                    .or_default()
                    .push(m.cycles);
                for (key, value) in numbers(&m.details) {
                    let column = self.samples.entry(format!("{test}.{key}")).or_default();
                    column.push(value);
                }
                if test == NESTED {
                    self.details = Some(m.details.clone());
                }
            }
        }
    }

    /// The median of `test`'s samples (`None`: no boot gave one).
    pub(super) fn median(&self, test: &str) -> Option<u64> {
        median_of(self.samples.get(test)?)
    }

    /// `test`'s median against the self-sent NMI's.
    pub(super) fn per_nmi(&self, test: &str) -> Option<f64> {
        Some(self.median(test)? as f64 / self.median(NMI_SELF)? as f64)
    }

    pub(super) fn ratio(&self) -> Option<f64> {
        self.per_nmi(NESTED)
    }

    /// The floor under a nested iteration whose #DB is `db`'s: that #DB
    /// alone plus the self-sent NMI alone.
    pub(super) fn floor(&self, db: &str) -> Option<u64> {
        Some(self.median(db)? + self.median(NMI_SELF)?)
    }
}

pub(super) struct Row {
    pub(super) strategy: Strategy,
    pub(super) with: Trips,
    /// `checker=off`: the strategy's own cost.
    pub(super) without: Trips,
    pub(super) scenario: Vec<u64>,
}

/// The `key=value` numbers of a result's details, in order.
pub(super) fn numbers(details: &str) -> Vec<(String, u64)> {
    details
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

pub(super) fn median_of(samples: &[u64]) -> Option<u64> {
    (!samples.is_empty()).then(|| median_u64(samples.to_vec()))
}
