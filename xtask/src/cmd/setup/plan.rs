//! What a machine lacks, and the steps that install it: pure, so that every
//! path is tested on a fake machine ([`Probe`]) without touching this one.

use super::sources;

/// The Rust target the kernel is built for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";
/// The oldest QEMU whose TCG has what the suites need (x2APIC, ICEBP, DR7.GD).
pub const QEMU_MIN_MAJOR: u32 = 10;
/// Where OVMF's split 4M build lives (what `ovmf.rs` looks for first).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";

/// What a machine has, asked without changing it.
pub trait Probe {
    /// An executable of this name on PATH.
    fn program(&self, name: &str) -> bool;
    /// `qemu-system-x86_64 --version`, as (major, minor).
    fn qemu_version(&self) -> Option<(u32, u32)>;
    fn file(&self, path: &str) -> bool;
    /// The toolchain in use has the standard library for this target.
    fn rust_target(&self, target: &str) -> bool;
    fn root(&self) -> bool;
    /// `VERSION_CODENAME` of /etc/os-release (`bookworm`).
    fn codename(&self) -> Option<String>;
    /// The text of an apt source file, if it exists.
    fn read(&self, path: &str) -> Option<String>;
    /// Every apt source file's text, for "is this suite enabled".
    fn apt_sources(&self) -> Vec<String>;
}

/// Which command asks: `test` also needs the headless browser that checks
/// the HTML report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Run,
    Test,
}

/// One thing to do, with the reason a person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `rustup target add TARGET`.
    RustTarget(String),
    /// Write `entry` (copied from the machine's own source) to `dest`.
    EnableSuite {
        suite: String,
        dest: String,
        entry: String,
    },
    /// `apt-get update`.
    AptUpdate,
    /// `apt-get install [-t SUITE] [--no-install-recommends] PACKAGES`.
    AptInstall {
        suite: Option<String>,
        packages: Vec<String>,
        /// Without the recommended packages.
        lean: bool,
    },
    /// Cannot be planned: one line saying what to do by hand.
    Manual(String),
}

/// A Debian package the project needs, how to tell it is there, and why.
struct Package {
    name: &'static str,
    present: fn(&dyn Probe) -> bool,
    why: &'static str,
    purposes: &'static [Purpose],
    /// Installed without its recommended packages (a large tree otherwise).
    lean: bool,
}

const BOTH: &[Purpose] = &[Purpose::Run, Purpose::Test];

/// The packages from the distribution's own suite.
const PACKAGES: &[Package] = &[
    Package {
        name: "ovmf",
        present: |p| p.file(OVMF_CODE) || p.file("/usr/share/ovmf/OVMF.fd"),
        why: "UEFI firmware for the limine-uefi, disk-uefi and usb-uefi boots",
        purposes: BOTH,
        lean: false,
    },
    Package {
        name: "xorriso",
        present: |p| p.program("xorriso"),
        why: "builds the Limine ISO the default boot uses",
        purposes: BOTH,
        lean: false,
    },
    Package {
        name: "gcc",
        present: |p| p.program("cc"),
        why: "compiles Limine's host tool (bios-install)",
        purposes: BOTH,
        lean: false,
    },
    Package {
        name: "chromium",
        present: |p| p.program("chromium"),
        why: "the headless browser that checks the HTML report",
        purposes: &[Purpose::Test],
        lean: false,
    },
    Package {
        name: "chromium-driver",
        present: |p| p.program("chromedriver"),
        why: "drives chromium over WebDriver for the report check",
        purposes: &[Purpose::Test],
        lean: false,
    },
    Package {
        name: "bochs",
        present: |p| p.program("bochs"),
        why: "the second emulator of the platform matrix (`--emulator bochs`, the Bochs smoke boot)",
        purposes: &[Purpose::Test],
        lean: false,
    },
    Package {
        name: "bochsbios",
        present: |p| p.file("/usr/share/bochs/BIOS-bochs-latest"),
        why: "Bochs' BIOS",
        purposes: &[Purpose::Test],
        lean: false,
    },
    Package {
        name: "vgabios",
        present: |p| p.file("/usr/share/vgabios/vgabios.bin"),
        why: "Bochs' VGA BIOS",
        purposes: &[Purpose::Test],
        lean: false,
    },
    Package {
        name: "bochs-term",
        present: |p| p.file("/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so"),
        why: "Bochs' terminal display, for headless runs",
        purposes: &[Purpose::Test],
        lean: false,
    },
    Package {
        name: "lava-dispatcher",
        present: |p| p.program("lava-run"),
        why: "lava-run checks the LAVA job definitions",
        purposes: &[Purpose::Test],
        lean: true,
    },
];

