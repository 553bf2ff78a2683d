//! The image doors' checks in `cargo xtask test`: the disk image booted as a
//! disk and as a USB stick under SeaBIOS and OVMF, each a quick run, and a
//! held run whose screenshot's QR code must tell what its events tell.

use std::time::Duration;

use testkit::protocol::parse_stream;
use testkit::summary::door_name;

use crate::qemu::exit::Exit;
use crate::qemu::machine::{End, Outcome};
use crate::qemu::{screenshot, serial};
use crate::runner::boot::{BootConfig, Door};
use crate::runner::held_check;
use crate::runner::suite::Check;

/// The kernel words of the image checks: the boot test only.
const QUICK: &str = "filter=boot::";
const CHECK_SMP: u32 = 2;

/// The four boots of the image: disk and USB stick, SeaBIOS and OVMF, each a
/// quick run that must end with the kernel's `done` event and no failure;
/// then a held run whose screenshot's QR code must tell what its events tell.
pub fn checks(timeout: Duration) -> Vec<Check> {
    let mut checks: Vec<Check> = [
        ("image::uefi_disk", Door::DiskUefi),
        ("image::uefi_usb", Door::UsbUefi),
        ("image::bios_disk", Door::DiskBios),
        ("image::bios_usb", Door::UsbBios),
    ]
    .into_iter()
    .map(|(name, door)| Check {
        name: name.into(),
        config: BootConfig::new(door, CHECK_SMP, "max", vec![QUICK.into()]),
        timeout,
        checker: Box::new(check_run),
    })
    .collect();
    checks.push(screenshot_check(timeout));
    checks
}

/// A quick run from the image held at its end (`hold=1`): the screenshot
/// lands in `target/artifacts/`, and its QR code must equal the `qr` events
/// and the run's events (`results::check_held`).
fn screenshot_check(timeout: Duration) -> Check {
    let args = vec![QUICK.into(), screenshot::HOLD.into()];
    let config = BootConfig::new(Door::DiskBios, CHECK_SMP, "max", args);
    let png = crate::runner::boot::png_path(&config);
    Check {
        name: "image::screenshot_qr".into(),
        config,
        timeout,
        checker: Box::new(move |out| held_check::check_held(out, &png)),
    }
}

/// A quick run from the image: kernel success, Limine's door with every CPU,
/// and a complete wire stream whose `done` counts no failure.
fn check_run(out: &Outcome) -> Result<(), String> {
    if out.end != End::Exited(Exit::Success) {
        let last = serial::tail(&out.serial, 1);
        let last = last.first().map_or("no serial output".into(), |l| {
            format!("last serial line `{l}`")
        });
        return Err(format!("{} (wanted kernel success); {last}", out.end));
    }
    let transcript = parse_stream(out.serial.as_bytes());
    if let Some((line, error)) = transcript.errors().next() {
        return Err(format!("serial line {line}: {error}"));
    }
    let setting = transcript.setting().ok_or("no hello event")?;
    if setting.door != Door::DiskBios.wire() || setting.cpus != CHECK_SMP {
        return Err(format!(
            "hello: door={} cpus={} (wanted limine and {CHECK_SMP})",
            door_name(setting.door),
            setting.cpus
        ));
    }
    let done = transcript.done();
    match done {
        None => Err("no `done` event".into()),
        Some((0, _, _)) => Err("`done` counts no passed test".into()),
        Some((_, 0, _)) => Ok(()),
        Some((passed, failed, skipped)) => Err(format!(
            "`done`: {passed} passed, {failed} failed, {skipped} skipped"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::protocol::PROTOCOL_VERSION;

    fn out(end: End, serial: &str) -> Outcome {
        Outcome::canned(end, serial)
    }

    fn good() -> String {
        format!(
            "boot: door=limine cpus=2 lapic=x2apic\r\n\
             @istorm {{\"type\":\"hello\",\"version\":{PROTOCOL_VERSION},\"door\":\"limine\",\
             \"machine\":\"tcg\",\"cpus\":2,\"lapic\":\"x2apic\",\"strategy\":\"linux\",\"seed\":1,\
             \"build\":\"t\"}}\r\n\
             test boot::nmi_all_to_all [linux] ... ok\r\n\
             @istorm {{\"type\":\"done\",\"passed\":1,\"failed\":0,\"skipped\":0}}\r\n"
        )
    }

    #[test]
    fn the_image_checks_are_named_as_promised() {
        let checks = checks(Duration::from_secs(60));
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        for name in [
            "image::bios_disk",
            "image::uefi_disk",
            "image::bios_usb",
            "image::uefi_usb",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert!(names.contains(&"image::screenshot_qr"), "{names:?}");
        for check in &checks {
            assert!(check.config.door.needs_limine(), "{}", check.name);
            let held = screenshot::is_held(&check.config.args);
            assert_eq!(held, check.name == "image::screenshot_qr", "{}", check.name);
            assert_eq!(check.config.args[0], QUICK);
        }
    }

    #[test]
    fn a_quick_run_passes_and_each_fault_is_named() {
        let ok = |end: End, serial: &str| check_run(&out(end, serial));
        let success = || End::Exited(Exit::Success);
        let good = good();
        assert_eq!(ok(success(), &good), Ok(()));
        let err = ok(End::Hang(Duration::from_secs(9)), &good).unwrap_err();
        assert!(err.starts_with("hang after 9 s"), "{err}");
        let err = ok(
            success(),
            &good.replace(r#""door":"limine""#, r#""door":"pvh""#),
        )
        .unwrap_err();
        assert!(err.contains("door=pvh"), "{err}");
        let err = ok(success(), &good.replace("\"failed\":0", "\"failed\":2")).unwrap_err();
        assert!(err.contains("2 failed"), "{err}");
        let err = ok(success(), &good.replace("\"passed\":1", "\"passed\":0")).unwrap_err();
        assert!(err.contains("no passed"), "{err}");
        let cut = good.rsplit_once("@istorm").unwrap().0;
        let err = ok(success(), cut).unwrap_err();
        assert!(err.contains("done"), "{err}");
    }
}
