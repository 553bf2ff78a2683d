//! The real-mode trampoline that an AP runs after INIT-SIPI-SIPI (PVH door only;
//! Limine starts its APs itself).
//!
//! A SIPI with vector 0x08 starts the AP at CS:IP = 0x0800:0000, so the code is
//! copied to physical 0x8000 and addresses inside it are `TRAMPOLINE_BASE + offset`.
//! The AP goes from real mode straight to long mode (PAE, EFER.LME, then CR0.PE|PG
//! together), loads a tiny GDT of its own, reads its APIC ID and looks itself up
//! in the launch table: one slot per AP (stack, entry, argument), keyed by APIC
//! ID, so the BSP can start every AP at once instead of one after the other.

use core::arch::global_asm;

use super::MAX_CPUS;

/// Physical address the trampoline is copied to; also the SIPI vector << 12.
pub const TRAMPOLINE_BASE: u64 = 0x8000;

/// One AP's launch slot; layout fixed by the asm below, which reads it.
#[repr(C)]
struct Slot {
    /// The AP's APIC ID plus one (0: the slot is free). Written last.
    key: u64,
    stack_top: u64,
    entry: u64,
    arg: u64,
}
const SLOT_BYTES: usize = 32;
const _: () = assert!(core::mem::size_of::<Slot>() == SLOT_BYTES);
/// Where the slots sit in the trampoline page; they must end before the page-table word at 0xf00.
const TABLE: usize = 0x400;
const _: () = assert!(TABLE + MAX_CPUS * SLOT_BYTES <= 0xf00);

global_asm!(
    r#"
    .set TBASE, 0x8000
    .set TABLES, 0xf00                 /* fixed offsets: Intel-syntax memory operands */
    .set GDT, 0xf20                    /* take one symbol, so no label differences */
    .set GDT_PTR, 0xf38
    .pushsection .rodata.ap_trampoline, "a"
    .global ap_trampoline_start
    .global ap_trampoline_cr3
    .global ap_trampoline_end
    .code16
ap_trampoline_start:
    cli
    cld
    xor ax, ax
    mov ds, ax                         /* absolute addressing: DS = 0 */
    mov eax, dword ptr [TBASE + TABLES]
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
    /* This CPU's APIC ID, as cpu::apic_id reads it: CPUID 0xB EDX when the
       leaf exists and names a level (EBX != 0), else CPUID 1 EBX[31:24]. */
    xor eax, eax
    cpuid
    cmp eax, 0xb
    jb 2f
    mov eax, 0xb
    xor ecx, ecx
    cpuid
    test ebx, ebx
    jz 2f
    mov esi, edx
    jmp 3f
2:
    mov eax, 1
    cpuid
    shr ebx, 24
    mov esi, ebx
3:
    inc rsi                            /* the key: APIC ID + 1 */
    mov ebx, TBASE + {table}
    mov ecx, {slots}
4:
    cmp qword ptr [rbx], rsi
    je 5f
    add rbx, {slot_bytes}
    dec ecx
    jnz 4b
6:                                     /* no slot: nobody asked for this CPU */
    cli
    hlt
    jmp 6b
5:
    mov rsp, qword ptr [rbx + 8]
    mov rdi, qword ptr [rbx + 24]
    mov rax, qword ptr [rbx + 16]
    xor ebp, ebp
    jmp rax

    .org TABLES
ap_trampoline_cr3:
    .skip 8
    .org GDT
    .quad 0
    .quad 0x00af9a000000ffff           /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff           /* 0x10: data */
    .org GDT_PTR
    .word 23
    .long TBASE + GDT
ap_trampoline_end:
    .popsection
"#,
    table = const TABLE,
    slots = const MAX_CPUS,
    slot_bytes = const SLOT_BYTES,
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_cr3: u8;
    static ap_trampoline_end: u8;
}

/// Copies the trampoline to `TRAMPOLINE_BASE` (through `hhdm_offset`) with an
/// empty launch table, and sets the page tables every AP loads.
///
/// # Safety
/// Physical page 0x8000 must be free RAM, mapped writable at `hhdm_offset + 0x8000`,
/// and no AP may be running the trampoline while it is rewritten.
pub unsafe fn install(hhdm_offset: u64, cr3: u64) {
    let start = &raw const ap_trampoline_start;
    // SAFETY: the three symbols delimit one contiguous blob in .rodata.
    let (len, cr3_off) = unsafe {
        (
            (&raw const ap_trampoline_end).offset_from(start) as usize,
            (&raw const ap_trampoline_cr3).offset_from(start) as usize,
        )
    };
    let dest = (hhdm_offset + TRAMPOLINE_BASE) as *mut u8;
    // SAFETY: the caller guarantees the destination page is free and mapped; the
    // blob (its table all zero: every slot free) is smaller than a page; the page-table
    // word is 8-byte aligned.
    unsafe {
        core::ptr::copy_nonoverlapping(start, dest, len);
        core::ptr::write_volatile(dest.add(cr3_off).cast::<u64>(), cr3);
    }
}

/// Fills the launch slot of the AP with `apic_id` (a free one, or the one it
/// had), key last, so that an AP scanning the table meanwhile never takes a
/// half-written slot. False when all `MAX_CPUS` slots belong to other CPUs.
///
/// # Safety
/// `install` ran with the same `hhdm_offset`; the AP with `apic_id` is not
/// running the trampoline now (its SIPI comes after this).
pub unsafe fn add(hhdm_offset: u64, apic_id: u32, stack_top: u64, entry: u64, arg: u64) -> bool {
    let key = u64::from(apic_id) + 1;
    let table = (hhdm_offset + TRAMPOLINE_BASE + TABLE as u64) as *mut Slot;
    for i in 0..MAX_CPUS {
        // SAFETY: slot `i` lies in the installed trampoline page (the table
        // fits below the page-table word, asserted above); keys are only written here, by the
        // BSP, and APs only read them.
        unsafe {
            let slot = table.add(i);
            let seen = core::ptr::read_volatile(&raw const (*slot).key);
            if seen != 0 && seen != key {
                continue;
            }
            let free = Slot {
                key: 0,
                stack_top,
                entry,
                arg,
            };
            core::ptr::write_volatile(slot, free);
            core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
            core::ptr::write_volatile(&raw mut (*slot).key, key);
        }
        return true;
    }
    false
}
