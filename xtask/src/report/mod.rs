//! What the user reads: the console and its progress bars (`console`), the
//! `--json` records (`jsonlog`), JUnit XML (`junit`; its escaping, `markup`, the
//! HTML report's too), and pictures with their
//! QR codes (`picture`); results read back from any of those, a LAVA log or
//! a QR text (`finding`, `lava_results`), what silicon does per hazard
//! (`reference`) and the hazard x platform table (`divergence`), each result's
//! `platform`, the HTML report (`html`). The bottom room: imports nothing else of xtask.

pub mod console;
pub mod divergence;
pub mod evidence;
pub mod finding;
pub mod html;
pub mod jsonlog;
pub mod junit;
pub mod lava_results;
pub mod markup;
pub mod picture;
pub mod platform;
pub mod reference;
pub mod summary;
pub mod tally;
pub mod verdict;
