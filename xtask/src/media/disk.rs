//! A raw disk image in Rust, without mtools, loop devices or root: a
//! protective MBR and a GPT (`gpt` crate) holding one EFI system partition,
//! formatted FAT32 (`fatfs` crate) and filled with the given files.
//!
//! ```text
//! LBA 0        protective MBR (Limine's `bios-install` later puts its stage 1 here)
//! LBA 1        primary GPT header
//! LBA 2..34    partition entries (128); `bios-install` embeds its stage 2 at
//!              their end and shrinks the table to the entries that fit
//! LBA 2048..   EFI system partition, FAT32, up to the last 1 MiB boundary
//! last 33 LBAs backup entries and header
//! ```
//!
//! The image is reproducible: the disk and partition GUIDs and the FAT volume
//! ID come from a seed (the caller hashes the contents), and every file is
//! dated 1980-01-01 00:00, the first valid FAT date.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result, ensure};

const SECTOR: u64 = 512;
/// Partitions start on 1 MiB boundaries (what every partitioning tool does,
/// and what flash media erase blocks like).
const ALIGN_LBAS: u64 = (1 << 20) / SECTOR;
/// FAT32 needs at least 65525 clusters: with 512-byte clusters that is 32 MiB,
/// plus the FATs and the GPT around it.
pub const MIN_MIB: u32 = 40;
pub const MAX_MIB: u32 = 4096;
const LABEL: [u8; 11] = *b"ISTORM     ";

/// One file of the ESP: a `/`-separated path and its bytes.
pub struct Entry<'a> {
    pub path: &'a str,
    pub data: &'a [u8],
}

/// Where the ESP lies on a disk of `total_lbas` sectors: first LBA and length.
pub fn esp_extent(total_lbas: u64) -> Result<(u64, u64)> {
    // The backup table takes the last 33 sectors (32 of entries, 1 header).
    let last_usable = total_lbas
        .checked_sub(34)
        .context("the disk is too small for a GPT")?;
    let end = (last_usable + 1) / ALIGN_LBAS * ALIGN_LBAS;
    ensure!(end > ALIGN_LBAS, "the disk is too small for a partition");
    Ok((ALIGN_LBAS, end - ALIGN_LBAS))
}

/// Writes a whole image of `size_mib` MiB to `path`: tables, filesystem, files.
pub fn write(path: &Path, size_mib: u32, seed: &[u8; 32], files: &[Entry]) -> Result<()> {
    ensure!(
        (MIN_MIB..=MAX_MIB).contains(&size_mib),
        "an image of {size_mib} MiB: the size must be {MIN_MIB} to {MAX_MIB} MiB"
    );
    let bytes = u64::from(size_mib) << 20;
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    file.set_len(bytes)
        .with_context(|| format!("cannot size `{}`", path.display()))?;
    let (first, len) = esp_extent(bytes / SECTOR)?;
    partition(&mut file, bytes / SECTOR, first, len, seed).context("writing the GPT")?;
    let slice = Slice::new(&mut file, first * SECTOR, len * SECTOR)?;
    filesystem(slice, seed, files).context("writing the FAT32 filesystem")?;
    file.sync_all()
        .with_context(|| format!("cannot flush `{}`", path.display()))
}

