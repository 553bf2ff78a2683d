//! The real-mode trampoline that an AP runs after INIT-SIPI-SIPI (PVH door only;
//! Limine starts its APs itself).
//!
//! A SIPI with vector 0x08 starts the AP at CS:IP = 0x0800:0000, so the code is
//! copied to physical 0x8000 and addresses inside it are `TRAMPOLINE_BASE + offset`.
//! The AP goes from real mode straight to long mode (PAE, EFER.LME, then CR0.PE|PG
//! together), loads a tiny GDT of its own and jumps to the 64-bit entry whose
//! stack, argument and CR3 the BSP wrote into the parameter block at the end.

use core::arch::global_asm;

/// Physical address the trampoline is copied to; also the SIPI vector << 12.
pub const TRAMPOLINE_BASE: u64 = 0x8000;

/// The block the BSP fills in before each SIPI; layout fixed by the asm below.
#[repr(C)]
pub struct TrampolineParams {
    pub cr3: u64,
    pub stack_top: u64,
    pub entry: u64,
    pub arg: u64,
}
const _: () = assert!(core::mem::size_of::<TrampolineParams>() == 4 * 8);

global_asm!(
    r#"
    .set TBASE, 0x8000
    .set PARAMS, 0xf00                 /* fixed offsets: Intel-syntax memory operands */
    .set GDT, 0xf20                    /* take one symbol, so no label differences */
    .set GDT_PTR, 0xf38
    .pushsection .rodata.ap_trampoline, "a"
    .global ap_trampoline_start
    .global ap_trampoline_params
    .global ap_trampoline_end
    .code16
ap_trampoline_start:
    cli
    cld
    xor ax, ax
    mov ds, ax                         /* absolute addressing: DS = 0 */
    mov eax, dword ptr [TBASE + PARAMS]
    mov cr3, eax                       /* the BSP's page tables (below 4 GiB) */
    mov eax, cr4
    or eax, 0x20                       /* PAE */
    mov cr4, eax
    mov ecx, 0xc0000080                /* IA32_EFER.LME */
    rdmsr
    or eax, 0x100
    wrmsr
    lgdt [TBASE + GDT_PTR]
    mov eax, cr0
    or eax, 0x80000001                 /* PE and PG at once: straight to long mode */
    mov cr0, eax
    .byte 0x66, 0xea                   /* ljmp 0x08:tramp_long (32-bit offset) */
    .long TBASE + (tramp_long - ap_trampoline_start)
    .word 0x08

    .code64
tramp_long:
    mov eax, 0x10
    mov ds, eax
    mov es, eax
    mov ss, eax
    mov rsp, qword ptr [TBASE + PARAMS + 8]
    mov rdi, qword ptr [TBASE + PARAMS + 24]
    mov rax, qword ptr [TBASE + PARAMS + 16]
    xor ebp, ebp
    jmp rax

    .org PARAMS
ap_trampoline_params:
    .skip 32                           /* TrampolineParams */
    .org GDT
    .quad 0
    .quad 0x00af9a000000ffff           /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff           /* 0x10: data */
    .org GDT_PTR
    .word 23
    .long TBASE + GDT
ap_trampoline_end:
    .popsection
"#
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_params: u8;
    static ap_trampoline_end: u8;
}

/// Copies the trampoline to `TRAMPOLINE_BASE` (through `hhdm_offset`) and fills its
/// parameter block for the next AP.
///
/// # Safety
/// Physical page 0x8000 must be free RAM, mapped writable at `hhdm_offset + 0x8000`,
/// and no AP may be running the trampoline while it is rewritten.
pub unsafe fn install(hhdm_offset: u64, params: TrampolineParams) {
    let start = &raw const ap_trampoline_start;
    // SAFETY: the three symbols delimit one contiguous blob in .rodata.
    let (len, params_off) = unsafe {
        (
            (&raw const ap_trampoline_end).offset_from(start) as usize,
            (&raw const ap_trampoline_params).offset_from(start) as usize,
        )
    };
    let dest = (hhdm_offset + TRAMPOLINE_BASE) as *mut u8;
    // SAFETY: the caller guarantees the destination page is free and mapped; the
    // blob is far smaller than a page; the parameter block is 8-byte aligned.
    unsafe {
        core::ptr::copy_nonoverlapping(start, dest, len);
        core::ptr::write_volatile(dest.add(params_off).cast::<TrampolineParams>(), params);
    }
}
