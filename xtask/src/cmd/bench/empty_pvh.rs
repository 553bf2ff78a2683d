//! The smallest kernel QEMU's PVH door can boot, written by the host for
//! `bench boot`: an ELF whose Xen note names a 32-bit entry that writes the
//! kernel's success code to the exit port. Booted like istorm (same machine,
//! firmware and command line), it measures what QEMU's machine start, the
//! firmware and the exit cost with no kernel in them: the part of a PVH boot
//! no kernel can remove.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use testkit::exit::{ExitCode, ISA_DEBUG_EXIT_PORT};

/// Where the image is loaded (physical) and where its code starts in it.
const LOAD_ADDRESS: u64 = 0x10_0000;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const PHDRS: usize = 2;
const NOTE_OFFSET: usize = EHDR_SIZE + PHDRS * PHDR_SIZE;
/// n_namesz, n_descsz, n_type, "Xen\0", the 8-byte entry address.
const NOTE_SIZE: usize = 12 + 4 + 8;
const CODE_OFFSET: usize = NOTE_OFFSET + NOTE_SIZE;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the note QEMU reads the PVH entry from.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const EM_X86_64: u16 = 62;

/// `mov al, CODE; out PORT, al; 1: hlt; jmp 1b` (32-bit protected mode).
fn code() -> [u8; 7] {
    let port = u8::try_from(ISA_DEBUG_EXIT_PORT).expect("the exit port is below 0x100");
    [0xb0, ExitCode::Success.byte(), 0xe6, port, 0xf4, 0xeb, 0xfd]
}

/// The image's bytes.
pub fn image() -> Vec<u8> {
    let code = code();
    let size = (CODE_OFFSET + code.len()) as u64;
    let entry = LOAD_ADDRESS + CODE_OFFSET as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // ELF header: 64-bit, little-endian, version 1, executable for x86-64.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&EM_X86_64.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&entry.to_le_bytes());
    elf.extend_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [EHDR_SIZE, PHDR_SIZE, PHDRS, 64, 0, 0] {
        elf.extend_from_slice(&(half as u16).to_le_bytes());
    }
    // PT_LOAD: the whole file at LOAD_ADDRESS, read and execute.
    phdr(&mut elf, PT_LOAD, 5, 0, LOAD_ADDRESS, size, 0x1000);
    // PT_NOTE: the Xen note.
    let note_address = LOAD_ADDRESS + NOTE_OFFSET as u64;
    phdr(
        &mut elf,
        PT_NOTE,
        4,
        NOTE_OFFSET as u64,
        note_address,
        NOTE_SIZE as u64,
        4,
    );
    elf.extend_from_slice(&4u32.to_le_bytes());
    elf.extend_from_slice(&8u32.to_le_bytes());
    elf.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
    elf.extend_from_slice(b"Xen\0");
    elf.extend_from_slice(&entry.to_le_bytes());
    elf.extend_from_slice(&code);
    debug_assert_eq!(elf.len() as u64, size);
    elf
}

fn phdr(
    elf: &mut Vec<u8>,
    kind: u32,
    flags: u32,
    offset: u64,
    address: u64,
    size: u64,
    align: u64,
) {
    elf.extend_from_slice(&kind.to_le_bytes());
    elf.extend_from_slice(&flags.to_le_bytes());
    for word in [offset, address, address, size, size, align] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
}

/// Writes the image under `dir` and returns its path.
pub fn write(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("empty-pvh.elf");
    std::fs::write(&path, image()).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_the_code_and_the_code_writes_success() {
        let elf = image();
        assert_eq!(&elf[..4], b"\x7fELF");
        let word = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
        let entry = word(24);
        assert_eq!(entry, LOAD_ADDRESS + CODE_OFFSET as u64);
        // The note's descriptor follows its 12-byte header and 4-byte name.
        assert_eq!(&elf[NOTE_OFFSET + 12..NOTE_OFFSET + 16], b"Xen\0");
        assert_eq!(word(NOTE_OFFSET + 16), entry);
        let code = &elf[CODE_OFFSET..];
        assert_eq!(code[1], ExitCode::Success.byte());
        assert_eq!(u16::from(code[3]), ISA_DEBUG_EXIT_PORT);
        assert_eq!(elf.len(), CODE_OFFSET + code.len());
    }
}
