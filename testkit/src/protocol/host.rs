//! The host's answers, the one thing that travels the other way: the runner
//! writes them to COM1's receive line (QEMU's `-serial stdio` from the
//! runner's pipe), the kernel polls the UART for them while it waits.
//!
//! ```text
//! @host injected 3
//! @host refused 3
//! ```
//!
//! A plain line, not JSON: the kernel parses it with no decoder and no heap,
//! and a person typing at a serial console can answer by hand. Each answer
//! carries the `seq` of the [`super::Event::Inject`] it answers, so a late
//! answer to an earlier request is never taken for the current one.

use core::fmt::Write;

/// The start of every answer line.
pub const HOST_PREFIX: &str = "@host ";
/// The longest answer line, its newline included.
pub const REPLY_MAX: usize = 32;

/// The host's answer to an `inject` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The machine check was injected; it has been delivered by the time the
    /// kernel reads this (QEMU's monitor waits for the vCPU to take it).
    Injected { seq: u32 },
    /// The host cannot inject here (no monitor, not QEMU): the hazard cannot
    /// be produced, which is `not-reproduced`, not a failure.
    Refused { seq: u32 },
}

impl Reply {
    pub const fn seq(self) -> u32 {
        match self {
            Reply::Injected { seq } | Reply::Refused { seq } => seq,
        }
    }

    /// The line the host writes, with its newline.
    pub fn encode(self) -> heapless::String<REPLY_MAX> {
        let mut line = heapless::String::new();
        let word = match self {
            Reply::Injected { .. } => "injected",
            Reply::Refused { .. } => "refused",
        };
        // HOST_PREFIX + the longest word + u32::MAX + newline fits REPLY_MAX.
        let _ = writeln!(line, "{HOST_PREFIX}{word} {}", self.seq());
        line
    }

    /// One received line (with or without its line ending), or `None` when it
    /// is not an answer: noise on the line is ignored, never an error.
    pub fn parse(line: &str) -> Option<Reply> {
        let rest = line
            .trim_end_matches(['\n', '\r'])
            .strip_prefix(HOST_PREFIX)?;
        let (word, seq) = rest.split_once(' ')?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq = seq.parse().ok()?;
        match word {
            "injected" => Some(Reply::Injected { seq }),
            "refused" => Some(Reply::Refused { seq }),
            _ => None,
        }
    }
}

/// Collects received bytes into lines and yields the answers among them.
/// Fixed size: an over-long line is dropped whole.
#[derive(Default)]
pub struct ReplyReader {
    line: heapless::Vec<u8, REPLY_MAX>,
    overflowed: bool,
}

impl ReplyReader {
    pub const fn new() -> Self {
        Self {
            line: heapless::Vec::new(),
            overflowed: false,
        }
    }

    /// Takes one byte; returns an answer when it completed one.
    pub fn push(&mut self, byte: u8) -> Option<Reply> {
        if byte != b'\n' {
            if self.line.push(byte).is_err() {
                self.overflowed = true;
            }
            return None;
        }
        let reply = (!self.overflowed)
            .then(|| core::str::from_utf8(&self.line).ok().and_then(Reply::parse))
            .flatten();
        self.line.clear();
        self.overflowed = false;
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip() {
        for reply in [
            Reply::Injected { seq: 0 },
            Reply::Refused { seq: 7 },
            Reply::Injected { seq: u32::MAX },
        ] {
            let line = reply.encode();
            assert!(line.ends_with('\n'), "{line}");
            assert_eq!(Reply::parse(&line), Some(reply), "{line}");
            let mut reader = ReplyReader::new();
            let got: heapless::Vec<Reply, 2> =
                line.bytes().filter_map(|b| reader.push(b)).collect();
            assert_eq!(got.as_slice(), &[reply]);
        }
        assert_eq!(
            Reply::Injected { seq: 3 }.encode().as_str(),
            "@host injected 3\n"
        );
    }

    #[test]
    fn noise_is_not_an_answer() {
        for line in [
            "",
            "@host",
            "@host injected",
            "@host injected ",
            "@host injected x",
            "@host injected +3",
            "@host injected 99999999999",
            "@host done 3",
            "host injected 3",
            " @host injected 3",
        ] {
            assert_eq!(Reply::parse(line), None, "{line:?}");
        }
        assert_eq!(
            Reply::parse("@host refused 12\r\n"),
            Some(Reply::Refused { seq: 12 })
        );
    }

    #[test]
    fn the_reader_survives_garbage_and_long_lines() {
        let mut reader = ReplyReader::new();
        let mut stream = std::vec::Vec::new();
        stream.extend_from_slice(&[0xff, 0, b'x']);
        stream.extend_from_slice(&[b'a'; 100]);
        stream.extend_from_slice(b"\n@host injected 1\n\n@host refused 2\n");
        let got: std::vec::Vec<Reply> = stream.iter().filter_map(|&b| reader.push(b)).collect();
        assert_eq!(got, [Reply::Injected { seq: 1 }, Reply::Refused { seq: 2 }]);
    }
}
