//! UEFI firmware (OVMF) for the `limine-uefi` door.
//!
//! Preferred: the split 4M build as two pflash drives, the code read-only and a
//! writable copy of the variable store in `target/` (one copy per QEMU run, so
//! that parallel runs do not fight over QEMU's write lock). Fallback: the
//! single-file build through `-bios`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};

const CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const SINGLE: &str = "/usr/share/ovmf/OVMF.fd";

#[derive(Clone, Debug)]
pub enum Firmware {
    Pflash { code: PathBuf, vars: PathBuf },
    Bios(PathBuf),
}

/// Finds OVMF; missing, it is one line naming the Debian package.
pub fn find() -> Result<Firmware> {
    choose(Path::new(CODE), Path::new(VARS), Path::new(SINGLE))
}

fn choose(code: &Path, vars: &Path, single: &Path) -> Result<Firmware> {
    if code.is_file() && vars.is_file() {
        Ok(Firmware::Pflash {
            code: code.into(),
            vars: vars.into(),
        })
    } else if single.is_file() {
        Ok(Firmware::Bios(single.into()))
    } else {
        bail!(
            "no OVMF firmware (looked for {} with {}, and {}): install the Debian package `ovmf`",
            code.display(),
            vars.display(),
            single.display()
        )
    }
}

/// A file deleted when dropped (the per-run copy of the variable store).
pub struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Firmware {
    /// QEMU options for this firmware, plus the scratch file they use, if any.
    pub fn args(&self) -> Result<(Vec<OsString>, Option<Scratch>)> {
        match self {
            Firmware::Bios(path) => Ok((vec!["-bios".into(), path.into()], None)),
            Firmware::Pflash { code, vars } => {
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let dir = crate::target_dir().join("ovmf");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create `{}`", dir.display()))?;
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let copy = dir.join(format!("vars-{}-{n}.fd", std::process::id()));
                std::fs::copy(vars, &copy).with_context(|| {
                    format!("cannot copy `{}` to `{}`", vars.display(), copy.display())
                })?;
                let drive = |extra: &str, file: &Path| {
                    let mut arg = OsString::from(format!("if=pflash,format=raw,{extra}file="));
                    arg.push(file);
                    arg
                };
                let args = vec![
                    "-drive".into(),
                    drive("readonly=on,", code),
                    "-drive".into(),
                    drive("", &copy),
                ];
                Ok((args, Some(Scratch(copy))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pflash_is_preferred_then_bios_then_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (code, vars, single) = (
            dir.path().join("code.fd"),
            dir.path().join("vars.fd"),
            dir.path().join("single.fd"),
        );
        let err = choose(&code, &vars, &single).unwrap_err().to_string();
        assert!(err.ends_with("install the Debian package `ovmf`"), "{err}");
        std::fs::write(&single, b"").unwrap();
        assert!(matches!(
            choose(&code, &vars, &single),
            Ok(Firmware::Bios(_))
        ));
        std::fs::write(&code, b"").unwrap();
        assert!(matches!(
            choose(&code, &vars, &single),
            Ok(Firmware::Bios(_))
        ));
        std::fs::write(&vars, b"").unwrap();
        assert!(matches!(
            choose(&code, &vars, &single),
            Ok(Firmware::Pflash { .. })
        ));
    }

    #[test]
    fn each_run_gets_its_own_variable_store() {
        let dir = tempfile::tempdir().unwrap();
        let vars = dir.path().join("vars.fd");
        std::fs::write(&vars, b"vars").unwrap();
        let fw = Firmware::Pflash {
            code: dir.path().join("code.fd"),
            vars,
        };
        let (a_args, a) = fw.args().unwrap();
        let (_, b) = fw.args().unwrap();
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a.0, b.0);
        assert_eq!(std::fs::read(&a.0).unwrap(), b"vars");
        assert!(a_args[1].to_string_lossy().contains("readonly=on"));
        let path = a.0.clone();
        drop(a);
        assert!(!path.exists());
    }
}
