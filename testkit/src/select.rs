//! Which tests run, and how: parsed from the kernel command line.
//!
//! Words are `key=value`, separated by spaces; keys testkit does not know are
//! left to the kernel. The last word wins for single-valued keys; `skip=` words
//! add up, so the host can resume after a crash by naming every test that has
//! already ended (`skip=a::x,b::y skip=c::z`).

use crate::desc::TestDesc;
use crate::expect::Strategy;
use core::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection<'a> {
    /// Run only tests whose name contains this.
    pub filter: Option<&'a str>,
    /// Iterations for every test, capped by each test's `max_iterations`.
    pub iterations: Option<u32>,
    pub seed: Option<u64>,
    /// `entry=NAME`: the strategy under test.
    pub strategy: Option<Strategy>,
    /// The whole command line, scanned for `skip=` words on demand (no heap).
    cmdline: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectionError<'a> {
    /// `iterations=` or `seed=` is not a number (decimal, or hex with `0x`).
    BadNumber {
        key: &'a str,
        value: &'a str,
    },
    ZeroIterations,
    UnknownStrategy(&'a str),
}

impl fmt::Display for SelectionError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadNumber { key, value } => write!(f, "{key}={value}: not a number"),
            Self::ZeroIterations => f.write_str("iterations=0: a test needs at least one"),
            Self::UnknownStrategy(name) => {
                write!(
                    f,
                    "entry={name}: unknown strategy (naive, shift-only, linux-4.19, dr7-guard, linux)"
                )
            }
        }
    }
}

impl<'a> Selection<'a> {
    pub fn parse(cmdline: &'a str) -> Result<Self, SelectionError<'a>> {
        let mut sel = Selection {
            cmdline,
            ..Selection::default()
        };
        for (key, value) in words(cmdline) {
            match key {
                "filter" => sel.filter = Some(value).filter(|v| !v.is_empty()),
                "iterations" => match parse_number(value).and_then(|n| u32::try_from(n).ok()) {
                    Some(0) => return Err(SelectionError::ZeroIterations),
                    Some(n) => sel.iterations = Some(n),
                    None => return Err(SelectionError::BadNumber { key, value }),
                },
                "seed" => {
                    sel.seed =
                        Some(parse_number(value).ok_or(SelectionError::BadNumber { key, value })?)
                }
                "entry" => {
                    sel.strategy = Some(
                        Strategy::from_name(value).ok_or(SelectionError::UnknownStrategy(value))?,
                    )
                }
                _ => {}
            }
        }
        Ok(sel)
    }

    /// Every name given with `skip=`, in command-line order.
    pub fn skips(&self) -> impl Iterator<Item = &'a str> + 'a {
        words(self.cmdline)
            .filter(|(key, _)| *key == "skip")
            .flat_map(|(_, list)| list.split(','))
            .filter(|name| !name.is_empty())
    }

    pub fn is_skipped(&self, name: &str) -> bool {
        self.skips().any(|s| s == name)
    }

    pub fn selects(&self, test: &TestDesc) -> bool {
        let named = self.filter.is_some_and(|f| test.name.contains(f));
        (named || (self.filter.is_none() && !test.opt_in())) && !self.is_skipped(test.name)
    }

    /// The iteration count for `test`: the override if given, else its default,
    /// never above its cap nor below one.
    pub fn iterations_for(&self, test: &TestDesc) -> u32 {
        self.iterations
            .unwrap_or(test.iterations)
            .min(test.max_iterations)
            .max(1)
    }
}

fn words(cmdline: &str) -> impl Iterator<Item = (&str, &str)> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.split_once('='))
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Observed, TestResult};

    fn body(_: &mut crate::Context<'_>) -> TestResult {
        Ok(Observed::Survived)
    }

    fn named(name: &'static str) -> TestDesc {
        TestDesc::new(name, body, module_path!(), file!(), line!())
    }

    #[test]
    fn empty_line_selects_everything_with_defaults() {
        let sel = Selection::parse("").unwrap();
        assert!(sel.selects(&named("boot::nmi_all_to_all")));
        assert_eq!(sel.strategy, None);
        assert_eq!(sel.seed, None);
        assert_eq!(
            sel.iterations_for(&named("x")),
            TestDesc::DEFAULT_ITERATIONS
        );
    }

    #[test]
    fn parses_known_words_and_ignores_the_kernels() {
        let sel = Selection::parse(
            "console=com1 filter=nmi  iterations=500 seed=0x2a entry=shift-only quiet",
        )
        .unwrap();
        assert_eq!(sel.filter, Some("nmi"));
        assert_eq!(sel.iterations, Some(500));
        assert_eq!(sel.seed, Some(42));
        assert_eq!(sel.strategy, Some(Strategy::ShiftOnly));
        assert!(sel.selects(&named("boot::nmi_all_to_all")));
        assert!(!sel.selects(&named("boot::selftest")));
    }

    #[test]
    fn last_word_wins() {
        let sel = Selection::parse("seed=1 seed=2 entry=naive entry=linux").unwrap();
        assert_eq!((sel.seed, sel.strategy), (Some(2), Some(Strategy::Linux)));
    }

    #[test]
    fn skip_is_by_exact_name_and_accumulates() {
        let sel = Selection::parse("skip=a::one,a::two skip=b::three,, skip=").unwrap();
        assert_eq!(
            sel.skips().collect::<std::vec::Vec<_>>(),
            ["a::one", "a::two", "b::three"]
        );
        assert!(!sel.selects(&named("a::one")));
        assert!(!sel.selects(&named("b::three")));
        assert!(sel.selects(&named("a::on"))); // a prefix is not the name
        assert!(sel.selects(&named("a::one_more")));
    }

    #[test]
    fn iterations_are_capped_and_defaulted() {
        let mut t = named("x");
        t.iterations = 100;
        t.max_iterations = 1000;
        assert_eq!(Selection::parse("").unwrap().iterations_for(&t), 100);
        assert_eq!(
            Selection::parse("iterations=50")
                .unwrap()
                .iterations_for(&t),
            50
        );
        assert_eq!(
            Selection::parse("iterations=99999")
                .unwrap()
                .iterations_for(&t),
            1000
        );
    }

    #[test]
    fn bad_values_are_errors_with_the_word() {
        let bad = |line| Selection::parse(line).unwrap_err();
        assert_eq!(
            bad("iterations=lots"),
            SelectionError::BadNumber {
                key: "iterations",
                value: "lots"
            }
        );
        assert_eq!(
            bad("iterations=4294967296"),
            SelectionError::BadNumber {
                key: "iterations",
                value: "4294967296"
            }
        );
        assert_eq!(
            bad("seed=0xzz"),
            SelectionError::BadNumber {
                key: "seed",
                value: "0xzz"
            }
        );
        assert_eq!(bad("iterations=0"), SelectionError::ZeroIterations);
        assert_eq!(
            bad("entry=shift_ist"),
            SelectionError::UnknownStrategy("shift_ist")
        );
        assert!(std::format!("{}", bad("entry=x")).contains("dr7-guard"));
    }

    #[test]
    fn empty_filter_selects_everything() {
        assert!(Selection::parse("filter=").unwrap().selects(&named("x")));
    }
}
