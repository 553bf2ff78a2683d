//! The kernel's doors and what each needs: a boot configuration (door, CPUs, CPU
//! model, kernel arguments), the files it boots from, and the QEMU options that
//! put them together.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;

use crate::media::image;
use crate::media::limine::Limine;
use crate::qemu::accel::Accel;
use crate::qemu::bochs;
use crate::qemu::drive::{self, Medium};
use crate::qemu::emulator::Emulator;
use crate::qemu::machine::{self, Live, Machine, Outcome};
use crate::qemu::ovmf::{self, Firmware};
use crate::qemu::process::{Echo, Watch};
use crate::qemu::screenshot;
use crate::{media::iso, target_dir};

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
    /// Limine from the USB-stick image (`cargo xtask image`) as a SATA disk
    /// under SeaBIOS.
    DiskBios,
    /// The USB-stick image as a SATA disk under OVMF.
    DiskUefi,
    /// The USB-stick image as a removable USB stick (xHCI) under SeaBIOS.
    UsbBios,
    /// The USB-stick image as a removable USB stick (xHCI) under OVMF.
    UsbUefi,
}

impl Door {
    /// The door the kernel's `hello` names: PVH, or Limine for all the others.
    pub fn wire(self) -> testkit::protocol::Door {
        match self {
            Door::Pvh => testkit::protocol::Door::Pvh,
            _ => testkit::protocol::Door::Limine,
        }
    }

    /// The door's name on the command line (`--boot`).
    pub fn label(self) -> &'static str {
        match self {
            Door::Pvh => "pvh",
            Door::LimineBios => "limine-bios",
            Door::LimineUefi => "limine-uefi",
            Door::DiskBios => "disk-bios",
            Door::DiskUefi => "disk-uefi",
            Door::UsbBios => "usb-bios",
            Door::UsbUefi => "usb-uefi",
        }
    }

    /// The door's name in test names (`pvh`, `limine_bios`, `limine_uefi`).
    pub fn ident(self) -> &'static str {
        match self {
            Door::Pvh => "pvh",
            Door::LimineBios => "limine_bios",
            Door::LimineUefi => "limine_uefi",
            Door::DiskBios => "disk_bios",
            Door::DiskUefi => "disk_uefi",
            Door::UsbBios => "usb_bios",
            Door::UsbUefi => "usb_uefi",
        }
    }

    pub fn needs_limine(self) -> bool {
        self != Door::Pvh
    }

    /// Whether the door boots through OVMF (the slow firmware).
    pub fn is_uefi(self) -> bool {
        matches!(self, Door::LimineUefi | Door::DiskUefi | Door::UsbUefi)
    }

    /// How the door attaches the disk image, for the image doors.
    pub fn image_medium(self) -> Option<Medium> {
        match self {
            Door::DiskBios | Door::DiskUefi => Some(Medium::Disk),
            Door::UsbBios | Door::UsbUefi => Some(Medium::Usb),
            _ => None,
        }
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
    /// TCG only: one instruction per translation block (see [`Machine`]).
    pub single_step: bool,
    /// The program that runs it; Bochs boots only the Limine ISO under BIOS.
    pub emulator: Emulator,
}

impl BootConfig {
    /// A QEMU boot of `door` on `smp` CPUs of model `cpu` with these kernel
    /// words, TCG's translation blocks as they come (the boot and image
    /// checks); other runs change that with the `with_` methods.
    pub fn new(door: Door, smp: u32, cpu: impl Into<String>, args: Vec<String>) -> BootConfig {
        BootConfig {
            door,
            smp,
            cpu: cpu.into(),
            args,
            single_step: false,
            emulator: Emulator::Qemu,
        }
    }

    /// TCG with one instruction per translation block, or not.
    pub fn with_single_step(self, single_step: bool) -> BootConfig {
        BootConfig {
            single_step,
            ..self
        }
    }

    pub fn with_emulator(self, emulator: Emulator) -> BootConfig {
        BootConfig { emulator, ..self }
    }
}

/// The files boots are made from: the kernel ELF, the ISOs and disk images
/// built from it (one per distinct list of kernel arguments), and the UEFI
/// firmware when needed.
/// Shared by parallel runs: what is built on demand sits behind a lock.
pub struct Artifacts {
    kernel: PathBuf,
    limine: Option<Limine>,
    isos: Mutex<Vec<(Vec<String>, PathBuf)>>,
    images: Mutex<Vec<(Vec<String>, PathBuf)>>,
    firmware: Mutex<Option<Firmware>>,
}

