//! The kernel command line: space-separated `key=value` words.

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
