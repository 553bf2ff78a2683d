//! One GDT and one TSS per CPU. The TSS carries the IST stack pointers, so each
//! CPU needs its own: a shared TSS would make CPUs share IST stacks.

use x86_64::instructions::segmentation::{CS, DS, ES, FS, GS, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::Descriptor;
use x86_64::structures::gdt::SegmentSelector;

use super::percpu::PerCpu;

/// Ring 3's selectors, in the GDT order `load` builds (SYSRET's order).
/// Ring-0 code and data, as the GDT below lays them out (entry stubs build
/// IRET frames with them).
pub const KERNEL_CODE_SELECTOR: u64 = 0x08;
pub const KERNEL_DATA_SELECTOR: u64 = 0x10;
pub const USER_DATA_SELECTOR: u64 = 0x18 | 3;
pub const USER_CODE_SELECTOR: u64 = 0x20 | 3;

/// Builds and loads this CPU's GDT (kernel code/data, user data/code in the
/// order SYSRET expects, TSS) and reloads every segment register.
pub fn load(cpu: &'static PerCpu) {
    // SAFETY: the GDT and TSS cells belong to the running CPU (`cpu` is its own
    // slot) and are written before they are loaded; both are statics, so the
    // 'static references the CPU keeps are valid forever.
    unsafe {
        let gdt = &mut *cpu.gdt.get();
        let tss = &*cpu.tss.get();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        gdt.append(Descriptor::user_data_segment());
        gdt.append(Descriptor::user_code_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment(tss));
        (&*cpu.gdt.get()).load();
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        // Null FS/GS selectors: an IRET to ring 3 would otherwise null them
        // itself and may take the GS base (the per-CPU pointer) with it.
        FS::set_reg(SegmentSelector(0));
        GS::set_reg(SegmentSelector(0));
        load_tss(tss_sel);
    }
}
