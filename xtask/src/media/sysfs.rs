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
#[path = "sysfs_tests.rs"]
mod tests;
