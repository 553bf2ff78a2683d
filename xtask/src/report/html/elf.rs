//! Just enough ELF64 to find a symbol and the bytes behind it in the kernel
//! image: the symbol table, and the loadable segments that map addresses to
//! file offsets.

use anyhow::{Result, bail, ensure};

pub struct Elf<'a> {
    data: &'a [u8],
    /// (virtual address, file offset, size in the file) of each PT_LOAD.
    segments: Vec<(u64, u64, u64)>,
    /// (name, address), every defined symbol.
    symbols: Vec<(String, u64)>,
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>> {
        ensure!(
            data.get(..5) == Some(b"\x7fELF\x02"),
            "not a 64-bit ELF file"
        );
        Self::read(data).ok_or_else(|| anyhow::anyhow!("truncated or malformed ELF file"))
    }

    fn read(d: &'a [u8]) -> Option<Elf<'a>> {
        let (phoff, shoff) = (u64_at(d, 0x20)? as usize, u64_at(d, 0x28)? as usize);
        let (phentsize, phnum) = (u16_at(d, 0x36)? as usize, u16_at(d, 0x38)? as usize);
        let (shentsize, shnum) = (u16_at(d, 0x3a)? as usize, u16_at(d, 0x3c)? as usize);
        let mut segments = Vec::new();
        for i in 0..phnum {
            let ph = phoff + i * phentsize;
            if u32_at(d, ph)? == 1 {
                segments.push((
                    u64_at(d, ph + 0x10)?,
                    u64_at(d, ph + 8)?,
                    u64_at(d, ph + 0x20)?,
                ));
            }
        }
        let mut symbols = Vec::new();
        for i in 0..shnum {
            let sh = shoff + i * shentsize;
            if u32_at(d, sh + 4)? != 2 {
                continue; // SHT_SYMTAB only
            }
            let (off, size) = (
                u64_at(d, sh + 0x18)? as usize,
                u64_at(d, sh + 0x20)? as usize,
            );
            let link = u32_at(d, sh + 0x28)? as usize;
            let strsh = shoff + link * shentsize;
            let stroff = u64_at(d, strsh + 0x18)? as usize;
            for at in (off..off + size).step_by(24) {
                let name = u32_at(d, at)? as usize;
                let shndx = u16_at(d, at + 6)?;
                let value = u64_at(d, at + 8)?;
                if shndx == 0 || name == 0 {
                    continue;
                }
                let bytes = d.get(stroff + name..)?;
                let end = bytes.iter().position(|&b| b == 0)?;
                symbols.push((String::from_utf8_lossy(&bytes[..end]).into_owned(), value));
            }
        }
        Some(Elf {
            data: d,
            segments,
            symbols,
        })
    }

    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, a)| a)
    }

    /// The address of the next symbol after `address` (where a stub whose
    /// size the assembler did not record ends).
    pub fn next_symbol_after(&self, address: u64) -> Option<u64> {
        self.symbols
            .iter()
            .map(|&(_, a)| a)
            .filter(|&a| a > address)
            .min()
    }

    /// The file's bytes at `address`, up to `len` (fewer at a segment's end).
    pub fn bytes(&self, address: u64, len: u64) -> Result<&'a [u8]> {
        for &(vaddr, offset, filesz) in &self.segments {
            if (vaddr..vaddr + filesz).contains(&address) {
                let start = (offset + address - vaddr) as usize;
                let end = start + len.min(vaddr + filesz - address) as usize;
                if let Some(bytes) = self.data.get(start..end) {
                    return Ok(bytes);
                }
            }
        }
        bail!("address {address:#x} is in no loaded segment")
    }
}
