//! The subcommands, one file (or folder) each: what the user asked for, turned
//! into calls on the rooms below. Nothing else in xtask imports `cmd`, and one
//! subcommand never imports another; `opts` holds the options they share, `setup` the set-up that `run`
//! and `test` do first.

pub mod bench;
pub mod divergence;
pub mod image;
pub mod lava;
pub mod mutants;
pub mod opts;
pub mod report;
pub mod results;
pub mod run;
pub mod setup;
pub mod test;
pub mod usb;
