//! Host side: a summary's text back into a header and results. Strict (an
//! unknown field is an error, not a guess) and never panics, whatever the text.

use std::fmt;
use std::str::FromStr;
use std::string::{String, ToString};
use std::vec::Vec;

use super::{DOORS, Entry, Header, LAPICS, MACHINES, MAGIC};
use crate::expect::Strategy;
use crate::protocol::{Counters, Outcome, Setting};

/// A decoded summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub header: Header<String>,
    /// In the order written: failed results first.
    pub entries: Vec<Entry<String>>,
    /// Results that did not fit (the `...<n>` field); the header counts them.
    pub omitted: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The text does not start with `IST`: not a summary at all.
    NotASummary,
    /// A summary in a format this host does not read.
    Version(String),
    /// The text ends before this header field.
    Missing(&'static str),
    /// Field number `index` (the magic is 0) is not what it should be.
    Field {
        index: usize,
        text: String,
        reason: String,
    },
    /// The header's counts do not add up to the results listed.
    Counts { listed: [u32; 3], header: [u32; 3] },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotASummary => f.write_str("not an istorm summary (no IST1 at the start)"),
            Self::Version(v) => write!(f, "summary format {v}, this host reads {MAGIC}"),
            Self::Missing(key) => write!(f, "summary ends before its `{key}` field"),
            Self::Field {
                index,
                text,
                reason,
            } => write!(f, "summary field {index} `{text}`: {reason}"),
            Self::Counts { listed, header } => write!(
                f,
                "summary lists {}/{}/{} passed/failed/skipped but its header says {}/{}/{}",
                listed[0], listed[1], listed[2], header[0], header[1], header[2]
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one summary (a trailing line ending is allowed).
pub fn decode(text: &str) -> Result<Decoded, DecodeError> {
    let text = text.trim_end_matches(['\n', '\r']);
    let mut fields = text.split('|').enumerate().peekable();
    match fields.next() {
        Some((_, MAGIC)) => {}
        Some((_, other)) if other.starts_with("IST") => {
            return Err(DecodeError::Version(other.to_string()));
        }
        _ => return Err(DecodeError::NotASummary),
    }
    let mut value_of = |key: &'static str| -> Result<(usize, &str), DecodeError> {
        let (index, field) = fields.next().ok_or(DecodeError::Missing(key))?;
        match field.split_once('=') {
            Some((k, value)) if k == key => Ok((index, value)),
            _ => Err(bad(index, field, format_args!("expected `{key}=`"))),
        }
    };
    let cpu = value_of("cpu")?.1.to_string();
    let ucode = match value_of("ucode")? {
        (_, "na") => None,
        (i, v) => Some(
            v.strip_prefix("0x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .ok_or_else(|| bad(i, v, format_args!("expected 0xHEX or na")))?,
        ),
    };
    // Fields in the order the header writes them (a literal evaluates in
    // the order written).
    let setting = Setting {
        door: named(&DOORS, value_of("door")?)?,
        lapic: named(&LAPICS, value_of("lapic")?)?,
        machine: named(&MACHINES, value_of("vm")?)?,
        cpus: number(value_of("cpus")?)?,
        seed: number(value_of("seed")?)?,
        strategy: strategy_named(value_of("strategy")?)?,
    };
    let strategy = setting.strategy;
    let header = Header {
        cpu,
        ucode,
        setting,
        passed: number(value_of("pass")?)?,
        failed: number(value_of("fail")?)?,
        skipped: number(value_of("skip")?)?,
    };

    let mut entries = Vec::new();
    let mut omitted = 0;
    let mut current = strategy;
    while let Some((index, field)) = fields.next() {
        if let Some(n) = field.strip_prefix("...") {
            omitted = number((index, n))?;
            if fields.peek().is_some() {
                return Err(bad(
                    index,
                    field,
                    format_args!("`...` must be the last field"),
                ));
            }
        } else if let Some(name) = field.strip_prefix("strategy=") {
            current = strategy_named((index, name))?;
        } else {
            entries.push(entry(index, field, current)?);
        }
    }
    check_counts(&header, &entries, omitted)?;
    Ok(Decoded {
        header,
        entries,
        omitted,
    })
}

fn entry(index: usize, field: &str, strategy: Strategy) -> Result<Entry<String>, DecodeError> {
    let err = |why: fmt::Arguments<'_>| bad(index, field, why);
    let (test, value) = field
        .split_once('=')
        .filter(|(test, _)| !test.is_empty())
        .ok_or_else(|| err(format_args!("expected `test=P|F|S|N`")))?;
    let mut parts = value.split(',');
    let outcome = match parts.next() {
        Some("P") => Outcome::Pass,
        Some("F") => Outcome::Fail,
        Some("S") => Outcome::Skip,
        Some("N") => Outcome::NotReproduced,
        _ => return Err(err(format_args!("outcome is not P, F, S or N"))),
    };
    let mut counters = Counters::default();
    for part in parts {
        let mut chars = part.chars();
        let slot = match chars.next() {
            Some('c') => &mut counters.corruptions,
            Some('n') => &mut counters.nmis,
            Some('d') => &mut counters.dbs,
            _ => return Err(err(format_args!("unknown counter `{part}`"))),
        };
        let value = u64::from_str(chars.as_str())
            .map_err(|_| err(format_args!("counter `{part}` is not a number")))?;
        if slot.replace(value).is_some() {
            return Err(err(format_args!("counter `{part}` given twice")));
        }
    }
    Ok(Entry {
        test: test.to_string(),
        strategy,
        outcome,
        counters,
    })
}

fn check_counts(
    header: &Header<String>,
    entries: &[Entry<String>],
    omitted: u32,
) -> Result<(), DecodeError> {
    let mut listed = [0u32; 3];
    for e in entries {
        let slot = match e.outcome {
            Outcome::Pass => 0,
            Outcome::Fail => 1,
            // The QR header keeps three counts: not-reproduced goes with skipped.
            Outcome::Skip | Outcome::NotReproduced => 2,
        };
        listed[slot] = listed[slot].saturating_add(1);
    }
    let header_counts = [header.passed, header.failed, header.skipped];
    let total = |c: [u32; 3]| c.iter().map(|&n| u64::from(n)).sum::<u64>();
    let consistent = if omitted == 0 {
        listed == header_counts
    } else {
        total(listed) + u64::from(omitted) == total(header_counts)
            && listed.iter().zip(header_counts).all(|(&l, h)| l <= h)
    };
    if consistent {
        Ok(())
    } else {
        Err(DecodeError::Counts {
            listed,
            header: header_counts,
        })
    }
}

fn bad(index: usize, text: &str, reason: fmt::Arguments<'_>) -> DecodeError {
    DecodeError::Field {
        index,
        text: text.to_string(),
        reason: reason.to_string(),
    }
}

fn number<T: FromStr>((index, value): (usize, &str)) -> Result<T, DecodeError> {
    // `from_str` takes a leading `+`; the format never writes one.
    if value.starts_with('+') {
        return Err(bad(index, value, format_args!("not a number")));
    }
    value
        .parse()
        .map_err(|_| bad(index, value, format_args!("not a number")))
}

fn named<T: Copy>(table: &[(T, &str)], (index, value): (usize, &str)) -> Result<T, DecodeError> {
    table
        .iter()
        .find(|(_, name)| *name == value)
        .map(|(v, _)| *v)
        .ok_or_else(|| bad(index, value, format_args!("unknown name")))
}

fn strategy_named((index, value): (usize, &str)) -> Result<Strategy, DecodeError> {
    Strategy::from_name(value).ok_or_else(|| bad(index, value, format_args!("unknown strategy")))
}
