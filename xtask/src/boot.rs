//! The kernel's doors and what each needs: a boot configuration (door, CPUs, CPU
//! model, kernel arguments), the files it boots from, and the QEMU options that
//! put them together.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;

use crate::accel::Accel;
use crate::limine::Limine;
use crate::ovmf::{self, Firmware};
use crate::process::Echo;
use crate::qemu::{self, Machine, Outcome};
use crate::{iso, target_dir};

/// How QEMU starts the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ValueEnum)]
pub enum Door {
    /// QEMU `-kernel` direct boot through the ELF's PVH note (the fast path).
    Pvh,
    /// Limine from an ISO under SeaBIOS (the real path).
    #[default]
    LimineBios,
    /// Limine from an ISO under OVMF (UEFI).
    LimineUefi,
}

impl Door {
    /// The door's name in the kernel's `boot:` line.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Door::Pvh => "pvh",
            Door::LimineBios | Door::LimineUefi => "limine",
        }
    }

    /// The door's name on the command line (`--boot`).
    pub fn label(self) -> &'static str {
        match self {
            Door::Pvh => "pvh",
            Door::LimineBios => "limine-bios",
            Door::LimineUefi => "limine-uefi",
        }
    }

    /// The door's name in test names (`pvh`, `limine_bios`, `limine_uefi`).
    pub fn ident(self) -> &'static str {
        match self {
            Door::Pvh => "pvh",
            Door::LimineBios => "limine_bios",
            Door::LimineUefi => "limine_uefi",
        }
    }

    pub fn needs_limine(self) -> bool {
        self != Door::Pvh
    }
}

/// One way to boot the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootConfig {
    pub door: Door,
    pub smp: u32,
    pub cpu: String,
    /// Extra kernel command-line words (`key=value`).
    pub args: Vec<String>,
}

/// The files boots are made from: the kernel ELF, the ISOs built from it (one
/// per distinct list of kernel arguments), and the UEFI firmware when needed.
pub struct Artifacts {
    kernel: PathBuf,
    isos: Vec<(Vec<String>, PathBuf)>,
    firmware: Option<Firmware>,
}

impl Artifacts {
    pub fn new(kernel: PathBuf) -> Artifacts {
        Artifacts {
            kernel,
            isos: Vec::new(),
            firmware: None,
        }
    }

    /// Builds what `config` needs that is not there yet. Limine doors need
    /// `limine`; the caller decides what its absence means.
    pub fn prepare(&mut self, config: &BootConfig, limine: Option<&Limine>) -> Result<()> {
        if config.door.needs_limine() && !self.isos.iter().any(|(a, _)| *a == config.args) {
            let limine = limine.context("Limine is needed for this door")?;
            let name = match self.isos.len() {
                0 => "istorm.iso".to_string(),
                n => format!("istorm-{n}.iso"),
            };
            let path = target_dir().join(name);
            iso::build(&self.kernel, limine, &config.args, &path)?;
            self.isos.push((config.args.clone(), path));
        }
        if config.door == Door::LimineUefi && self.firmware.is_none() {
            self.firmware = Some(ovmf::find()?);
        }
        Ok(())
    }

    /// Boots `config` once and waits for the end (or the timeout).
    pub fn boot(
        &self,
        config: &BootConfig,
        accel: Accel,
        timeout: Duration,
        echo: Echo,
    ) -> Result<Outcome> {
        let machine = Machine {
            smp: config.smp,
            cpu: config.cpu.clone(),
            accel,
        };
        let mut args = machine.args();
        args.extend(["-serial".into(), "stdio".into()]);
        // Held until QEMU has exited: the per-run copy of the UEFI variable store.
        let mut _scratch = None;
        match config.door {
            Door::Pvh => {
                args.extend([
                    "-kernel".into(),
                    self.kernel.clone().into(),
                    "-append".into(),
                    OsString::from(config.args.join(" ")),
                ]);
            }
            Door::LimineBios | Door::LimineUefi => {
                if config.door == Door::LimineUefi {
                    let firmware = self.firmware.as_ref().context("OVMF was not prepared")?;
                    let (fw_args, scratch) = firmware.args()?;
                    args.extend(fw_args);
                    _scratch = scratch;
                }
                let iso = self
                    .isos
                    .iter()
                    .find(|(a, _)| *a == config.args)
                    .map(|(_, path)| path)
                    .context("the ISO was not prepared")?;
                args.extend(["-cdrom".into(), iso.into()]);
            }
        }
        qemu::run(&args, timeout, echo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_names() {
        assert_eq!(Door::default(), Door::LimineBios);
        assert_eq!(Door::LimineUefi.kernel_name(), "limine");
        assert_eq!(Door::Pvh.kernel_name(), "pvh");
        assert_eq!(Door::LimineBios.ident(), "limine_bios");
        for door in Door::value_variants() {
            assert_eq!(Door::from_str(door.label(), false), Ok(*door));
        }
    }

    #[test]
    fn pvh_needs_no_iso_nor_limine() {
        let mut artifacts = Artifacts::new(PathBuf::from("/nonexistent/istorm"));
        let pvh = BootConfig {
            door: Door::Pvh,
            smp: 1,
            cpu: "max".into(),
            args: vec![],
        };
        artifacts.prepare(&pvh, None).unwrap();
        let bios = BootConfig {
            door: Door::LimineBios,
            ..pvh
        };
        let err = artifacts.prepare(&bios, None).unwrap_err();
        assert!(err.to_string().contains("Limine is needed"), "{err}");
    }
}
