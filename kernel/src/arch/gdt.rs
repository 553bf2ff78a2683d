//! One GDT and one TSS per CPU. The TSS carries the IST stack pointers, so each
//! CPU needs its own: a shared TSS would make CPUs share IST stacks.

use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::Descriptor;

use super::percpu::PerCpu;

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
        load_tss(tss_sel);
    }
}
