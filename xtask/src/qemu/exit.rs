//! The host's reading of how QEMU ended. The exit codes themselves (the byte
//! the kernel writes, the status QEMU exits with) are `testkit::exit`, shared
//! with the kernel. Any status that is not one of the kernel's means the
//! kernel never reached its exit path.

use std::fmt;
use std::process::ExitStatus;

use testkit::exit::ExitCode;

/// What a finished QEMU process says about the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The kernel wrote [`ExitCode::Success`].
    Success,
    /// The kernel wrote [`ExitCode::Failure`].
    Failure,
    /// QEMU ended some other way: triple fault or reset (status 0 with
    /// `-no-reboot`), QEMU's own error (1), another status, or a signal.
    NeverExited(Ending),
}

/// How QEMU ended when the kernel did not end it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Status(i32),
    Signal(i32),
}

impl Exit {
    /// Classifies a QEMU exit from its status code, or from the signal that ended it.
    pub fn classify(code: Option<i32>, signal: Option<i32>) -> Exit {
        match (code, signal) {
            (Some(c), _) => match ExitCode::from_qemu_status(c) {
                Some(ExitCode::Success) => Exit::Success,
                Some(ExitCode::Failure) => Exit::Failure,
                None => Exit::NeverExited(Ending::Status(c)),
            },
            (None, Some(s)) => Exit::NeverExited(Ending::Signal(s)),
            // Unix always gives one of the two; keep a value rather than panic.
            (None, None) => Exit::NeverExited(Ending::Status(-1)),
        }
    }

    pub fn from_status(status: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        Exit::classify(status.code(), status.signal())
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Success => write!(
                f,
                "kernel reported success (QEMU exit status {})",
                ExitCode::Success.qemu_status()
            ),
            Exit::Failure => write!(
                f,
                "kernel reported failure (QEMU exit status {})",
                ExitCode::Failure.qemu_status()
            ),
            Exit::NeverExited(ending) => {
                f.write_str("the kernel never reached its exit path: ")?;
                match ending {
                    Ending::Status(0) => f.write_str("triple fault or reset (QEMU exit status 0)"),
                    Ending::Status(1) => f.write_str("QEMU error (QEMU exit status 1)"),
                    Ending::Status(c) => write!(
                        f,
                        "triple fault, reset or QEMU error (QEMU exit status {c})"
                    ),
                    Ending::Signal(s) => write!(f, "QEMU was killed by signal {s}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_statuses_are_recognised() {
        assert_eq!(Exit::classify(Some(33), None), Exit::Success);
        assert_eq!(Exit::classify(Some(35), None), Exit::Failure);
    }

    #[test]
    fn anything_else_means_the_kernel_never_exited() {
        for code in [0, 1, 2, 3, 34, 255] {
            assert_eq!(
                Exit::classify(Some(code), None),
                Exit::NeverExited(Ending::Status(code))
            );
        }
        assert_eq!(
            Exit::classify(None, Some(9)),
            Exit::NeverExited(Ending::Signal(9))
        );
    }

    #[test]
    fn messages_name_the_cause() {
        assert!(Exit::Success.to_string().contains("success"));
        assert!(Exit::Failure.to_string().contains("35"));
        let triple = Exit::classify(Some(0), None).to_string();
        assert!(triple.contains("never reached its exit path"), "{triple}");
        assert!(triple.contains("triple fault"), "{triple}");
        let qemu = Exit::classify(Some(1), None).to_string();
        assert!(qemu.contains("QEMU error"), "{qemu}");
        let killed = Exit::classify(None, Some(9)).to_string();
        assert!(killed.contains("signal 9"), "{killed}");
    }

    #[test]
    fn real_exit_statuses_are_classified() {
        use std::os::unix::process::ExitStatusExt;
        // A raw wait status: exit code in bits 8..16, signal in the low bits.
        assert_eq!(
            Exit::from_status(ExitStatus::from_raw(33 << 8)),
            Exit::Success
        );
        assert_eq!(
            Exit::from_status(ExitStatus::from_raw(9)),
            Exit::NeverExited(Ending::Signal(9))
        );
    }
}
