//! Finding Limine's binaries, verifying them, and building its host tool.
//!
//! The project never contains Limine. It is looked for, in order, in
//! `--limine-dir`, `LIMINE_DIR`, the cache `target/limine/v8.2.0`, and the usual
//! install locations; failing those, the pinned binary tag is cloned with git into
//! the cache. Every source is checked file by file against the SHA-256 sums below,
//! which equal the release's own `SHA256SUMS`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

use crate::qemu::process;

pub const VERSION: &str = "8.2.0";
const TAG: &str = "v8.2.0-binary";
const REPOSITORY: &str = "https://github.com/limine-bootloader/limine.git";
const ENV: &str = "LIMINE_DIR";
const CLONE_TIMEOUT: Duration = Duration::from_secs(120);
const COMPILE_TIMEOUT: Duration = Duration::from_secs(120);

/// The files the project uses, with their SHA-256 sums from Limine 8.2.0.
const PINNED: [(&str, &str); 8] = [
    (
        "limine-bios.sys",
        "8382e36ff9d51e52e9160842f834a346028edf9e0319b1c728d290e3044a44a7",
    ),
    (
        "limine-bios-cd.bin",
        "3b889bf946b1f248c93efa90fd1718aad79f867e8184f9167a0b9875a0c41191",
    ),
    (
        "limine-uefi-cd.bin",
        "1801a9034420fb1b17bdcdedee11f29c946169abac103b161e7bfd01d98caf29",
    ),
    (
        "BOOTX64.EFI",
        "7bf99f9ffdbce1443bd7f148f01bee47d4a587f58fb170e42dab29790e6d831a",
    ),
    (
        "BOOTIA32.EFI",
        "e3974bcb250bf98e6f85ea3b7b5f76dbcc7494f43d1532e0ecd2a9c1ccf95e63",
    ),
    (
        "limine.c",
        "201ac3e7f47b34305f2208066ebb204118a7debf90d6fd7d28f4799905ca7f70",
    ),
    (
        "limine-bios-hdd.h",
        "95929ac04f603483f72781508f35f07854e1933188bc7558d89c0e7710c5749b",
    ),
    (
        "limine.h",
        "3a018a8326adb5e6cff14a8595c775fd88235eb3e5fde4a135132b6398d165d5",
    ),
];

/// A verified directory of Limine binaries.
#[derive(Clone, Debug)]
pub struct Limine {
    dir: PathBuf,
}

/// The result of looking for Limine where it is allowed to be missing.
pub enum Lookup {
    Found(Limine),
    /// Nothing usable anywhere; the text says what was tried.
    Missing(String),
}

impl Limine {
    /// A file of the release, e.g. `limine-bios.sys`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The host tool `limine` (for `bios-install`), compiled once from `limine.c`
    /// into `target/limine/bin`. Every verified `limine.c` is the same file, so
    /// the cached binary serves every source.
    pub fn host_tool(&self) -> Result<PathBuf> {
        let bin_dir = cache_root().join("bin");
        let tool = bin_dir.join("limine");
        if tool.is_file() {
            return Ok(tool);
        }
        let mut cc = process::tool("cc", "gcc")?;
        std::fs::create_dir_all(&bin_dir)
            .with_context(|| format!("cannot create `{}`", bin_dir.display()))?;
        let partial = bin_dir.join(format!("limine.partial-{}", std::process::id()));
        cc.args(["-O2", "-std=c99"])
            .arg(self.file("limine.c"))
            .arg("-o")
            .arg(&partial);
        process::run_quiet(&mut cc, COMPILE_TIMEOUT).context("compiling Limine's host tool")?;
        std::fs::rename(&partial, &tool)
            .with_context(|| format!("cannot move the host tool to `{}`", tool.display()))?;
        Ok(tool)
    }
}

fn cache_root() -> PathBuf {
    crate::target_dir().join("limine")
}

fn cache_dir() -> PathBuf {
    cache_root().join(format!("v{VERSION}"))
}

