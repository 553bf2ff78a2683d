//! The entry stubs as instructions, from the kernel ELF (iced-x86).

use anyhow::{Context, Result};
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

use super::elf::Elf;

/// Every entry stub the report can show, by symbol, with the name a reader
/// knows it by. The one place that knows the entry code's symbols: a stub
/// renamed in `kernel/src/entry` is renamed here.
pub const STUBS: &[(&str, &str)] = &[
    ("db_stub", "#DB entry"),
    ("nmi_stub", "NMI entry"),
    ("nmi_stub_linux", "NMI entry (linux nesting)"),
];

/// The longest stub worth showing (a missing end symbol stops here).
const MAX_STUB: u64 = 4096;

#[derive(Clone, Debug, PartialEq)]
pub struct Insn {
    pub offset: u64,
    pub bytes: String,
    pub text: String,
}

/// The instructions of `symbol`, from its address to `SYMBOL_end` (the
/// entry code marks each stub's end), else to the next symbol's address.
pub fn stub(elf: &Elf, symbol: &str) -> Result<Vec<Insn>> {
    let start = elf
        .symbol(symbol)
        .with_context(|| format!("no symbol `{symbol}` in the kernel ELF"))?;
    let end = elf
        .symbol(&format!("{symbol}_end"))
        .filter(|&end| end > start)
        .or_else(|| elf.next_symbol_after(start))
        .unwrap_or(start + MAX_STUB)
        .min(start + MAX_STUB);
    let code = elf.bytes(start, end - start)?;
    Ok(decode(code, start))
}

pub fn decode(code: &[u8], address: u64) -> Vec<Insn> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    let mut out = Vec::new();
    let mut text = String::new();
    for insn in &mut decoder {
        text.clear();
        formatter.format(&insn, &mut text);
        let offset = insn.ip() - address;
        let bytes = code[offset as usize..offset as usize + insn.len()]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        out.push(Insn {
            offset,
            bytes,
            text: text.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_with_offsets_from_the_stub() {
        // push rbp; mov rbp, rsp; iretq
        let insns = decode(&[0x55, 0x48, 0x89, 0xe5, 0x48, 0xcf], 0x1000);
        let got: Vec<(u64, &str)> = insns.iter().map(|i| (i.offset, i.text.as_str())).collect();
        assert_eq!(got, [(0, "push rbp"), (1, "mov rbp,rsp"), (4, "iretq")]);
        assert_eq!(insns[1].bytes, "48 89 e5");
    }

    #[test]
    fn the_kernel_elf_has_every_listed_stub() {
        // Runs when a kernel was built (cargo xtask test builds it first).
        let path = crate::target_dir().join("x86_64-unknown-none/release/istorm");
        let Ok(data) = std::fs::read(&path) else {
            return;
        };
        let elf = Elf::parse(&data).unwrap();
        for (symbol, _) in STUBS {
            let insns = stub(&elf, symbol).unwrap();
            assert!(insns.len() > 5, "{symbol}: {insns:?}");
        }
    }
}
