//! QEMU and the processes around it: starting a machine (`machine`) on an
//! accelerator (`accel`), firmware (`ovmf`) and drives (`drive`), running any
//! child process under a timeout (`process`), reading how it ended (`exit`,
//! `crash`), the serial lines the host checks (`serial`), the monitor over QMP
//! (`qmp`), the screenshot of a held run (`screenshot`), and machine checks
//! injected on the kernel's request (`inject`). Bochs is the second emulator
//! (`bochs`, chosen with `emulator`). Imports only `report`.

pub mod accel;
pub mod bochs;
pub mod crash;
pub mod drive;
pub mod emulator;
pub mod exit;
pub mod inject;
pub mod machine;
pub mod ovmf;
pub mod process;
pub mod qmp;
pub mod screenshot;
pub mod serial;
