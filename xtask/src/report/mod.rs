//! What the user reads: the console and its progress bars (`console`), the
//! `--json` records (`jsonlog`), JUnit XML (`junit`), and pictures with their
//! QR codes (`picture`). The bottom room: imports nothing else of xtask.

pub mod console;
pub mod jsonlog;
pub mod junit;
pub mod picture;
pub mod summary;
pub mod tally;
pub mod verdict;
