//! Options shared by the subcommands, and their validation.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::qemu::accel;

/// QEMU and Limine options common to `run`, `test` and `bench`.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// QEMU accelerator: auto picks KVM only when the CPU has vmx/svm and
    /// /dev/kvm opens read-write.
    #[arg(long, value_enum, default_value_t = accel::Request::Auto)]
    pub accel: accel::Request,
    /// Seconds one QEMU run may take before it counts as a hang [default: 60;
    /// for the kernel suites of `test`, 300 per boot].
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
    /// Directory with the Limine 8.2.0 binaries (else LIMINE_DIR, the cache in
    /// target/, /usr/share/limine, /usr/local/share/limine, a git clone).
    #[arg(long, value_name = "DIR")]
    pub limine_dir: Option<PathBuf>,
    /// Boot this prebuilt kernel ELF instead of building one.
    #[arg(long, value_name = "ELF")]
    pub kernel: Option<PathBuf>,
}

/// The timeout of one QEMU run unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl Common {
    /// `--timeout`, else [`DEFAULT_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        self.timeout_or(DEFAULT_TIMEOUT)
    }

    /// `--timeout`, else `default`.
    pub fn timeout_or(&self, default: Duration) -> Duration {
        self.timeout.map_or(default, Duration::from_secs)
    }
}

/// `--smp`: 1 to 64 CPUs (the kernel's per-CPU tables hold 64).
pub fn smp_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=64)
}

/// `--cpu`: a QEMU CPU model, possibly with `,feature` flags, never empty or
/// containing whitespace.
pub fn parse_cpu(model: &str) -> Result<String, String> {
    if model.is_empty() || model.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{model}` is not a QEMU CPU model"));
    }
    Ok(model.to_string())
}

/// `--entry`: a strategy by its command-line name.
pub fn parse_strategy(name: &str) -> Result<testkit::Strategy, String> {
    testkit::Strategy::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = testkit::Strategy::ALL.iter().map(|s| s.name()).collect();
        format!("unknown strategy `{name}` (one of {})", names.join(", "))
    })
}

/// QEMU's suite CPU models: the x2APIC and the xAPIC one, as Intel parts
/// (SYSENTER exists in 64-bit mode on Intel only). `test` and `matrix` run
/// the suites on them.
pub const SUITE_CPUS: [&str; 2] = ["max,vendor=GenuineIntel", "qemu64,vendor=GenuineIntel"];

/// `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// Kernel arguments are single `key=value` words on one line.
pub fn check_kernel_args(args: &[String]) -> Result<()> {
    for arg in args {
        ensure!(!arg.is_empty(), "empty kernel argument");
        ensure!(
            !arg.chars().any(|c| c.is_whitespace() || c.is_control()),
            "kernel argument `{}` holds whitespace or control characters: pass one word per argument",
            arg.escape_debug()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Probe {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 4, value_parser = smp_parser())]
        smp: u32,
        #[arg(long, default_value = "max", value_parser = parse_cpu)]
        cpu: String,
    }

    fn parse(args: &[&str]) -> Result<Probe, clap::Error> {
        Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let p = parse(&[]).unwrap();
        assert_eq!((p.smp, p.cpu.as_str()), (4, "max"));
        assert_eq!(p.common.timeout(), Duration::from_secs(60));
        assert_eq!(
            p.common.timeout_or(Duration::from_secs(300)),
            Duration::from_secs(300)
        );
        let p = parse(&["--timeout", "7"]).unwrap();
        assert_eq!(
            p.common.timeout_or(Duration::from_secs(300)),
            Duration::from_secs(7)
        );
        assert_eq!(p.common.accel, accel::Request::Auto);
    }

    #[test]
    fn smp_is_bounded() {
        assert_eq!(parse(&["--smp", "1"]).unwrap().smp, 1);
        assert_eq!(parse(&["--smp", "64"]).unwrap().smp, 64);
        for bad in ["0", "65", "-1", "four"] {
            assert!(parse(&["--smp", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_options_are_checked() {
        assert!(parse(&["--timeout", "0"]).is_err());
        assert!(parse(&["--accel", "hvf"]).is_err());
        assert!(parse(&["--cpu", ""]).is_err());
        assert!(parse(&["--cpu", "max x"]).is_err());
        assert_eq!(
            parse(&["--cpu", "qemu64,+x2apic"]).unwrap().cpu,
            "qemu64,+x2apic"
        );
    }

    #[test]
    fn strategies_and_cpu_labels() {
        assert_eq!(
            parse_strategy("shift-only"),
            Ok(testkit::Strategy::ShiftOnly)
        );
        let err = parse_strategy("shift_ist").unwrap_err();
        assert!(
            err.contains("naive, shift-only, linux-4.19, dr7-guard, linux"),
            "{err}"
        );
    }

    #[test]
    fn kernel_args_are_single_words() {
        let ok = ["selftest=ud2".to_string(), "quiet".to_string()];
        assert!(check_kernel_args(&ok).is_ok());
        let err = check_kernel_args(&["a b".to_string()]).unwrap_err();
        assert!(err.to_string().contains("one word per argument"), "{err}");
        assert!(check_kernel_args(&["x\ny".to_string()]).is_err());
        assert!(check_kernel_args(&[String::new()]).is_err());
    }
}
