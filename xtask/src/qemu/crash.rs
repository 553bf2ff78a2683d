//! How a boot died: the kinds of crash the runner tells apart, and the one-line
//! reason it records for the test that was running.
//!
//! The kernel's own last words come first (a `panic` event, with a vector when
//! an exception caused it, or a `hang` event from its watchdog); without them,
//! how QEMU ended decides: killed at the host's timeout is a hang, exit status 0
//! under `-no-reboot` is a triple fault (or reset), anything else a crash.

use std::fmt;
use std::time::Duration;

use testkit::protocol::{Hex, OwnedEvent};

use crate::qemu::exit::{Ending, Exit};

/// The ways a boot can end without `done`. The first four are the names a
/// `planned` event's `expect_crash` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashKind {
    Panic,
    Exception,
    Hang,
    TripleFault,
    /// Any other death: QEMU's own error, a kernel exit without `done`.
    Crash,
    /// The host failed, not the kernel: the emulator was killed by a signal
    /// it did not get from the runner, or could not be run at all.
    Host,
}

impl CrashKind {
    pub fn name(self) -> &'static str {
        match self {
            CrashKind::Panic => "panic",
            CrashKind::Exception => "exception",
            CrashKind::Hang => "hang",
            CrashKind::TripleFault => "triple-fault",
            CrashKind::Crash => "crash",
            CrashKind::Host => "host-failure",
        }
    }
}

impl fmt::Display for CrashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a boot's QEMU process ended, as the host saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootEnd {
    /// QEMU exited by itself.
    Exited(Exit),
    /// The host killed QEMU at a deadline; `why` names it (the boot's
    /// `--timeout`, or a test's `timeout_ms` plus slack).
    Killed { after: Duration, why: String },
    /// QEMU could not be started, or its output could not be read.
    NotRun(String),
    /// The emulator itself reports a triple fault (Bochs, in its log); the
    /// text is its own words.
    TripleFault(String),
}

impl fmt::Display for BootEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootEnd::Exited(exit) => exit.fmt(f),
            BootEnd::Killed { after, why } => {
                write!(f, "host timeout after {} s ({why})", after.as_secs())
            }
            BootEnd::NotRun(why) => f.write_str(why),
            BootEnd::TripleFault(said) => write!(f, "triple fault ({said})"),
        }
    }
}

/// A crash: its kind and a one-line account with the kernel's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crash {
    pub kind: CrashKind,
    pub reason: String,
}

/// The short name of an exception vector (`#UD`), as the SDM writes it.
pub fn vector_name(vector: u8) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25",
        "#26", "#27", "#HV", "#VC", "#SX", "#31",
    ];
    NAMES.get(usize::from(vector)).copied().unwrap_or("IRQ")
}

fn at(rip: Option<Hex>) -> String {
    rip.map(|r| format!(" at rip {r}")).unwrap_or_default()
}

