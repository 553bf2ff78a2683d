//! Running the kernel's tests: boot configurations and the files each door
//! needs (`boot`), named checks and their verdicts (`suite`), the boot matrix
//! (`matrix`), one crash-surviving sequence of boots per strategy
//! (`sequence`, its rules in `recovery`), what `run` shows (`live`), the cores jobs share (`budget`), the HTML report opened in a
//! headless browser (`browser`). Imports `media`, `qemu` and `report`.

pub mod boot;
pub mod browser;
pub mod budget;
pub mod held_check;
pub mod image_checks;
pub mod lava_check;
pub mod live;
pub mod matrix;
pub mod mutants;
pub mod mutants_matrix;
pub mod recovery;
pub mod sequence;
pub mod suite;
