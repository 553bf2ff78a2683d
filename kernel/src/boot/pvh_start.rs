//! The PVH front door's first instructions: QEMU (`-kernel`) enters
//! `pvh_entry32` in 32-bit protected mode with paging off, flat segments and
//! EBX = physical address of the `hvm_start_info` block. There is no stack.
//!
//! This code builds the boot page tables, switches to long mode and calls
//! `crate::boot::pvh::pvh_main(start_info_phys)` in the higher half:
//!
//!   PML4[0]   -> identity map of 0..4 GiB (the switch itself runs at physical
//!                addresses; AP trampolines need it too)
//!   PML4[256] -> the same 4 GiB at 0xffff800000000000 (the HHDM, as Limine does)
//!   PML4[511] -> 0..2 GiB at 0xffffffff80000000 (the kernel image, code-model=kernel)
//!
//! All three share four page directories of 2 MiB pages (4 x 512 entries).

use core::arch::global_asm;

global_asm!(
    r#"
    .set KVMA, 0xffffffff80000000

    /* The Xen PHYS32_ENTRY note (type 18) tells QEMU where the 32-bit entry is. */
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4                            /* name size: "Xen\0" */
    .long 4                            /* descriptor size: one 32-bit address */
    .long 18                           /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_entry32 - KVMA
    .balign 4
    .popsection

    .pushsection .bss.pvh_boot, "aw", @nobits
    .balign 4096
pvh_pml4:      .skip 4096
pvh_pdpt_low:  .skip 4096
pvh_pdpt_high: .skip 4096
pvh_pd:        .skip 4 * 4096
    .balign 16
pvh_stack:     .skip 65536             /* the BSP's stack until the end of the run */
pvh_stack_top:
    .popsection

    .pushsection .rodata.pvh_gdt, "a"
    .balign 16
pvh_gdt:
    .quad 0
    .quad 0x00af9a000000ffff           /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff           /* 0x10: data, DPL 0 */
pvh_gdt_ptr:
    .word pvh_gdt_ptr - pvh_gdt - 1
    .long pvh_gdt - KVMA               /* physical: paging is still off when loaded */
    .popsection

    .pushsection .text.boot32, "ax"
    .code32
    .global pvh_entry32
pvh_entry32:
    cli
    cld
    mov esi, ebx                       /* keep start_info for pvh_main */
    lea esp, [pvh_stack_top - KVMA]

    /* 2048 PD entries of 2 MiB: present | writable | page size */
    lea edi, [pvh_pd - KVMA]
    xor ecx, ecx
2:  mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [edi + ecx * 8], eax
    mov dword ptr [edi + ecx * 8 + 4], 0
    inc ecx
    cmp ecx, 2048
    jb 2b

    /* low PDPT: four PDs = 4 GiB */
    lea edi, [pvh_pdpt_low - KVMA]
    lea eax, [pvh_pd - KVMA + 3]
    mov [edi], eax
    add eax, 4096
    mov [edi + 8], eax
    add eax, 4096
    mov [edi + 16], eax
    add eax, 4096
    mov [edi + 24], eax

    /* high PDPT: entries 510 and 511 = physical 0..2 GiB at -2 GiB */
    lea edi, [pvh_pdpt_high - KVMA]
    lea eax, [pvh_pd - KVMA + 3]
    mov [edi + 510 * 8], eax
    add eax, 4096
    mov [edi + 511 * 8], eax

    lea edi, [pvh_pml4 - KVMA]
    lea eax, [pvh_pdpt_low - KVMA + 3]
    mov [edi], eax                     /* identity */
    mov [edi + 256 * 8], eax           /* HHDM */
    lea eax, [pvh_pdpt_high - KVMA + 3]
    mov [edi + 511 * 8], eax           /* kernel image */
    mov cr3, edi

    mov eax, cr4
    or eax, 0x20                       /* PAE: required for long mode */
    mov cr4, eax
    mov ecx, 0xc0000080                /* IA32_EFER */
    rdmsr
    or eax, 0x100                      /* LME */
    wrmsr
    mov eax, cr0
    or eax, 0x80000001                 /* PG | PE: long mode becomes active */
    mov cr0, eax

    lgdt [pvh_gdt_ptr - KVMA]
    push 0x08                          /* far return into the 64-bit code segment */
    lea eax, [pvh_entry64_low - KVMA]
    push eax
    retf

    .code64
pvh_entry64_low:
    mov eax, 0x10
    mov ds, eax
    mov es, eax
    mov ss, eax
    xor eax, eax
    mov fs, eax
    mov gs, eax
    movabs rax, offset pvh_entry64_high
    jmp rax                            /* leave the identity map for the higher half */
pvh_entry64_high:
    movabs rax, offset pvh_stack_top
    mov rsp, rax
    xor ebp, ebp                       /* end of the frame-pointer chain */
    mov edi, esi                       /* pvh_main(start_info_phys) */
    call {pvh_main}
    ud2
    .popsection
"#,
    pvh_main = sym super::pvh::pvh_main,
);