/// Classifies a boot that ended without `done`. `last_words` is the first
/// `panic` or `hang` event of the boot, if the kernel got one out.
pub fn classify(last_words: Option<&OwnedEvent>, end: &BootEnd) -> Crash {
    let (kind, reason) = match last_words {
        Some(OwnedEvent::Panic {
            cpu,
            message,
            rip,
            vector: Some(vector),
            ..
        }) => (
            CrashKind::Exception,
            format!(
                "exception {} (vector {vector}) on cpu {cpu}{}: {message}",
                vector_name(*vector),
                at(*rip)
            ),
        ),
        Some(OwnedEvent::Panic {
            cpu, message, rip, ..
        }) => (
            CrashKind::Panic,
            format!("panic on cpu {cpu}{}: {message}", at(*rip)),
        ),
        Some(OwnedEvent::Hang { cpu, rip, .. }) => (
            CrashKind::Hang,
            format!("hang: the kernel's watchdog found cpu {cpu} stuck at rip {rip}"),
        ),
        _ => match end {
            BootEnd::TripleFault(said) => (
                CrashKind::TripleFault,
                format!("triple fault: the emulator says `{said}`, no panic or hang event"),
            ),
            BootEnd::Killed { .. } => (CrashKind::Hang, format!("hang: {end}, no event")),
            BootEnd::Exited(Exit::NeverExited(Ending::Status(0))) => (
                CrashKind::TripleFault,
                "triple fault: QEMU exited with status 0 under -no-reboot (reset), \
                 no panic or hang event"
                    .to_string(),
            ),
            BootEnd::Exited(Exit::NeverExited(Ending::Signal(s))) => (
                CrashKind::Host,
                format!("host failure: the emulator was killed by signal {s}, no kernel event"),
            ),
            BootEnd::NotRun(why) => (CrashKind::Host, format!("host failure: {why}")),
            BootEnd::Exited(Exit::Success | Exit::Failure) => (
                CrashKind::Crash,
                format!("crash: {end} without a done event"),
            ),
            _ => (CrashKind::Crash, format!("crash: {end}")),
        },
    };
    Crash { kind, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panic(vector: Option<u8>) -> OwnedEvent {
        OwnedEvent::Panic {
            test: Some("t".into()),
            cpu: 1,
            message: "boom".into(),
            rip: Some(Hex(0xffff_ffff_8020_0000)),
            vector,
        }
    }

    #[test]
    fn the_kernels_words_decide_first() {
        let exit = BootEnd::Exited(Exit::Failure);
        let c = classify(Some(&panic(Some(6))), &exit);
        assert_eq!(c.kind, CrashKind::Exception);
        assert_eq!(
            c.reason,
            "exception #UD (vector 6) on cpu 1 at rip 0xffffffff80200000: boom"
        );
        let c = classify(Some(&panic(None)), &exit);
        assert_eq!(c.kind, CrashKind::Panic);
        assert_eq!(c.reason, "panic on cpu 1 at rip 0xffffffff80200000: boom");
        let hang = OwnedEvent::Hang {
            test: None,
            cpu: 0,
            rip: Hex(0x1234),
        };
        let c = classify(Some(&hang), &exit);
        assert_eq!(c.kind, CrashKind::Hang);
        assert!(
            c.reason.contains("cpu 0 stuck at rip 0x1234"),
            "{}",
            c.reason
        );
    }

    #[test]
    fn without_words_the_end_decides() {
        let killed = BootEnd::Killed {
            after: Duration::from_secs(30),
            why: "--timeout".into(),
        };
        let c = classify(None, &killed);
        assert_eq!(c.kind, CrashKind::Hang);
        assert_eq!(
            c.reason,
            "hang: host timeout after 30 s (--timeout), no event"
        );
        let triple = BootEnd::Exited(Exit::NeverExited(Ending::Status(0)));
        assert_eq!(classify(None, &triple).kind, CrashKind::TripleFault);
        for other in [
            BootEnd::Exited(Exit::NeverExited(Ending::Status(1))),
            BootEnd::Exited(Exit::Success),
        ] {
            let c = classify(None, &other);
            assert_eq!(c.kind, CrashKind::Crash, "{other}");
            assert!(c.reason.starts_with("crash: "), "{}", c.reason);
        }
        // The emulator killed from outside, or never run: the host's failure.
        for host in [
            BootEnd::Exited(Exit::NeverExited(Ending::Signal(9))),
            BootEnd::NotRun("cannot start `qemu`".into()),
        ] {
            let c = classify(None, &host);
            assert_eq!(c.kind, CrashKind::Host, "{host}");
            assert!(c.reason.starts_with("host failure: "), "{}", c.reason);
        }
    }

    #[test]
    fn vectors_have_names() {
        assert_eq!(vector_name(1), "#DB");
        assert_eq!(vector_name(8), "#DF");
        assert_eq!(vector_name(14), "#PF");
        assert_eq!(vector_name(200), "IRQ");
    }
}
