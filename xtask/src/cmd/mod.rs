//! The subcommands, one file (or folder) each: what the user asked for, turned
//! into calls on the rooms below. Nothing else in xtask imports `cmd`, and one
//! subcommand never imports another; `opts` holds the options they share.

pub mod bench;
pub mod divergence;
pub mod image;
pub mod lava;
pub mod opts;
pub mod results;
pub mod run;
pub mod test;
pub mod usb;