/// The steps that give this machine what `purpose` needs; empty when it has
/// everything.
pub fn plan(probe: &dyn Probe, purpose: Purpose) -> Vec<Step> {
    let mut steps = Vec::new();
    if !probe.rust_target(KERNEL_TARGET) {
        steps.push(Step {
            action: if probe.program("rustup") {
                Action::RustTarget(KERNEL_TARGET.into())
            } else {
                Action::Manual(format!(
                    "install the Rust standard library for {KERNEL_TARGET} (no rustup on PATH)"
                ))
            },
            why: format!("Rust target {KERNEL_TARGET}: the kernel is built for it"),
        });
    }
    let mut apt = Vec::new();
    let qemu_ok = probe
        .qemu_version()
        .is_some_and(|(major, _)| major >= QEMU_MIN_MAJOR);
    if !qemu_ok {
        let had = match probe.qemu_version() {
            Some((major, minor)) => format!("QEMU {major}.{minor} is too old"),
            None => "no QEMU".to_string(),
        };
        let why = format!(
            "QEMU >= {QEMU_MIN_MAJOR} ({had}): older TCG lacks x2APIC and gets ICEBP and DR7.GD wrong"
        );
        match probe.codename().as_deref() {
            Some("bookworm") => {
                let suite = "bookworm-backports";
                let enabled = probe
                    .apt_sources()
                    .iter()
                    .any(|s| sources::names_suite(s, suite));
                if !enabled {
                    steps.push(enable_suite(probe, "bookworm", suite));
                }
                apt.push(Step {
                    action: Action::AptInstall {
                        suite: Some(suite.into()),
                        packages: vec!["qemu-system-x86".into()],
                        lean: false,
                    },
                    why,
                });
            }
            // Later Debian releases carry QEMU 10 in their own suite.
            _ => apt.push(Step {
                action: Action::AptInstall {
                    suite: None,
                    packages: vec!["qemu-system-x86".into()],
                    lean: false,
                },
                why,
            }),
        }
    }
    for lean in [false, true] {
        let missing: Vec<&Package> = PACKAGES
            .iter()
            .filter(|p| p.lean == lean)
            .filter(|p| p.purposes.contains(&purpose) && !(p.present)(probe))
            .collect();
        if !missing.is_empty() {
            apt.push(Step {
                action: Action::AptInstall {
                    suite: None,
                    packages: missing.iter().map(|p| p.name.to_string()).collect(),
                    lean,
                },
                why: missing
                    .iter()
                    .map(|p| format!("{}: {}", p.name, p.why))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
    }
    if !apt.is_empty() {
        steps.push(Step {
            action: Action::AptUpdate,
            why: "the package lists, before installing".into(),
        });
        steps.extend(apt);
    }
    steps
}

/// The step that enables `suite`, or a manual one when the machine has no
/// entry to copy.
fn enable_suite(probe: &dyn Probe, codename: &str, suite: &str) -> Step {
    let why = format!("enables {suite}, where Debian {codename} keeps QEMU 10");
    let deb822 = probe
        .read(sources::DEB822_SOURCE)
        .and_then(|t| sources::deb822_entry(&t, codename, suite))
        .map(|e| (sources::DEB822_DEST, e));
    let one_line = || {
        probe
            .read(sources::ONE_LINE_SOURCE)
            .and_then(|t| sources::one_line_entry(&t, codename, suite))
            .map(|e| (sources::ONE_LINE_DEST, e))
    };
    let action = match deb822.or_else(one_line) {
        Some((dest, entry)) => Action::EnableSuite {
            suite: suite.into(),
            dest: dest.into(),
            entry,
        },
        None => Action::Manual(format!(
            "enable {suite} in /etc/apt/sources.list.d (no {codename} entry found to copy)"
        )),
    };
    Step { action, why }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
pub mod tests;