impl Artifacts {
    pub fn new(kernel: PathBuf) -> Artifacts {
        Artifacts {
            kernel,
            limine: None,
            isos: Mutex::new(Vec::new()),
            images: Mutex::new(Vec::new()),
            firmware: Mutex::new(None),
        }
    }

    /// The Limine binaries that ISOs are built from.
    pub fn with_limine(mut self, limine: Option<Limine>) -> Artifacts {
        self.limine = limine;
        self
    }

    pub fn has_limine(&self) -> bool {
        self.limine.is_some()
    }

    /// Builds what `config` needs that is not there yet. Limine doors need
    /// the Limine binaries; the caller decides what their absence means.
    pub fn prepare(&self, config: &BootConfig) -> Result<()> {
        if config.door.image_medium().is_some() {
            let mut images = self.images.lock().unwrap_or_else(|p| p.into_inner());
            if !images.iter().any(|(a, _)| *a == config.args) {
                let limine = self
                    .limine
                    .as_ref()
                    .context("Limine is needed for this door")?;
                let name = match images.len() {
                    0 => "istorm-qemu.img".to_string(),
                    n => format!("istorm-qemu-{n}.img"),
                };
                let path = target_dir().join(name);
                let conf = image::menu(&config.args, true)?;
                image::build(&self.kernel, limine, &conf, image::DEFAULT_MIB, &path)?;
                images.push((config.args.clone(), path));
            }
        } else if config.door.needs_limine() {
            let mut isos = self.isos.lock().unwrap_or_else(|p| p.into_inner());
            if !isos.iter().any(|(a, _)| *a == config.args) {
                let limine = self
                    .limine
                    .as_ref()
                    .context("Limine is needed for this door")?;
                let name = match isos.len() {
                    0 => "istorm.iso".to_string(),
                    n => format!("istorm-{n}.iso"),
                };
                let path = target_dir().join(name);
                iso::build(&self.kernel, limine, &config.args, &path)?;
                isos.push((config.args.clone(), path));
            }
        }
        if config.door.is_uefi() {
            let mut firmware = self.firmware.lock().unwrap_or_else(|p| p.into_inner());
            if firmware.is_none() {
                *firmware = Some(ovmf::find()?);
            }
        }
        Ok(())
    }

    /// QEMU's arguments for `config` (serial port on stdio), and the scratch
    /// file that must live until QEMU has exited.
    pub fn qemu_args(
        &self,
        config: &BootConfig,
        accel: Accel,
    ) -> Result<(Vec<OsString>, Option<ovmf::Scratch>)> {
        let machine = Machine {
            smp: config.smp,
            cpu: config.cpu.clone(),
            accel,
            single_step: config.single_step,
        };
        let mut args = machine.args();
        args.extend(["-serial".into(), "stdio".into()]);
        let mut scratch = None;
        if config.door.is_uefi() {
            args.extend(self.firmware_args(&mut scratch)?);
        }
        match (config.door, config.door.image_medium()) {
            (Door::Pvh, _) => {
                args.extend(pvh_firmware());
                args.extend([
                    "-kernel".into(),
                    self.kernel.clone().into(),
                    "-append".into(),
                    OsString::from(config.args.join(" ")),
                ]);
            }
            (_, Some(medium)) => {
                let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
                let image = images
                    .iter()
                    .find(|(a, _)| *a == config.args)
                    .map(|(_, path)| path)
                    .context("the disk image was not prepared")?;
                args.extend(drive::drive_args(medium, image));
            }
            (_, None) => {
                let isos = self.isos.lock().unwrap_or_else(|p| p.into_inner());
                let iso = isos
                    .iter()
                    .find(|(a, _)| *a == config.args)
                    .map(|(_, path)| path)
                    .context("the ISO was not prepared")?;
                args.extend(["-cdrom".into(), iso.into()]);
            }
        }
        Ok((args, scratch))
    }

    /// OVMF's options; its scratch file goes to `scratch`.
    fn firmware_args(&self, scratch: &mut Option<ovmf::Scratch>) -> Result<Vec<OsString>> {
        let firmware = self.firmware.lock().unwrap_or_else(|p| p.into_inner());
        let firmware = firmware.as_ref().context("OVMF was not prepared")?;
        let (args, file) = firmware.args()?;
        *scratch = file;
        Ok(args)
    }

