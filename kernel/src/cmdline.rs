//! The kernel command line: space-separated `key=value` words. `kernel_main`
//! keeps this boot's copy here ([`save`]) for the layers that read it later.

use testkit::Selection;

/// This boot's command line, saved once by `kernel_main`.
static BOOT: spin::Once<heapless::String<4096>> = spin::Once::new();

/// Keeps this boot's command line (the first call wins; text past 4 KiB is cut
/// at a character boundary, as the doors cut it).
pub fn save(text: &str) {
    BOOT.call_once(|| {
        let mut saved = heapless::String::new();
        for ch in text.chars() {
            if saved.push(ch).is_err() {
                break;
            }
        }
        saved
    });
}

/// Whether this boot's command line skips `test` (`skip=` from the runner):
/// how a test sees that the runner resumed after a crash.
pub fn skips(test: &str) -> bool {
    let text = BOOT.get().map_or("", |s| s.as_str());
    Selection::parse(text).is_ok_and(|s| s.is_skipped(test))
}

pub struct Cmdline<'a>(&'a str);

impl<'a> Cmdline<'a> {
    pub fn new(text: &'a str) -> Self {
        Self(text)
    }

    /// The value of the last `key=value` word with this key.
    pub fn value(&self, key: &str) -> Option<&'a str> {
        self.0
            .split_ascii_whitespace()
            .filter_map(|word| word.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .next_back()
    }
}
