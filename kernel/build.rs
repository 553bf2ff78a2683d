//! Hands the kernel's linker script to the linker: one ELF, higher-half virtual
//! addresses for Limine, low physical load addresses for PVH.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=-znoexecstack");
    println!("cargo:rerun-if-changed=linker.ld");
}