    /// Boots `config` once and waits for the end (or the timeout).
    pub fn boot(
        &self,
        config: &BootConfig,
        accel: Accel,
        timeout: Duration,
        echo: Echo,
    ) -> Result<Outcome> {
        if config.emulator == Emulator::Bochs {
            let (machine, iso) = self.bochs(config)?;
            return bochs::run(&machine, &iso, timeout, echo);
        }
        let (args, _scratch) = self.qemu_args(config, accel)?;
        if screenshot::is_held(&config.args) {
            return screenshot::run_held(&args, timeout, echo, &png_path(config));
        }
        machine::run(&args, timeout, echo)
    }

    /// Boots a held QEMU `config` (`hold=1`) once, handing the serial output to
    /// `watch` as it comes; the screenshot lands where [`png_path`] says.
    pub fn boot_held(
        &self,
        config: &BootConfig,
        accel: Accel,
        timeout: Duration,
        watch: &mut dyn Watch,
    ) -> Result<Outcome> {
        let (args, _scratch) = self.qemu_args(config, accel)?;
        let mut show = |bytes: &[u8]| watch.output(bytes);
        screenshot::run_held_shown(&args, timeout, &mut show, &png_path(config))
    }

    /// Boots `config` once, handing the serial output to `watch` as it comes.
    pub fn boot_watched(
        &self,
        config: &BootConfig,
        accel: Accel,
        watch: &mut dyn Watch,
    ) -> Result<Live> {
        if config.emulator == Emulator::Bochs {
            let (machine, iso) = self.bochs(config)?;
            return bochs::run_watched(&machine, &iso, watch);
        }
        let (args, _scratch) = self.qemu_args(config, accel)?;
        machine::run_watched(&args, watch)
    }

    /// Bochs' machine and the prepared ISO for `config`.
    fn bochs(&self, config: &BootConfig) -> Result<(bochs::Machine, PathBuf)> {
        anyhow::ensure!(
            config.door == Door::LimineBios,
            "Bochs boots the Limine ISO under its BIOS only: use --boot limine-bios, not {}",
            config.door.label()
        );
        let machine = bochs::Machine::new(config.smp, Some(&config.cpu))?;
        let isos = self.isos.lock().unwrap_or_else(|p| p.into_inner());
        let iso = isos
            .iter()
            .find(|(a, _)| *a == config.args)
            .map(|(_, path)| path.clone())
            .context("the ISO was not prepared")?;
        Ok((machine, iso))
    }

    /// The kernel ELF the boots start.
    pub fn kernel(&self) -> &Path {
        &self.kernel
    }
}

/// The screenshot of a held boot: one per door.
pub fn png_path(config: &BootConfig) -> PathBuf {
    screenshot::artifacts_dir().join(format!("screen-{}.png", config.door.ident()))
}

/// QEMU's qboot, when installed, as the firmware of PVH boots: it only loads
/// the kernel and the ACPI tables, and halves a PVH boot (measured on TCG,
/// smp 4: 0.15 s with SeaBIOS, 0.07 s with qboot; the floor is 0.04 s).
const QBOOT: &str = "/usr/share/qemu/qboot.rom";

fn pvh_firmware() -> Vec<OsString> {
    if std::path::Path::new(QBOOT).is_file() {
        vec!["-bios".into(), QBOOT.into()]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_names() {
        assert_eq!(Door::default(), Door::LimineBios);
        assert_eq!(Door::LimineUefi.wire(), testkit::protocol::Door::Limine);
        assert_eq!(Door::Pvh.wire(), testkit::protocol::Door::Pvh);
        assert_eq!(Door::LimineBios.ident(), "limine_bios");
        for door in Door::value_variants() {
            assert_eq!(Door::from_str(door.label(), false), Ok(*door));
        }
    }

    #[test]
    fn pvh_needs_no_iso_nor_limine() {
        let artifacts = Artifacts::new(PathBuf::from("/nonexistent/istorm"));
        let pvh = BootConfig::new(Door::Pvh, 1, "max", vec![]);
        artifacts.prepare(&pvh).unwrap();
        let bios = BootConfig {
            door: Door::LimineBios,
            ..pvh
        };
        let err = artifacts.prepare(&bios).unwrap_err();
        assert!(err.to_string().contains("Limine is needed"), "{err}");
    }
}
