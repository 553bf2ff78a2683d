//! The Limine ISO: a staging tree, xorriso, and `limine bios-install`.
//!
//! The boot menu is the workspace's `limine.conf`; the user's extra kernel
//! arguments are appended to the `cmdline:` of its first (default) entry, and
//! its menu `timeout:` (a few seconds, for people booting a USB stick) becomes
//! 0 in the ISO's copy: a QEMU run has nobody at the menu.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::media::limine::Limine;
use crate::qemu::process;

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether a limine.conf line starts an entry (`/name`, or `//name` for a sub-entry).
fn is_entry(line: &str) -> bool {
    line.trim_start().starts_with('/')
}

/// Whether a line sets the kernel command line (`cmdline:` or its alias).
fn is_cmdline(line: &str) -> bool {
    let line = line.trim_start();
    !line.starts_with('#')
        && line.split_once(':').is_some_and(|(key, _)| {
            let key = key.trim().to_ascii_lowercase();
            key == "cmdline" || key == "kernel_cmdline"
        })
}

/// Sets the global `timeout:` of a limine.conf to 0 (adding it when absent:
/// Limine's default is 5 s).
pub fn zero_timeout(conf: &str) -> String {
    let mut lines: Vec<String> = conf.lines().map(str::to_string).collect();
    let globals = lines
        .iter()
        .position(|l| is_entry(l))
        .unwrap_or(lines.len());
    let is_timeout = |l: &String| {
        let l = l.trim_start();
        !l.starts_with('#')
            && l.split_once(':')
                .is_some_and(|(key, _)| key.trim().eq_ignore_ascii_case("timeout"))
    };
    match lines[..globals].iter().position(is_timeout) {
        Some(i) => {
            let indent = lines[i].len() - lines[i].trim_start().len();
            lines[i] = format!("{}timeout: 0", &lines[i][..indent]);
        }
        None => lines.insert(0, "timeout: 0".to_string()),
    }
    let mut out = lines.join("\n");
    if conf.ends_with('\n') || conf.is_empty() {
        out.push('\n');
    }
    out
}

/// Appends `extra` words to the `cmdline:` of the first entry of a limine.conf,
/// adding a `cmdline:` line to that entry when it has none.
pub fn rewrite_conf(conf: &str, extra: &[String]) -> Result<String> {
    if extra.is_empty() {
        return Ok(conf.to_string());
    }
    let words = extra.join(" ");
    let mut lines: Vec<String> = conf.lines().map(str::to_string).collect();
    let first = lines
        .iter()
        .position(|l| is_entry(l))
        .context("limine.conf has no entry (a line starting with `/`)")?;
    let end = lines[first + 1..]
        .iter()
        .position(|l| is_entry(l))
        .map_or(lines.len(), |i| first + 1 + i);
    let body = first + 1..end;
    if let Some(i) = body.clone().find(|&i| is_cmdline(&lines[i])) {
        let line = lines[i].trim_end();
        lines[i] = format!("{line} {words}");
    } else {
        let is_key = |l: &String| !l.trim().is_empty() && !l.trim_start().starts_with('#');
        let indent = body
            .clone()
            .find(|&i| is_key(&lines[i]))
            .map_or("    ".to_string(), |i| {
                let l = &lines[i];
                l[..l.len() - l.trim_start().len()].to_string()
            });
        let after = body.rev().find(|&i| is_key(&lines[i])).unwrap_or(first);
        lines.insert(after + 1, format!("{indent}cmdline: {words}"));
    }
    let mut out = lines.join("\n");
    if conf.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy `{}` to `{}`", from.display(), to.display()))?;
    Ok(())
}

/// Builds a bootable ISO (SeaBIOS and UEFI) at `iso` holding `kernel`, with `extra`
/// words appended to the kernel command line of limine.conf's first entry.
pub fn build(kernel: &Path, limine: &Limine, extra: &[String], iso: &Path) -> Result<()> {
    build_inner(kernel, limine, extra, iso).context("building the ISO")
}

