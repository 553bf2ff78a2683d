//! Where a result comes from: QEMU TCG, QEMU KVM, Bochs or bare metal. The
//! runner knows it for its own runs (`qemu::emulator`) and records it with
//! every result (JSON `platform`, a JUnit property); for a run without a
//! runner (a QR text, a serial log) the kernel's own view decides.

use std::fmt;

/// The brand string of Bochs' `corei7_skylake_x` CPU model.
pub const BOCHS_CPU_BRAND: &str = "Intel(R) Core(TM) i7-7800X CPU @ 3.50GHz";

/// The identity of a platform a result comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    QemuTcg,
    QemuKvm,
    Bochs,
    BareMetal,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::QemuTcg,
        Platform::QemuKvm,
        Platform::Bochs,
        Platform::BareMetal,
    ];

    /// The machine-readable name (JSON `platform`, JUnit property).
    pub fn name(self) -> &'static str {
        match self {
            Platform::QemuTcg => "qemu-tcg",
            Platform::QemuKvm => "qemu-kvm",
            Platform::Bochs => "bochs",
            Platform::BareMetal => "bare-metal",
        }
    }

    pub fn from_name(name: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The kernel's own view (`hello.machine`: `tcg`, `kvm`, `no-hypervisor`,
    /// ...) says what a run without a host runner was: a QR text or a serial
    /// log from a USB stick. `no-hypervisor` is bare metal or Bochs (which
    /// sets no hypervisor bit). Bochs' `corei7_skylake_x` names itself as a
    /// real i7-7800X, but reports no microcode revision, which silicon does.
    pub fn from_kernel(machine: &str, cpu: &str, ucode: Option<u64>) -> Platform {
        match machine {
            "tcg" => Platform::QemuTcg,
            "kvm" => Platform::QemuKvm,
            _ if cpu == BOCHS_CPU_BRAND && ucode.is_none() => Platform::Bochs,
            _ => Platform::BareMetal,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Platform::QemuTcg => "QEMU TCG",
            Platform::QemuKvm => "QEMU KVM",
            Platform::Bochs => "Bochs",
            Platform::BareMetal => "bare metal",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_runs_find_their_platform() {
        for p in Platform::ALL {
            assert_eq!(Platform::from_name(p.name()), Some(p));
        }
        assert_eq!(Platform::from_name("qemu"), None);
        assert_eq!(
            Platform::from_kernel("tcg", "QEMU TCG CPU", None),
            Platform::QemuTcg
        );
        let bochs = Platform::from_kernel("no-hypervisor", BOCHS_CPU_BRAND, None);
        assert_eq!(bochs, Platform::Bochs);
        // The same brand string with a microcode revision is the real part.
        let real = Platform::from_kernel("no-hypervisor", BOCHS_CPU_BRAND, Some(0x2006e05));
        assert_eq!(real, Platform::BareMetal);
        assert_eq!(
            Platform::from_kernel("no-hypervisor", "AMD Ryzen 7 5800X", Some(0xa201016)),
            Platform::BareMetal
        );
        assert_eq!(Platform::QemuTcg.to_string(), "QEMU TCG");
    }
}
