//! Kernel side: header and results into a caller's buffer, cut to fit.

use core::fmt::{self, Write};

use super::{CPU_MAX, DOORS, Entry, Header, LAPICS, MACHINES, MAGIC, name_of, outcome_letter};
use crate::expect::Strategy;
use crate::protocol::Outcome;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// Not even the header and a `...` field fit.
    TooSmall { capacity: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall { capacity } => {
                write!(f, "a summary header does not fit {capacity} bytes")
            }
        }
    }
}

/// Writes the summary into `out` and returns its length. Results that do not
/// fit are left out, the last ones first (failed results come first, so they
/// are the last to go), and a `...<n>` field says how many.
pub fn encode<H: AsRef<str>, T: AsRef<str>>(
    header: &Header<H>,
    entries: &[Entry<T>],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let capacity = out.len();
    let too_small = EncodeError::TooSmall { capacity };
    let mut w = Out {
        buf: out,
        len: 0,
        limit: capacity,
    };
    write_header(&mut w, header).map_err(|_| too_small)?;
    let results_start = w.len;
    if write_entries(&mut w, header.setting.strategy, entries) == entries.len() {
        return Ok(w.len);
    }
    // Not everything fits: again, keeping room for the `...<n>` field.
    let reserve = "|...".len() + decimal_digits(entries.len());
    w.len = results_start;
    w.limit = capacity.checked_sub(reserve).ok_or(too_small)?;
    if w.limit < results_start {
        return Err(too_small);
    }
    let written = write_entries(&mut w, header.setting.strategy, entries);
    w.limit = capacity;
    write!(w, "|...{}", entries.len() - written).map_err(|_| too_small)?;
    Ok(w.len)
}

fn write_header<S: AsRef<str>>(w: &mut Out<'_>, h: &Header<S>) -> fmt::Result {
    write!(w, "{MAGIC}|cpu=")?;
    write_cpu(w, h.cpu.as_ref())?;
    match h.ucode {
        Some(rev) => write!(w, "|ucode={rev:#x}")?,
        None => w.write_str("|ucode=na")?,
    }
    write!(
        w,
        "|door={}|lapic={}|vm={}|cpus={}|seed={}|strategy={}|pass={}|fail={}|skip={}",
        name_of(&DOORS, h.setting.door),
        name_of(&LAPICS, h.setting.lapic),
        name_of(&MACHINES, h.setting.machine),
        h.setting.cpus,
        h.setting.seed,
        h.setting.strategy.name(),
        h.passed,
        h.failed,
        h.skipped,
    )
}

/// Writes failed results, then the others, each whole or not at all, until
/// one does not fit; returns how many it wrote.
fn write_entries<S: AsRef<str>>(
    w: &mut Out<'_>,
    mut strategy: Strategy,
    entries: &[Entry<S>],
) -> usize {
    let failed = entries.iter().filter(|e| e.outcome == Outcome::Fail);
    let others = entries.iter().filter(|e| e.outcome != Outcome::Fail);
    let mut written = 0;
    for entry in failed.chain(others) {
        let mark = w.len;
        if write_entry(w, strategy, entry).is_err() {
            w.len = mark;
            break;
        }
        strategy = entry.strategy;
        written += 1;
    }
    written
}

fn write_entry<S: AsRef<str>>(w: &mut Out<'_>, current: Strategy, e: &Entry<S>) -> fmt::Result {
    if e.strategy != current {
        write!(w, "|strategy={}", e.strategy.name())?;
    }
    w.write_char('|')?;
    write_name(w, e.test.as_ref())?;
    write!(w, "={}", outcome_letter(e.outcome))?;
    let c = &e.counters;
    for (letter, value) in [('c', c.corruptions), ('n', c.nmis), ('d', c.dbs)] {
        if let Some(value) = value {
            write!(w, ",{letter}{value}")?;
        }
    }
    Ok(())
}

/// The model with `|` made `/`, odd characters `?`, runs of spaces one space.
fn write_cpu(w: &mut Out<'_>, cpu: &str) -> fmt::Result {
    let mut last_space = false;
    for c in cpu.trim().chars().take(CPU_MAX) {
        let c = match c {
            '|' => '/',
            ' '..='~' => c,
            _ => '?',
        };
        if !(c == ' ' && last_space) {
            w.write_char(c)?;
        }
        last_space = c == ' ';
    }
    Ok(())
}

/// A test name with the separators and odd characters made `_`; a name that
/// would read as a field of its own (`strategy`, or empty) gets a `_` before it.
fn write_name(w: &mut Out<'_>, name: &str) -> fmt::Result {
    if name.is_empty() || name == "strategy" {
        w.write_char('_')?;
    }
    for c in name.chars() {
        w.write_char(match c {
            '|' | '=' | ',' | ' ' => '_',
            '!'..='~' => c,
            _ => '_',
        })?;
    }
    Ok(())
}

fn decimal_digits(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// A `Write` into a byte buffer that refuses to go past `limit`.
struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
    limit: usize,
}

impl Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.limit {
            return Err(fmt::Error);
        }
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
