//! Short, fixed-capacity text for failure messages and result details.
//!
//! A failing test must always be able to say why, even when its message is
//! longer than the buffer, so formatting truncates instead of failing.

use core::fmt::{self, Write};

/// Bytes kept of a message; a result line with it and its details still fits `LINE_MAX`.
pub const MESSAGE_LEN: usize = 320;

pub type Message = heapless::String<MESSAGE_LEN>;

/// Formats into a [`Message`], cutting at a character boundary when full and
/// marking the cut with `...`.
pub fn message(args: fmt::Arguments<'_>) -> Message {
    let mut out = Truncating {
        text: Message::new(),
        full: false,
    };
    // Truncating::write_str never fails; a Display impl that errors just ends early.
    let _ = out.write_fmt(args);
    out.text
}

struct Truncating {
    text: Message,
    full: bool,
}

impl Write for Truncating {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const MARK: &str = "...";
        for c in s.chars() {
            if self.full {
                return Ok(());
            }
            // Keep room for the mark so a reader knows the text was cut.
            if self.text.len() + c.len_utf8() + MARK.len() > MESSAGE_LEN {
                self.full = true;
                let _ = self.text.push_str(MARK);
                return Ok(());
            }
            let _ = self.text.push(c);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_kept_whole() {
        assert_eq!(
            message(format_args!("cpu {} hung", 3)).as_str(),
            "cpu 3 hung"
        );
    }

    #[test]
    fn long_messages_are_cut_and_marked() {
        let long = "é".repeat(200);
        let m = message(format_args!("{long}"));
        assert!(m.len() <= MESSAGE_LEN);
        assert!(m.ends_with("..."));
        assert!(m.starts_with("éé"));
    }
}
