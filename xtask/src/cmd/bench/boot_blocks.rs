//! How much code QEMU translated in one PVH boot. TCG translates a block of
//! guest code the first time it runs (and keeps it), so a boot that exits at
//! once pays mostly for translating its code, not for running it: the
//! count of blocks, from `-d in_asm`, is a deterministic measure of that cost
//! where the wall time is noisy. The blocks are split by where their code
//! lives: the kernel's higher half, or below it (the firmware, the PVH door's
//! 32-bit entry and the APs' real-mode trampoline).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::qemu::accel::Accel;
use crate::qemu::exit::Exit;
use crate::qemu::machine::{self, End};
use crate::qemu::process::Echo;
use crate::runner::boot::{Artifacts, BootConfig};

/// Where the kernel is linked (`-C code-model=kernel`): its higher half.
const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;

/// Translation blocks of one boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blocks {
    pub total: u64,
    /// Blocks whose first instruction is in the kernel's higher half.
    pub kernel: u64,
    /// Guest instructions in all blocks.
    pub instructions: u64,
}

/// Boots `config` once with QEMU's `in_asm` log in `log` and counts it.
pub fn count(
    artifacts: &Artifacts,
    config: &BootConfig,
    accel: Accel,
    timeout: Duration,
    log: &Path,
) -> Result<Blocks> {
    let (mut args, _scratch) = artifacts.qemu_args(config, accel)?;
    args.extend([
        "-d".into(),
        "in_asm".into(),
        "-D".into(),
        OsString::from(log),
    ]);
    let out = machine::run(&args, timeout, Echo::Quiet)?;
    if out.end != End::Exited(Exit::Success) {
        bail!("the logged PVH boot did not succeed: {}", out.end);
    }
    let text = std::fs::read_to_string(log)
        .with_context(|| format!("reading QEMU's log {}", log.display()))?;
    Ok(parse(&text))
}

/// Counts an `in_asm` log: each block starts with an `IN:` line, followed by
/// one `0xADDR:  bytes  mnemonic` line per guest instruction.
fn parse(log: &str) -> Blocks {
    let mut blocks = Blocks::default();
    let mut block_starts = false;
    for line in log.lines() {
        if line.starts_with("IN:") {
            block_starts = true;
            continue;
        }
        let Some(addr) = line
            .strip_prefix("0x")
            .and_then(|rest| rest.split(':').next())
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        else {
            continue;
        };
        blocks.instructions += 1;
        if block_starts {
            blocks.total += 1;
            if addr >= KERNEL_VMA {
                blocks.kernel += 1;
            }
            block_starts = false;
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_counted_by_their_first_instruction() {
        let log = "----------------\nIN: \n\
                   0xfffffff0:  e9 8d ff                 jmp      0xff80\n\n\
                   ----------------\nIN: \n\
                   0xffffffff80200000:  fa                       cli      \n\
                   0xffffffff80200001:  fc                       cld      \n\n\
                   ----------------\nIN: pvh_entry32\n\
                   0x00200000:  fa                       cli      \n";
        assert_eq!(
            parse(log),
            Blocks {
                total: 3,
                kernel: 1,
                instructions: 4
            }
        );
        assert_eq!(parse("no blocks here\n"), Blocks::default());
    }
}
