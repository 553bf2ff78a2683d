//! Which mutant of the entry code this kernel is (`cargo xtask mutants`):
//! `ISTORM_MUTANT=<name>` in the build's environment, looked up in
//! `testkit::mutants::CATALOG`. The real build has no such variable and
//! `ACTIVE` is 0: every mutant's `.if` in the stubs and `if` in the phases is
//! then false at compile time, and the machine code is that of a kernel
//! without this module (compared with `objdump -d`, see the README).

pub use testkit::mutants as catalog;

/// The mutant compiled in (0: none).
pub const ACTIVE: u32 = catalog::id(option_env!("ISTORM_MUTANT"));
const _: () = assert!(
    ACTIVE != u32::MAX,
    "ISTORM_MUTANT names no mutant of testkit::mutants::CATALOG"
);

/// Whether this kernel is mutant `id`.
pub const fn is(id: u32) -> bool {
    ACTIVE == id
}

/// `1` when this kernel is mutant `id`, else `0`: an operand for GAS `.if`.
pub const fn flag(id: u32) -> u32 {
    is(id) as u32
}

/// POP_GPRS's defect, for its `swap` operand: 0 none, 1 r8 and r9 swapped,
/// 2 r8 restored from r9's slot.
pub const fn pop_gprs() -> u32 {
    flag(catalog::POP_GPRS_SWAP_R8_R9) + 2 * flag(catalog::POP_GPRS_R8_FROM_R9)
}
