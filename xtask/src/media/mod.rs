//! What the kernel boots from: the kernel ELF (`kernel`), Limine's binaries
//! (`limine`), the ISO (`iso`), the raw disk image (`disk`) and the bootable
//! image made of it (`image`), the judgement of a USB stick before it is
//! overwritten (`sysfs`), and the write that proves itself by reading back
//! (`stick`). Imports `qemu` (its `process`, through which every external
//! tool runs) and `report`.

pub mod disk;
pub mod image;
pub mod iso;
pub mod kernel;
pub mod lava;
pub mod limine;
pub mod stick;
pub mod sysfs;
