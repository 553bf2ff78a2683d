//! Writing the disk image to a stick (or any file) and proving it arrived:
//! written with a progress bar, flushed with fsync, read back past the page
//! cache (O_DIRECT) and compared by SHA-256. Whether a device may be written
//! at all is `sysfs.rs`'s judgement, asked first by `cmd/usb.rs`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

const CHUNK: usize = 1 << 20;

fn bar(len: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:9} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `image` to `target`, fsyncs, reads the same length back and
/// compares SHA-256 sums; returns the sum. `exclusive` opens with O_EXCL,
/// which the kernel refuses for a block device that is mounted or held.
pub fn write_verified(image: &Path, target: &Path, exclusive: bool) -> Result<String> {
    let mut source =
        File::open(image).with_context(|| format!("cannot open `{}`", image.display()))?;
    let len = source.metadata()?.len();
    let mut options = File::options();
    options.write(true);
    if exclusive {
        options.custom_flags(libc::O_EXCL);
    }
    let mut dest = options.open(target).map_err(|e| open_error(target, e))?;
    let progress = bar(len, "writing");
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = source
            .read(&mut buf)
            .with_context(|| format!("reading `{}`", image.display()))?;
        ensure!(n > 0, "`{}` ended early", image.display());
        hash.update(&buf[..n]);
        dest.write_all(&buf[..n])
            .with_context(|| format!("writing `{}` at byte {done}", target.display()))?;
        done += n as u64;
        progress.set_position(done);
    }
    progress.set_message("syncing");
    dest.sync_all()
        .with_context(|| format!("fsync of `{}`", target.display()))?;
    drop(dest);
    progress.finish_and_clear();
    let want = hex(&hash.finalize());
    let got = read_back(target, len)?;
    ensure!(
        got == want,
        "read-back mismatch on `{}`: wrote SHA-256 {want}, read {got}; the stick may be failing",
        target.display()
    );
    Ok(want)
}

/// A buffer O_DIRECT accepts (aligned to any logical block size).
#[repr(C, align(4096))]
struct Aligned([u8; 256 << 10]);

/// SHA-256 of the first `len` bytes of `target`, read with O_DIRECT so that
/// the bytes come from the device, not from the page cache the write left
/// behind; a file system that refuses O_DIRECT (tmpfs) is read normally.
fn read_back(target: &Path, len: u64) -> Result<String> {
    let (mut file, direct) = match File::options()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(target)
    {
        Ok(file) => (file, true),
        Err(_) => (
            File::open(target).with_context(|| format!("cannot reopen `{}`", target.display()))?,
            false,
        ),
    };
    let progress = bar(len, "verifying");
    let mut buf = Box::new(Aligned([0; 256 << 10]));
    let mut hash = Sha256::new();
    let mut done = 0u64;
    let mut direct = direct;
    while done < len {
        let n = match file.read(&mut buf.0) {
            Err(e) if direct && done == 0 && e.raw_os_error() == Some(libc::EINVAL) => {
                file = File::open(target)?;
                direct = false;
                continue;
            }
            other => other.with_context(|| format!("reading back `{}`", target.display()))?,
        };
        ensure!(
            n > 0,
            "`{}` ended at byte {done} of {len}",
            target.display()
        );
        let take = n.min(usize::try_from(len - done).unwrap_or(usize::MAX));
        hash.update(&buf.0[..take]);
        done += take as u64;
        progress.set_position(done);
    }
    progress.finish_and_clear();
    Ok(hex(&hash.finalize()))
}

/// One line for the errors a user can fix.
fn open_error(target: &Path, e: io::Error) -> anyhow::Error {
    let shown = target.display();
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => anyhow::anyhow!(
            "cannot open `{shown}` for writing: permission denied (build as yourself with \
             `cargo xtask image`, then `sudo target/debug/xtask usb {shown} --image \
             target/istorm.img`, or join the `disk` group)"
        ),
        Some(libc::EBUSY) => anyhow::anyhow!(
            "`{shown}` is busy: something has it open or mounted; unmount it and try again"
        ),
        _ => anyhow::anyhow!("cannot open `{shown}` for writing: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("i.img");
        let data: Vec<u8> = (0..3 * CHUNK + 512).map(|i| (i % 253) as u8).collect();
        std::fs::write(&image, &data).unwrap();
        let target = dir.path().join("stick");
        // A stick holds more than the image: the tail is left alone.
        std::fs::write(&target, vec![0xee; data.len() + 4096]).unwrap();
        let sum = write_verified(&image, &target, false).unwrap();
        assert_eq!(sum, hex(&Sha256::digest(&data)));
        let written = std::fs::read(&target).unwrap();
        assert_eq!(&written[..data.len()], &data[..]);
        assert!(written[data.len()..].iter().all(|&b| b == 0xee));
        assert_eq!(read_back(&target, data.len() as u64).unwrap(), sum);
    }

    #[test]
    fn a_short_target_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("short");
        std::fs::write(&target, b"abc").unwrap();
        let err = read_back(&target, 4096).unwrap_err().to_string();
        assert!(err.contains("ended at byte"), "{err}");
    }
}
