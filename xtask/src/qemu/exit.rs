//! The exit protocol between the kernel and the host, in one place.
//!
//! The kernel ends a run by writing one byte to QEMU's isa-debug-exit device, and
//! QEMU exits with status `2 * byte + 1`. So success is never 0, and 1 stays QEMU's
//! own error. Any status that is not one of the two kernel values means the kernel
//! never reached its exit path.

use std::fmt;
use std::process::ExitStatus;

/// The byte the kernel writes for success.
pub const SUCCESS_BYTE: u8 = 0x10;
/// The byte the kernel writes for failure.
pub const FAILURE_BYTE: u8 = 0x11;

/// The QEMU exit status for a byte written to isa-debug-exit.
pub const fn qemu_status(byte: u8) -> i32 {
    2 * byte as i32 + 1
}

/// What a finished QEMU process says about the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The kernel wrote [`SUCCESS_BYTE`].
    Success,
    /// The kernel wrote [`FAILURE_BYTE`].
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
            (Some(c), _) if c == qemu_status(SUCCESS_BYTE) => Exit::Success,
            (Some(c), _) if c == qemu_status(FAILURE_BYTE) => Exit::Failure,
            (Some(c), _) => Exit::NeverExited(Ending::Status(c)),
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
                qemu_status(SUCCESS_BYTE)
            ),
            Exit::Failure => write!(
                f,
                "kernel reported failure (QEMU exit status {})",
                qemu_status(FAILURE_BYTE)
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
    fn kernel_bytes_map_to_odd_statuses() {
        assert_eq!(qemu_status(SUCCESS_BYTE), 33);
        assert_eq!(qemu_status(FAILURE_BYTE), 35);
    }

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
