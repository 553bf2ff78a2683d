//! The choice between QEMU's KVM and TCG accelerators.
//!
//! `/dev/kvm` may exist on a machine that cannot run a real-mode guest (a
//! paravirtual KVM without VMX or SVM), so `auto` picks KVM only when
//! `/proc/cpuinfo` shows `vmx` or `svm` AND `/dev/kvm` opens read-write.

use std::fs::OpenOptions;

use anyhow::{Result, bail};
use clap::ValueEnum;

/// What the user asked for with `--accel`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Request {
    #[default]
    Auto,
    Tcg,
    Kvm,
}

/// The accelerator QEMU is started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    /// The value of QEMU's `-accel` option.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// The accelerator and the one-line reason it was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub accel: Accel,
    pub reason: String,
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "accel: {} ({})", self.accel.qemu_name(), self.reason)
    }
}

/// Whether a `/proc/cpuinfo` text lists hardware virtualisation (`vmx` or `svm`).
pub fn has_hw_virt(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.trim() == "flags")
        .any(|(_, flags)| flags.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// Decides from what the machine offers. `kvm_open` is the result of opening
/// `/dev/kvm` read-write (the error text when it fails).
pub fn decide(request: Request, cpuinfo: &str, kvm_open: Result<(), String>) -> Result<Choice> {
    let hw = has_hw_virt(cpuinfo);
    let choice = match (request, hw, kvm_open) {
        (Request::Tcg, _, _) => Choice {
            accel: Accel::Tcg,
            reason: "asked for with --accel tcg".into(),
        },
        (Request::Kvm, _, Err(e)) => {
            bail!("--accel kvm: /dev/kvm cannot be opened read-write: {e}")
        }
        (Request::Kvm, hw, Ok(())) => Choice {
            accel: Accel::Kvm,
            reason: if hw {
                "asked for with --accel kvm".into()
            } else {
                "asked for with --accel kvm, although /proc/cpuinfo shows neither vmx nor svm"
                    .into()
            },
        },
        (Request::Auto, false, _) => Choice {
            accel: Accel::Tcg,
            reason: "auto: /proc/cpuinfo shows neither vmx nor svm".into(),
        },
        (Request::Auto, true, Err(e)) => Choice {
            accel: Accel::Tcg,
            reason: format!("auto: the CPU has vmx/svm but /dev/kvm cannot be opened: {e}"),
        },
        (Request::Auto, true, Ok(())) => Choice {
            accel: Accel::Kvm,
            reason: "auto: vmx/svm in /proc/cpuinfo and /dev/kvm opens read-write".into(),
        },
    };
    Ok(choice)
}

/// Decides for this machine.
pub fn choose(request: Request) -> Result<Choice> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let kvm = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| e.to_string());
    decide(request, &cpuinfo, kvm)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMX: &str = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\n\n";
    const SVM: &str = "processor\t: 0\nflags\t\t: fpu svm lm\n";
    const PLAIN: &str = "processor\t: 0\nflags\t\t: fpu vme hypervisor lm\nbugs\t\t: vmx_fake\n";

    fn no_kvm() -> Result<(), String> {
        Err("Permission denied".into())
    }

    #[test]
    fn flags_are_read_word_by_word() {
        assert!(has_hw_virt(VMX));
        assert!(has_hw_virt(SVM));
        assert!(!has_hw_virt(PLAIN));
        assert!(!has_hw_virt("flags : vmxnet svm2\n"));
        assert!(!has_hw_virt(""));
    }

    #[test]
    fn auto_needs_both_the_flag_and_the_device() {
        let kvm = decide(Request::Auto, VMX, Ok(())).unwrap();
        assert_eq!(kvm.accel, Accel::Kvm);
        let no_device = decide(Request::Auto, SVM, no_kvm()).unwrap();
        assert_eq!(no_device.accel, Accel::Tcg);
        assert!(no_device.reason.contains("Permission denied"));
    }

    #[test]
    fn paravirtual_kvm_without_vmx_or_svm_means_tcg() {
        let choice = decide(Request::Auto, PLAIN, Ok(())).unwrap();
        assert_eq!(choice.accel, Accel::Tcg);
        assert_eq!(
            choice.to_string(),
            "accel: tcg (auto: /proc/cpuinfo shows neither vmx nor svm)"
        );
    }

    #[test]
    fn explicit_requests_are_obeyed() {
        assert_eq!(decide(Request::Tcg, VMX, Ok(())).unwrap().accel, Accel::Tcg);
        let forced = decide(Request::Kvm, PLAIN, Ok(())).unwrap();
        assert_eq!(forced.accel, Accel::Kvm);
        assert!(forced.reason.contains("neither vmx nor svm"));
        let err = decide(Request::Kvm, VMX, no_kvm()).unwrap_err();
        assert!(err.to_string().contains("/dev/kvm"));
    }
}
