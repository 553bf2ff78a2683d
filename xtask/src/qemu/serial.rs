//! The kernel's serial output as text: clean lines and the tail a failure
//! report shows. What the host checks comes from the wire's events
//! (`testkit::protocol`), never from these lines.
//!
//! Firmware (OVMF) and Limine may write terminal escape sequences and carriage
//! returns to the same port, so lines are cleaned before they are read.

/// The serial output split into clean lines: CSI escape sequences, other control
/// characters and trailing `\r` removed.
pub fn lines(serial: &str) -> impl Iterator<Item = String> + '_ {
    serial.split('\n').map(strip_controls)
}

fn strip_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ parameters... final byte in '@'..='~'; or ESC + one character.
            if chars.next_if_eq(&'[').is_some() {
                for p in chars.by_ref() {
                    if ('@'..='~').contains(&p) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

/// The last non-empty clean lines, for failure reports.
pub fn tail(serial: &str, count: usize) -> Vec<String> {
    let all: Vec<String> = lines(serial).filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(count)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "istorm 0.1.0\r\nboot: door=pvh cpus=4 lapic=x2apic\r\n\
                        nmi: sent=12 received=12\r\nok\r\n";

    #[test]
    fn escape_sequences_from_firmware_are_removed() {
        let serial =
            "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01Hboot: door=limine cpus=1 lapic=xapic\r\n";
        let first = lines(serial).next().unwrap();
        assert_eq!(first, "boot: door=limine cpus=1 lapic=xapic");
        assert_eq!(strip_controls("a\x1bXb\tc\x07"), "ab\tc");
    }

    #[test]
    fn tail_keeps_the_last_clean_lines() {
        assert_eq!(tail(GOOD, 2), vec!["nmi: sent=12 received=12", "ok"]);
        assert_eq!(tail("", 3), Vec::<String>::new());
    }
}