/// Lowercase hex SHA-256 of some bytes.
fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks every pinned file of `dir`; the error names the first bad file.
pub fn verify(dir: &Path) -> Result<Limine> {
    ensure!(dir.is_dir(), "`{}` is not a directory", dir.display());
    for (name, want) in PINNED {
        let path = dir.join(name);
        let data =
            std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let got = sha256_hex(&data);
        ensure!(
            got == want,
            "`{}` does not match its pinned SHA-256 (is {got}, pinned {want}): not Limine {VERSION}",
            path.display()
        );
    }
    Ok(Limine {
        dir: dir.to_path_buf(),
    })
}

/// Looks everywhere. A source the user named (`--limine-dir`, `LIMINE_DIR`) that
/// fails verification is an error; anything else only moves on to the next place.
pub fn locate(explicit: Option<&Path>) -> Result<Lookup> {
    let env = std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let named = match (explicit, env) {
        (Some(dir), _) => Some(("--limine-dir ", dir.to_path_buf())),
        (None, Some(dir)) => Some(("LIMINE_DIR=", dir)),
        (None, None) => None,
    };
    if let Some((how, dir)) = named {
        let limine = verify(&dir).with_context(|| format!("{how}{}", dir.display()))?;
        eprintln!("limine: {how}{} (verified)", dir.display());
        return Ok(Lookup::Found(limine));
    }
    let mut tried = vec![
        "--limine-dir: not given".to_string(),
        format!("{ENV}: not set"),
    ];
    let places = [
        cache_dir(),
        PathBuf::from("/usr/share/limine"),
        PathBuf::from("/usr/local/share/limine"),
    ];
    for dir in places {
        if !dir.exists() {
            tried.push(format!("{}: absent", dir.display()));
            continue;
        }
        match verify(&dir) {
            Ok(limine) => {
                eprintln!("limine: {} (verified)", dir.display());
                return Ok(Lookup::Found(limine));
            }
            Err(e) => tried.push(format!("{}: {e:#}", dir.display())),
        }
    }
    match fetch() {
        Ok(limine) => Ok(Lookup::Found(limine)),
        Err(e) => {
            tried.push(format!("git clone of {TAG}: {e:#}"));
            Ok(Lookup::Missing(format!(
                "Limine {VERSION} cannot be had (tried {}); use --boot pvh",
                tried.join("; ")
            )))
        }
    }
}

/// Like [`locate`], for commands that cannot go on without Limine.
pub fn require(explicit: Option<&Path>) -> Result<Limine> {
    match locate(explicit)? {
        Lookup::Found(limine) => Ok(limine),
        Lookup::Missing(why) => bail!(why),
    }
}

/// Clones the pinned binary tag into the cache, verifying it before it is used.
fn fetch() -> Result<Limine> {
    let mut git = process::tool("git", "git")?;
    let dest = cache_dir();
    let partial = cache_root().join(format!("v{VERSION}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(cache_root()).context("creating target/limine")?;
    git.args(["clone", "--depth", "1", "--branch", TAG, REPOSITORY])
        .arg(&partial)
        .env("GIT_TERMINAL_PROMPT", "0");
    let cloned = process::run_quiet(&mut git, CLONE_TIMEOUT).and_then(|()| verify(&partial));
    if let Err(e) = cloned {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&partial, &dest)
        .with_context(|| format!("cannot move the clone to `{}`", dest.display()))?;
    eprintln!("limine: {} (cloned, verified)", dest.display());
    Ok(Limine { dir: dest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn pinned_sums_are_well_formed() {
        for (name, sum) in PINNED {
            assert_eq!(sum.len(), 64, "{name}");
            assert!(
                sum.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", verify(dir.path()).unwrap_err());
        assert!(err.contains("limine-bios.sys"), "{err}");
    }

    #[test]
    fn a_mismatch_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for (name, _) in PINNED {
            std::fs::write(dir.path().join(name), b"not limine").unwrap();
        }
        let err = format!("{:#}", verify(dir.path()).unwrap_err());
        assert!(err.contains("limine-bios.sys` does not match"), "{err}");
    }

    #[test]
    fn the_shared_release_verifies_when_present() {
        // The release kept beside the project for machines without internet.
        let shared = crate::root().join("../shared/limine/v8.2.0");
        if shared.is_dir() {
            verify(&shared).unwrap();
        }
    }

    #[test]
    fn a_bad_explicit_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", locate(Some(dir.path())).err().unwrap());
        assert!(err.starts_with("--limine-dir"), "{err}");
    }
}