fn build_inner(kernel: &Path, limine: &Limine, extra: &[String], iso: &Path) -> Result<()> {
    let mut xorriso = process::tool("xorriso", "xorriso")?;
    let tool = limine.host_tool()?;
    let conf_path = crate::root().join("limine.conf");
    let conf = std::fs::read_to_string(&conf_path)
        .with_context(|| format!("cannot read `{}`", conf_path.display()))?;
    let conf = rewrite_conf(&zero_timeout(&conf), extra).context("rewriting limine.conf")?;

    let stem = iso.file_stem().unwrap_or_default().to_string_lossy();
    let staging = crate::target_dir().join(match stem.as_ref() {
        "istorm" => "iso-root".to_string(),
        other => format!("iso-root-{other}"),
    });
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot clear `{}`", staging.display()))?;
    }
    copy(kernel, &staging.join("boot/istorm"))?;
    for name in [
        "limine-bios.sys",
        "limine-bios-cd.bin",
        "limine-uefi-cd.bin",
    ] {
        copy(&limine.file(name), &staging.join("boot/limine").join(name))?;
    }
    let conf_dest = staging.join("boot/limine/limine.conf");
    std::fs::write(&conf_dest, conf)
        .with_context(|| format!("cannot write `{}`", conf_dest.display()))?;
    for name in ["BOOTX64.EFI", "BOOTIA32.EFI"] {
        copy(&limine.file(name), &staging.join("EFI/BOOT").join(name))?;
    }

    let _ = std::fs::remove_file(iso);
    xorriso
        .args(["-as", "mkisofs", "-R", "-r", "-J"])
        .args(["-b", "boot/limine/limine-bios-cd.bin"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
        .args(["-hfsplus", "-apm-block-size", "2048"])
        .args(["--efi-boot", "boot/limine/limine-uefi-cd.bin"])
        .args([
            "-efi-boot-part",
            "--efi-boot-image",
            "--protective-msdos-label",
        ])
        .arg(&staging)
        .arg("-o")
        .arg(iso);
    process::run_quiet(&mut xorriso, TOOL_TIMEOUT)?;
    let mut cmd = Command::new(tool);
    cmd.arg("bios-install").arg(iso);
    process::run_quiet(&mut cmd, TOOL_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    const CONF: &str = "timeout: 0\n\n/istorm\n    protocol: limine\n    \
                        kernel_path: boot():/boot/istorm\n    cmdline: entry=naive\n\n\
                        /istorm (pvh-like)\n    protocol: limine\n    cmdline: quiet\n";

    #[test]
    fn words_go_to_the_first_entry_only() {
        let out = rewrite_conf(CONF, &words(&["selftest=ud2", "seed=7"])).unwrap();
        assert!(
            out.contains("    cmdline: entry=naive selftest=ud2 seed=7\n"),
            "{out}"
        );
        assert!(out.contains("    cmdline: quiet\n"), "{out}");
        assert_eq!(out.lines().count(), CONF.lines().count());
    }

    #[test]
    fn no_words_leave_the_file_alone() {
        assert_eq!(rewrite_conf(CONF, &[]).unwrap(), CONF);
    }

    #[test]
    fn a_missing_cmdline_is_added_to_the_first_entry() {
        let conf = "timeout: 0\n/istorm\n  protocol: limine\n  kernel_path: boot():/boot/istorm\n\n/other\n  cmdline: x\n";
        let out = rewrite_conf(conf, &words(&["a=1"])).unwrap();
        assert_eq!(
            out,
            "timeout: 0\n/istorm\n  protocol: limine\n  kernel_path: boot():/boot/istorm\n  \
             cmdline: a=1\n\n/other\n  cmdline: x\n"
        );
    }

    #[test]
    fn an_empty_cmdline_and_the_alias_are_extended() {
        let out = rewrite_conf("/a\n  CMDLINE:\n", &words(&["x=1"])).unwrap();
        assert_eq!(out, "/a\n  CMDLINE: x=1\n");
        let out = rewrite_conf("/a\n  kernel_cmdline: y\n", &words(&["x=1"])).unwrap();
        assert_eq!(out, "/a\n  kernel_cmdline: y x=1\n");
        let out = rewrite_conf("/a\n  # cmdline: old\n  protocol: limine", &words(&["x"])).unwrap();
        assert_eq!(
            out,
            "/a\n  # cmdline: old\n  protocol: limine\n  cmdline: x"
        );
    }

    #[test]
    fn an_entry_without_keys_gets_one() {
        let out = rewrite_conf("timeout: 0\n/a\n", &words(&["x"])).unwrap();
        assert_eq!(out, "timeout: 0\n/a\n    cmdline: x\n");
    }

    #[test]
    fn the_menu_timeout_becomes_zero_and_entries_keep_theirs() {
        let conf = "# menu\ntimeout: 3\n\n/istorm\n    timeout: 9\n    cmdline:\n";
        assert_eq!(
            zero_timeout(conf),
            "# menu\ntimeout: 0\n\n/istorm\n    timeout: 9\n    cmdline:\n"
        );
        assert_eq!(zero_timeout("TIMEOUT:5\n/a\n"), "timeout: 0\n/a\n");
        assert_eq!(
            zero_timeout("# timeout: 3\n/a\n"),
            "timeout: 0\n# timeout: 3\n/a\n"
        );
        assert_eq!(zero_timeout(""), "timeout: 0\n");
    }

    #[test]
    fn the_workspace_menu_keeps_its_timeout_and_the_iso_copy_has_none() {
        let path = crate::root().join("limine.conf");
        let conf = std::fs::read_to_string(path).unwrap();
        let timeouts = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("timeout:"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(timeouts(&conf).len(), 1, "{conf}");
        let copy = zero_timeout(&conf);
        assert_eq!(timeouts(&copy), ["timeout: 0"], "{copy}");
        assert_eq!(copy.lines().count(), conf.lines().count());
    }

    #[test]
    fn a_conf_without_entries_is_an_error() {
        let err = rewrite_conf("timeout: 0\n", &words(&["x"])).unwrap_err();
        assert!(err.to_string().contains("no entry"), "{err}");
    }
}
