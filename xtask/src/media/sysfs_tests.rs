//! The tests of the USB-stick judgement (`sysfs.rs`), on fake sysfs trees
//! built in scratch directories.

use super::*;
use std::os::unix::fs::symlink;

const USB: &str = "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0";
const SATA: &str = "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0";
const POLICY: Policy = Policy {
    allow_large: false,
    image_bytes: 64 << 20,
};

/// A fake sysfs with one disk `name` (major 8) under `parent`, with one
/// partition, and the given attributes.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn sys(&self) -> &Path {
        self.dir.path()
    }

    fn disk(&self, parent: &str, name: &str, minor: u32, removable: &str, gib: u64) -> PathBuf {
        let sys = self.sys();
        let block = sys.join(parent).join("block").join(name);
        fs::create_dir_all(block.join("holders")).unwrap();
        fs::write(block.join("removable"), format!("{removable}\n")).unwrap();
        fs::write(block.join("size"), format!("{}\n", (gib << 30) / 512)).unwrap();
        let device = sys.join(parent);
        fs::write(device.join("model"), "Cruzer Blade    \n").unwrap();
        fs::write(device.join("vendor"), "SanDisk \n").unwrap();
        symlink(&device, block.join("device")).unwrap();
        let part = block.join(format!("{name}1"));
        fs::create_dir_all(part.join("holders")).unwrap();
        fs::write(part.join("partition"), "1\n").unwrap();
        fs::create_dir_all(sys.join("dev/block")).unwrap();
        symlink(&block, sys.join(format!("dev/block/8:{minor}"))).unwrap();
        symlink(&part, sys.join(format!("dev/block/8:{}", minor + 1))).unwrap();
        block
    }

    fn inspect(&self, minor: u32, mounts: &str, policy: Policy) -> Result<Disk, String> {
        let node = Node::Block { major: 8, minor };
        inspect(self.sys(), "/dev/x", node, mounts, policy).map_err(|e| e.to_string())
    }
}

#[test]
fn a_removable_unmounted_usb_stick_is_accepted() {
    let fake = Fake::new();
    fake.disk(USB, "sdb", 16, "1", 16);
    let disk = fake
        .inspect(16, "/dev/sda1 / ext4 rw 0 0\n", POLICY)
        .unwrap();
    assert_eq!(
        disk,
        Disk {
            name: "sdb".into(),
            model: "Cruzer Blade".into(),
            vendor: "SanDisk".into(),
            bytes: 16 << 30,
        }
    );
    assert_eq!(disk.describe(), "SanDisk Cruzer Blade (sdb, 16.0 GiB)");
}

#[test]
fn a_regular_file_is_refused() {
    let fake = Fake::new();
    let err = inspect(
        fake.sys(),
        "/tmp/f",
        Node::Other("a regular file"),
        "",
        POLICY,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("`/tmp/f` is a regular file, not a block device"),
        "{err}"
    );
}

#[test]
fn a_loop_device_is_refused() {
    let fake = Fake::new();
    fake.disk("devices/virtual", "loop0", 0, "0", 1);
    let err = fake.inspect(0, "", POLICY).unwrap_err();
    assert!(err.contains("(loop0) is a virtual device"), "{err}");
}

#[test]
fn a_disk_not_on_usb_is_refused() {
    let fake = Fake::new();
    // Even one that says it is removable (a hot-swap SATA bay).
    fake.disk(SATA, "sda", 0, "1", 500);
    let err = fake.inspect(0, "", POLICY).unwrap_err();
    assert!(err.contains("(sda) is not on a USB bus"), "{err}");
}

#[test]
fn a_usb_disk_that_is_not_removable_is_refused() {
    let fake = Fake::new();
    fake.disk(USB, "sdc", 32, "0", 100);
    let err = fake.inspect(32, "", POLICY).unwrap_err();
    assert!(err.contains("not removable (removable=0)"), "{err}");
}

#[test]
fn a_partition_is_refused_with_its_disk_named() {
    let fake = Fake::new();
    fake.disk(USB, "sdb", 16, "1", 16);
    let err = fake.inspect(17, "", POLICY).unwrap_err();
    assert!(
        err.contains("is a partition (sdb1) of sdb: name the whole disk, /dev/sdb"),
        "{err}"
    );
}

#[test]
fn a_mounted_partition_or_disk_is_refused() {
    let fake = Fake::new();
    fake.disk(USB, "sdb", 16, "1", 16);
    let mounts = "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /media/me/MY\\040STICK vfat rw 0 0\n";
    let err = fake.inspect(16, mounts, POLICY).unwrap_err();
    assert!(
        err.contains("is mounted: /dev/sdb1 on /media/me/MY STICK"),
        "{err}"
    );
    let err = fake
        .inspect(16, "/dev/sdb /mnt vfat rw 0 0\n", POLICY)
        .unwrap_err();
    assert!(err.contains("/dev/sdb on /mnt"), "{err}");
    // A longer name that merely starts like it is someone else.
    fake.inspect(
        16,
        "/dev/sdb10 /mnt vfat rw 0 0\n/dev/sdba /x y 0 0\n",
        POLICY,
    )
    .unwrap();
}

#[test]
fn a_held_partition_is_refused() {
    let fake = Fake::new();
    let block = fake.disk(USB, "sdb", 16, "1", 16);
    fs::create_dir_all(block.join("sdb1/holders/dm-0")).unwrap();
    let err = fake.inspect(16, "", POLICY).unwrap_err();
    assert!(err.contains("sdb1 is held by dm-0"), "{err}");
}

#[test]
fn a_large_device_needs_allow_large() {
    let fake = Fake::new();
    fake.disk(USB, "sdd", 48, "1", 512);
    let err = fake.inspect(48, "", POLICY).unwrap_err();
    assert!(err.contains("larger than 256 GiB"), "{err}");
    assert!(err.contains("--allow-large"), "{err}");
    let allow = Policy {
        allow_large: true,
        ..POLICY
    };
    assert_eq!(fake.inspect(48, "", allow).unwrap().bytes, 512 << 30);
}

#[test]
fn a_device_too_small_or_empty_is_refused() {
    let fake = Fake::new();
    let block = fake.disk(USB, "sde", 64, "1", 1);
    let big = Policy {
        image_bytes: 2 << 30,
        ..POLICY
    };
    let err = fake.inspect(64, "", big).unwrap_err();
    assert!(err.contains("too small for the 2.0 GiB image"), "{err}");
    fs::write(block.join("size"), "0\n").unwrap();
    let err = fake.inspect(64, "", POLICY).unwrap_err();
    assert!(err.contains("no medium"), "{err}");
}

#[test]
fn an_unknown_device_number_is_refused() {
    let fake = Fake::new();
    let err = fake.inspect(99, "", POLICY).unwrap_err();
    assert!(err.contains("block device 8:99"), "{err}");
}

#[test]
fn device_numbers_split_like_glibc() {
    assert_eq!(split_dev(0x0811), (8, 17));
    // major 259 (NVMe/extended), minor 1_048_576 + 3.
    let dev = (259u64 & 0xfff) << 8 | (3 & 0xff) | ((1_048_579u64 & !0xff) << 12);
    assert_eq!(split_dev(dev), (259, 1_048_579));
}

#[test]
fn usb_is_a_root_hub_component() {
    assert!(on_usb(Path::new(USB)));
    assert!(!on_usb(Path::new(SATA)));
    assert!(!on_usb(Path::new("devices/platform/usbfoo/block/x")));
    assert!(!on_usb(Path::new("devices/virtual/block/usb")));
}
