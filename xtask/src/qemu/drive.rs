//! How QEMU attaches the disk image of the image doors: a SATA disk or a
//! removable USB stick, always as a read-only snapshot.

use std::ffi::OsString;
use std::path::Path;

/// How QEMU attaches the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    /// A SATA disk on the q35 AHCI controller.
    Disk,
    /// A removable USB mass-storage device on an xHCI controller.
    Usb,
}

/// A file name as a QEMU option value (commas doubled).
fn option_value(path: &Path) -> OsString {
    let text = path.to_string_lossy();
    OsString::from(text.replace(',', ",,"))
}

/// QEMU options that attach `image` as `medium`. `snapshot=on` opens the file
/// read-only with writes going to a temporary overlay: parallel runs share
/// one image, and the kernel can never change it.
pub fn drive_args(medium: Medium, image: &Path) -> Vec<OsString> {
    let mut file = OsString::from("format=raw,snapshot=on,file=");
    file.push(option_value(image));
    let mut args: Vec<OsString> = Vec::new();
    match medium {
        Medium::Disk => {
            let mut drive = OsString::from("if=ide,");
            drive.push(&file);
            args.extend(["-drive".into(), drive]);
        }
        Medium::Usb => {
            let mut drive = OsString::from("if=none,id=stick,");
            drive.push(&file);
            args.extend([
                "-device".into(),
                "qemu-xhci,id=xhci".into(),
                "-drive".into(),
                drive,
                "-device".into(),
                "usb-storage,bus=xhci.0,drive=stick,removable=on".into(),
            ]);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_are_read_only_snapshots_and_commas_are_escaped() {
        let words = |m| {
            drive_args(m, Path::new("/t/a,b.img"))
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            words(Medium::Disk),
            "-drive if=ide,format=raw,snapshot=on,file=/t/a,,b.img"
        );
        let usb = words(Medium::Usb);
        assert!(usb.starts_with("-device qemu-xhci,id=xhci -drive if=none,id=stick,"));
        assert!(usb.ends_with("-device usb-storage,bus=xhci.0,drive=stick,removable=on"));
    }
}
