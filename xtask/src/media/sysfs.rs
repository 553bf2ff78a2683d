//! Whether a block device may be overwritten with the image: a pure judgement
//! over a sysfs tree (`/sys`, or a fake one in the tests) and the text of
//! `/proc/self/mounts`. Only a whole, removable, unmounted disk on a USB bus,
//! no larger than 256 GiB unless allowed, is accepted; every refusal is one
//! line that says why and what to do instead.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Larger than this is more likely a backup disk than a stick.
pub const LARGE: u64 = 256 << 30;
const SECTOR: u64 = 512;

/// What the user's path is, from `stat` (symlinks followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Block {
        major: u32,
        minor: u32,
    },
    /// Not a block device: what it is ("a regular file", "a directory"...).
    Other(&'static str),
}

impl Node {
    /// Classifies a path's metadata.
    pub fn of(meta: &fs::Metadata) -> Node {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let kind = meta.file_type();
        if kind.is_block_device() {
            let (major, minor) = split_dev(meta.rdev());
            Node::Block { major, minor }
        } else if kind.is_file() {
            Node::Other("a regular file")
        } else if kind.is_dir() {
            Node::Other("a directory")
        } else if kind.is_char_device() {
            Node::Other("a character device")
        } else {
            Node::Other("not a device")
        }
    }
}

/// Major and minor numbers of a Linux `dev_t` (glibc's encoding).
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// What the caller allows.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub allow_large: bool,
    /// The image must fit.
    pub image_bytes: u64,
}

/// An accepted device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name, e.g. `sdb`.
    pub name: String,
    /// `device/model`, trimmed: what the user types to confirm (the kernel
    /// name when the device reports no model).
    pub model: String,
    /// `device/vendor`, trimmed (may be empty).
    pub vendor: String,
    pub bytes: u64,
}

impl Disk {
    /// `SanDisk Cruzer Blade (sdb, 15.4 GiB)`.
    pub fn describe(&self) -> String {
        let label = [self.vendor.as_str(), self.model.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        format!("{label} ({}, {})", self.name, human(self.bytes))
    }
}

/// Bytes in GiB or MiB with one decimal.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The partitions of a disk: the children of its sysfs directory that have a
/// `partition` file.
fn partitions(block: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(block) else {
        return Vec::new();
    };
    let mut parts: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("partition").is_file())
        .collect();
    parts.sort();
    parts
}

/// The first `holders/` entry of a block directory (device mapper, md...).
fn holder(block: &Path) -> Option<String> {
    let mut names: Vec<String> = fs::read_dir(block.join("holders"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.into_iter().next()
}

/// Whether a sysfs path runs through a USB host controller's root hub
/// (`.../usb2/2-1/2-1:1.0/host6/...`).
fn on_usb(path: &Path) -> bool {
    path.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        c.strip_prefix("usb")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The mount points of the device names in `names`, from mounts text.
fn mounted(mounts: &str, names: &[String]) -> Vec<(String, String)> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let source = fields.next()?;
            let target = fields.next()?;
            let dev = source.strip_prefix("/dev/")?;
            names
                .iter()
                .any(|n| n == dev)
                .then(|| (dev.to_string(), target.replace("\\040", " ")))
        })
        .collect()
}

/// Decides whether the device at `shown` (the user's spelling, for messages)
/// may be overwritten. `sys` is the sysfs root.
pub fn inspect(sys: &Path, shown: &str, node: Node, mounts: &str, policy: Policy) -> Result<Disk> {
    let (major, minor) = match node {
        Node::Block { major, minor } => (major, minor),
        Node::Other(kind) => bail!(
            "`{shown}` is {kind}, not a block device: name the whole USB stick, e.g. /dev/sdb \
             (`lsblk -d -o NAME,TRAN,RM,SIZE,MODEL` lists them)"
        ),
    };
    let link = sys.join(format!("dev/block/{major}:{minor}"));
    let Ok(block) = fs::canonicalize(&link) else {
        bail!(
            "`{shown}` is block device {major}:{minor}, which {} does not know",
            link.display()
        );
    };
    let name = file_name(&block);
    if block.join("partition").is_file() {
        let disk = block.parent().map(file_name).unwrap_or_default();
        bail!("`{shown}` is a partition ({name}) of {disk}: name the whole disk, /dev/{disk}");
    }
    let root = fs::canonicalize(sys).unwrap_or_else(|_| sys.to_path_buf());
    let relative = block.strip_prefix(&root).unwrap_or(&block).to_path_buf();
    if !on_usb(&relative) {
        let what = if relative.starts_with("devices/virtual") {
            "a virtual device (loop, RAM disk, device mapper...)"
        } else {
            "not on a USB bus"
        };
        bail!(
            "`{shown}` ({name}) is {what}: only a USB stick is written (sysfs: {})",
            relative.display()
        );
    }
    let removable = read_trimmed(&block.join("removable"));
    if removable.as_deref() != Some("1") {
        bail!(
            "`{shown}` ({name}) is on USB but not removable (removable={}): a USB disk, not a stick",
            removable.as_deref().unwrap_or("unknown")
        );
    }
    let parts = partitions(&block);
    let mut names = vec![name.clone()];
    names.extend(parts.iter().map(|p| file_name(p)));
    if let Some((dev, target)) = mounted(mounts, &names).into_iter().next() {
        bail!("`{shown}` ({name}) is mounted: /dev/{dev} on {target}; unmount it first");
    }
    for dir in std::iter::once(&block).chain(&parts) {
        if let Some(by) = holder(dir) {
            bail!(
                "`{shown}` ({name}) is in use: {} is held by {by} (device mapper, RAID or \
                 encryption); release it first",
                file_name(dir)
            );
        }
    }
    let Some(sectors) = read_trimmed(&block.join("size")).and_then(|s| s.parse::<u64>().ok())
    else {
        bail!("`{shown}` ({name}) has no readable size in sysfs");
    };
    let bytes = sectors * SECTOR;
    if bytes == 0 {
        bail!("`{shown}` ({name}) has no medium (size 0): is the card in the reader?");
    }
    let device = block.join("device");
    let model = read_trimmed(&device.join("model")).unwrap_or_default();
    let disk = Disk {
        model: if model.is_empty() {
            name.clone()
        } else {
            model
        },
        vendor: read_trimmed(&device.join("vendor")).unwrap_or_default(),
        name,
        bytes,
    };
    if bytes > LARGE && !policy.allow_large {
        bail!(
            "`{shown}` is {}, larger than 256 GiB: more likely a backup disk than a stick \
             (pass --allow-large if it really is the stick)",
            disk.describe()
        );
    }
    if bytes < policy.image_bytes {
        bail!(
            "`{shown}` is {}, too small for the {} image",
            disk.describe(),
            human(policy.image_bytes)
        );
    }
    Ok(disk)
}

#[cfg(test)]
mod tests {
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
}
