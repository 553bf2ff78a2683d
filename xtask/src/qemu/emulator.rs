//! The program that runs the kernel: QEMU (`machine`) or Bochs (`bochs`),
//! chosen with `--emulator`.

use crate::qemu::accel::Accel;
use crate::qemu::bochs;
use crate::report::platform::Platform;

/// `--emulator`: the program that runs the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Emulator {
    /// QEMU 10 (TCG, or KVM where the CPU has VMX/SVM).
    #[default]
    Qemu,
    /// Bochs 2.7: boots the Limine ISO under its BIOS, CPU model
    /// `corei7_skylake_x` (x2APIC), 1 to 8 CPUs.
    Bochs,
}

impl Emulator {
    /// The CPU model to run: `max`, QEMU's default, means Bochs' default
    /// model under Bochs.
    pub fn cpu_model(self, cpu: &str) -> String {
        match (self, cpu) {
            (Emulator::Bochs, "max") => bochs::CPU_MODEL.to_string(),
            _ => cpu.to_string(),
        }
    }

    /// The line that says what runs the kernel, or nothing for QEMU (its
    /// accelerator line says it).
    pub fn describe(self, smp: u32, cpu: &str) -> Option<String> {
        (self == Emulator::Bochs).then(|| {
            format!(
                "emulator: Bochs, cpu {cpu} x {smp}, ips={} (the kernel's TSC runs at {} MHz), \
                 BIOS boot of the Limine ISO",
                bochs::IPS,
                bochs::IPS / 1_000_000
            )
        })
    }

    /// Where a run of this emulator on `accel` lands.
    pub fn platform(self, accel: Accel) -> Platform {
        match (self, accel) {
            (Emulator::Bochs, _) => Platform::Bochs,
            (Emulator::Qemu, Accel::Tcg) => Platform::QemuTcg,
            (Emulator::Qemu, Accel::Kvm) => Platform::QemuKvm,
        }
    }

    /// The LAPIC mode label of a CPU model (`max`: x2APIC under TCG,
    /// `qemu64`: xAPIC, Bochs' default: x2APIC); another model is named by
    /// itself. A `vendor=` option does not change the label.
    pub fn lapic_label(self, cpu: &str) -> String {
        let model = cpu.split(',').next().unwrap_or(cpu);
        let vendor_only = cpu[model.len()..]
            .split(',')
            .all(|o| o.is_empty() || o.starts_with("vendor="));
        match (self, if vendor_only { model } else { cpu }) {
            (Emulator::Bochs, bochs::CPU_MODEL) => "x2apic".into(),
            (_, "max") => "x2apic".into(),
            (_, "qemu64") => "xapic".into(),
            _ => cpu.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_find_their_platform_and_models() {
        assert_eq!(Emulator::Qemu.platform(Accel::Kvm), Platform::QemuKvm);
        assert_eq!(Emulator::Qemu.platform(Accel::Tcg), Platform::QemuTcg);
        assert_eq!(Emulator::Bochs.platform(Accel::Kvm), Platform::Bochs);
        assert_eq!(Emulator::Bochs.cpu_model("max"), bochs::CPU_MODEL);
        assert_eq!(Emulator::Qemu.cpu_model("max"), "max");
        assert_eq!(Emulator::Bochs.lapic_label(bochs::CPU_MODEL), "x2apic");
        for (cpu, label) in [
            ("qemu64", "xapic"),
            ("max,vendor=GenuineIntel", "x2apic"),
            ("qemu64,vendor=GenuineIntel", "xapic"),
            ("qemu64,+x2apic", "qemu64,+x2apic"),
            ("Skylake-Server", "Skylake-Server"),
        ] {
            assert_eq!(Emulator::Qemu.lapic_label(cpu), label, "{cpu}");
        }
        assert!(Emulator::Qemu.describe(4, "max").is_none());
        let line = Emulator::Bochs.describe(2, bochs::CPU_MODEL).unwrap();
        assert!(line.contains("ips=10000000"), "{line}");
    }
}
