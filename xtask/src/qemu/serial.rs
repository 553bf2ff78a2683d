//! The lines of the kernel's serial output that the host checks, parsed strictly:
//! a malformed line is reported with its text, never a panic.
//!
//! - `boot: door=<pvh|limine> cpus=<N> lapic=<x2apic|xapic>`
//! - `nmi: sent=S received=R`
//! - `time: tsc_mhz=N` (the TSC rate the kernel calibrated, for cycle counts)
//!
//! Firmware (OVMF) and Limine may write terminal escape sequences and carriage
//! returns to the same port, so lines are cleaned before they are read.

use std::collections::BTreeMap;

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

/// The `key=value` words of one line, with the line kept for error messages.
struct Fields {
    line: String,
    map: BTreeMap<String, String>,
}

impl Fields {
    /// The words after `prefix` on the first line that starts with it.
    fn find(serial: &str, prefix: &str) -> Result<Fields, String> {
        let line = lines(serial)
            .find(|l| l.starts_with(prefix))
            .ok_or_else(|| format!("no `{prefix}` line in the serial output"))?;
        let mut map = BTreeMap::new();
        for word in line[prefix.len()..].split_whitespace() {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("`{word}` is not key=value in line `{line}`"))?;
            if map.insert(key.to_string(), value.to_string()).is_some() {
                return Err(format!("`{key}` appears twice in line `{line}`"));
            }
        }
        Ok(Fields { line, map })
    }

    fn get(&self, key: &str) -> Result<&str, String> {
        self.map
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("no `{key}=` in line `{}`", self.line))
    }

    fn number(&self, key: &str) -> Result<u64, String> {
        let value = self.get(key)?;
        value
            .parse()
            .map_err(|_| format!("`{key}={value}` is not a number in line `{}`", self.line))
    }
}

/// The local APIC mode the kernel reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lapic {
    X2apic,
    Xapic,
}

impl Lapic {
    pub fn name(self) -> &'static str {
        match self {
            Lapic::X2apic => "x2apic",
            Lapic::Xapic => "xapic",
        }
    }
}

/// The `boot:` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootLine {
    pub door: String,
    pub cpus: u64,
    pub lapic: Lapic,
}

/// Finds and parses the `boot:` line.
pub fn boot_line(serial: &str) -> Result<BootLine, String> {
    let fields = Fields::find(serial, "boot:")?;
    let door = fields.get("door")?;
    if door != "pvh" && door != "limine" {
        return Err(format!("unknown door `{door}` in line `{}`", fields.line));
    }
    let lapic = match fields.get("lapic")? {
        "x2apic" => Lapic::X2apic,
        "xapic" => Lapic::Xapic,
        other => {
            return Err(format!(
                "unknown lapic mode `{other}` in line `{}`",
                fields.line
            ));
        }
    };
    Ok(BootLine {
        door: door.to_string(),
        cpus: fields.number("cpus")?,
        lapic,
    })
}

/// The `nmi:` line: how many NMIs the CPUs sent to each other and received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NmiLine {
    pub sent: u64,
    pub received: u64,
}

/// Finds and parses the `nmi:` line.
pub fn nmi_line(serial: &str) -> Result<NmiLine, String> {
    let fields = Fields::find(serial, "nmi:")?;
    Ok(NmiLine {
        sent: fields.number("sent")?,
        received: fields.number("received")?,
    })
}

/// The `time:` line: TSC ticks per microsecond.
pub fn tsc_mhz(serial: &str) -> Result<u64, String> {
    let fields = Fields::find(serial, "time:")?;
    match fields.number("tsc_mhz")? {
        0 => Err(format!("`tsc_mhz=0` in line `{}`", fields.line)),
        mhz => Ok(mhz),
    }
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
    fn good_lines_parse() {
        assert_eq!(
            boot_line(GOOD),
            Ok(BootLine {
                door: "pvh".into(),
                cpus: 4,
                lapic: Lapic::X2apic
            })
        );
        assert_eq!(
            nmi_line(GOOD),
            Ok(NmiLine {
                sent: 12,
                received: 12
            })
        );
    }

    #[test]
    fn escape_sequences_from_firmware_are_ignored() {
        let serial =
            "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01Hboot: door=limine cpus=1 lapic=xapic\r\n";
        let boot = boot_line(serial).unwrap();
        assert_eq!(boot.door, "limine");
        assert_eq!(boot.lapic, Lapic::Xapic);
    }

    #[test]
    fn the_time_line_gives_the_tsc_rate() {
        assert_eq!(tsc_mhz("boot: x\r\ntime: tsc_mhz=2602\r\n"), Ok(2602));
        assert!(
            tsc_mhz("time: tsc_mhz=0\n")
                .unwrap_err()
                .contains("tsc_mhz=0")
        );
        assert!(tsc_mhz("boot:\n").unwrap_err().contains("no `time:`"));
    }

    #[test]
    fn missing_lines_are_reported() {
        assert_eq!(
            boot_line("hello\n").unwrap_err(),
            "no `boot:` line in the serial output"
        );
        assert_eq!(
            nmi_line(GOOD.replace("nmi:", "xmi:").as_str()).unwrap_err(),
            "no `nmi:` line in the serial output"
        );
    }

    #[test]
    fn garbage_is_reported_with_its_line() {
        let cases = [
            (
                "boot: door=pvh cpus=four lapic=xapic",
                "`cpus=four` is not a number",
            ),
            ("boot: door=pvh lapic=xapic", "no `cpus=`"),
            ("boot: door=efi cpus=1 lapic=xapic", "unknown door `efi`"),
            (
                "boot: door=pvh cpus=1 lapic=apic",
                "unknown lapic mode `apic`",
            ),
            (
                "boot: door=pvh cpus=1 cpus=2 lapic=xapic",
                "`cpus` appears twice",
            ),
            (
                "boot: door=pvh cpus=1 lapic=xapic junk",
                "`junk` is not key=value",
            ),
        ];
        for (line, want) in cases {
            let err = boot_line(line).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
            assert!(err.contains(line), "{line}: {err}");
        }
        let err = nmi_line("nmi: sent=-1 received=0").unwrap_err();
        assert!(err.contains("`sent=-1` is not a number"), "{err}");
    }

    #[test]
    fn unknown_keys_are_allowed_for_later_versions() {
        let boot = boot_line("boot: door=pvh cpus=2 lapic=xapic entry=naive").unwrap();
        assert_eq!(boot.cpus, 2);
    }

    #[test]
    fn tail_keeps_the_last_clean_lines() {
        assert_eq!(tail(GOOD, 2), vec!["nmi: sent=12 received=12", "ok"]);
        assert_eq!(tail("", 3), Vec::<String>::new());
    }
}
