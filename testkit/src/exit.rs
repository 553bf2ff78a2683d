//! How a run ends, in one place for both sides: the kernel writes one byte to
//! QEMU's isa-debug-exit device, and the host reads it back from QEMU's exit
//! status.
//!
//! QEMU exits with status `2 * byte + 1`, so success is never 0 (a triple
//! fault or reset under `-no-reboot`) and never 1 (QEMU's own error). On a PC
//! without the device the write goes nowhere.

/// The I/O port of the isa-debug-exit device (`-device
/// isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const ISA_DEBUG_EXIT_PORT: u16 = 0xf4;

/// The byte the kernel writes to end a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0x10,
    Failure = 0x11,
}

impl ExitCode {
    pub const ALL: [ExitCode; 2] = [ExitCode::Success, ExitCode::Failure];

    /// The byte written to [`ISA_DEBUG_EXIT_PORT`].
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// QEMU's exit status after the kernel wrote this code.
    pub const fn qemu_status(self) -> i32 {
        2 * self.byte() as i32 + 1
    }

    /// The code behind a QEMU exit status, if the kernel wrote one.
    pub fn from_qemu_status(status: i32) -> Option<ExitCode> {
        ExitCode::ALL
            .into_iter()
            .find(|c| c.qemu_status() == status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_bytes_map_to_odd_statuses() {
        assert_eq!(ExitCode::Success.byte(), 0x10);
        assert_eq!(ExitCode::Failure.byte(), 0x11);
        assert_eq!(ExitCode::Success.qemu_status(), 33);
        assert_eq!(ExitCode::Failure.qemu_status(), 35);
    }

    #[test]
    fn every_code_round_trips_and_nothing_else_is_one() {
        for code in ExitCode::ALL {
            assert_eq!(ExitCode::from_qemu_status(code.qemu_status()), Some(code));
        }
        for status in [-1, 0, 1, 2, 32, 34, 36, 255] {
            assert_eq!(ExitCode::from_qemu_status(status), None, "{status}");
        }
    }
}