/// A version-4-shaped GUID taken from 16 bytes of the seed.
fn guid(seed: &[u8; 32], at: usize) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&seed[at..at + 16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn partition(
    file: &mut File,
    total_lbas: u64,
    first: u64,
    len: u64,
    seed: &[u8; 32],
) -> Result<()> {
    let mbr_size = u32::try_from(total_lbas - 1).unwrap_or(u32::MAX);
    gpt::mbr::ProtectiveMBR::with_lb_size(mbr_size)
        .overwrite_lba0(file)
        .context("writing the protective MBR")?;
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(&mut *file, Some(guid(seed, 0)))?;
    let esp = gpt::partition::Partition {
        part_type_guid: gpt::partition_types::EFI,
        part_guid: guid(seed, 16),
        first_lba: first,
        last_lba: first + len - 1,
        flags: 0,
        name: "istorm".into(),
    };
    disk.update_partitions(BTreeMap::from([(1, esp)]))?;
    disk.write()?;
    Ok(())
}

fn filesystem(mut slice: Slice, seed: &[u8; 32], files: &[Entry]) -> Result<()> {
    let volume_id = u32::from_le_bytes([seed[0], seed[1], seed[2], seed[3]]);
    let options = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .volume_id(volume_id)
        .volume_label(LABEL);
    fatfs::format_volume(&mut slice, options).context("formatting")?;
    slice.seek(SeekFrom::Start(0))?;
    let options = fatfs::FsOptions::new().time_provider(&Epoch);
    let fs = fatfs::FileSystem::new(slice, options)?;
    for entry in files {
        put(&fs.root_dir(), entry.path, entry.data)
            .with_context(|| format!("cannot write `{}` into the ESP", entry.path))?;
    }
    fs.unmount()?;
    Ok(())
}

/// The clock of a reproducible image: always 1980-01-01 00:00 (fatfs's own
/// default without `chrono` writes the invalid date 0, shown as 1980-00-00).
#[derive(Debug)]
struct Epoch;

impl fatfs::TimeProvider for Epoch {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date {
            year: 1980,
            month: 1,
            day: 1,
        }
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

/// Writes one file, creating its directories on the way.
fn put<T: fatfs::ReadWriteSeek>(root: &fatfs::Dir<T>, path: &str, data: &[u8]) -> io::Result<()> {
    let (dirs, name) = path.rsplit_once('/').unwrap_or(("", path));
    let mut dir = root.clone();
    for part in dirs.split('/').filter(|p| !p.is_empty()) {
        dir = dir.create_dir(part)?;
    }
    let mut file = dir.create_file(name)?;
    file.truncate()?;
    file.write_all(data)?;
    file.flush()
}

/// A window of a file (one partition), seen as a whole stream by fatfs.
pub struct Slice<'a> {
    file: &'a mut File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> Slice<'a> {
    pub fn new(file: &'a mut File, start: u64, len: u64) -> io::Result<Slice<'a>> {
        file.seek(SeekFrom::Start(start))?;
        Ok(Slice {
            file,
            start,
            len,
            pos: 0,
        })
    }

    /// How many of `want` bytes fit before the end of the window.
    fn room(&self, want: usize) -> usize {
        want.min(usize::try_from(self.len.saturating_sub(self.pos)).unwrap_or(usize::MAX))
    }
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        let n = self.file.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Slice<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        let n = self.file.write(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Slice<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.filter(|&t| t <= self.len).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek outside the partition")
        })?;
        self.file.seek(SeekFrom::Start(self.start + target))?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(path: &Path, inner: &str) -> Vec<u8> {
        let mut file = File::open(path).unwrap();
        let disk = gpt::GptConfig::new()
            .writable(false)
            .open_from_device(&mut file)
            .unwrap();
        let esp = disk.partitions()[&1].clone();
        drop(disk);
        let mut file = File::options().read(true).write(true).open(path).unwrap();
        let slice = Slice::new(
            &mut file,
            esp.first_lba * SECTOR,
            (esp.last_lba + 1 - esp.first_lba) * SECTOR,
        )
        .unwrap();
        let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), fatfs::FatType::Fat32);
        let mut data = Vec::new();
        fs.root_dir()
            .open_file(inner)
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        data
    }

    #[test]
    fn the_esp_is_aligned_and_leaves_room_for_the_backup_table() {
        let total = 64 << 11;
        let (first, len) = esp_extent(total).unwrap();
        assert_eq!(first, 2048);
        assert_eq!((first + len) % 2048, 0);
        assert!(first + len <= total - 33);
        assert!(esp_extent(100).is_err());
    }

    #[test]
    fn files_round_trip_through_gpt_and_fat32() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let kernel: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let files = [
            Entry {
                path: "EFI/BOOT/BOOTX64.EFI",
                data: b"efi",
            },
            Entry {
                path: "boot/limine/limine.conf",
                data: b"timeout: 0\n",
            },
            Entry {
                path: "boot/istorm",
                data: &kernel,
            },
        ];
        write(&path, MIN_MIB, &[7; 32], &files).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            u64::from(MIN_MIB) << 20
        );
        assert_eq!(read_back(&path, "boot/istorm"), kernel);
        assert_eq!(read_back(&path, "boot/limine/limine.conf"), b"timeout: 0\n");
        assert_eq!(read_back(&path, "EFI/BOOT/BOOTX64.EFI"), b"efi");
        let mut file = File::open(&path).unwrap();
        let disk = gpt::GptConfig::new().open_from_device(&mut file).unwrap();
        let esp = &disk.partitions()[&1];
        assert_eq!(esp.part_type_guid, gpt::partition_types::EFI);
        assert_eq!(esp.first_lba, 2048);
        // Limine embeds its stage 2 in the 32 sectors of partition entries.
        assert_eq!(disk.primary_header().unwrap().part_start, 2);
        assert_eq!(disk.primary_header().unwrap().num_parts, 128);
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let files = [Entry {
            path: "a/b",
            data: b"x",
        }];
        let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
        write(&a, MIN_MIB, &[1; 32], &files).unwrap();
        write(&b, MIN_MIB, &[1; 32], &files).unwrap();
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    }

    #[test]
    fn sizes_out_of_range_and_files_too_big_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let err = write(&path, 8, &[0; 32], &[]).unwrap_err();
        assert!(err.to_string().contains("40 to 4096 MiB"), "{err}");
        let big = vec![0u8; 41 << 20];
        let err = write(
            &path,
            MIN_MIB,
            &[0; 32],
            &[Entry {
                path: "big",
                data: &big,
            }],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("`big`"), "{err:#}");
    }
}
