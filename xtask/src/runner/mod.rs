//! Running the kernel's tests: boot configurations and the files each door
//! needs (`boot`), named checks and their verdicts (`suite`), the boot matrix
//! (`matrix`), one crash-surviving sequence of boots per strategy
//! (`sequence`, its rules in `recovery`). Imports `media`, `qemu` and `report`.

pub mod boot;
pub mod held_check;
pub mod image_checks;
pub mod lava_check;
pub mod matrix;
pub mod recovery;
pub mod sequence;
pub mod suite;
