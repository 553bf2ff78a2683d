//! Kernel side: one event to one line, into a caller's buffer (no heap).

use super::{Event, PREFIX};
use core::fmt;
use serde::Serialize;

/// A buffer this long holds any event with a test name up to 100 bytes and
/// printable strings up to [`MESSAGE_LEN`](crate::MESSAGE_LEN) bytes, even if
/// every character needs escaping as `\"` (tested). Control characters escape
/// to six bytes each and can overflow it: then the caller gets `BufferFull`.
pub const LINE_MAX: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer cannot hold the prefix, the JSON and the newline.
    BufferFull { capacity: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferFull { capacity } => write!(f, "event does not fit a {capacity}-byte line"),
        }
    }
}

/// Writes `PREFIX`, the event as JSON, and `\n` into `buf`; returns the length.
///
/// JSON string escaping guarantees the only newline is the final one, so
/// whatever a message contains, one event stays one line.
pub fn encode_line<S: Serialize>(event: &Event<S>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let full = EncodeError::BufferFull {
        capacity: buf.len(),
    };
    let prefix = PREFIX.as_bytes();
    let json_start = prefix.len();
    buf.get_mut(..json_start)
        .ok_or(full)?
        .copy_from_slice(prefix);
    let rest = buf.get_mut(json_start..).ok_or(full)?;
    let json_len = serde_json_core::to_slice(event, rest).map_err(|_| full)?;
    let end = json_start + json_len;
    *buf.get_mut(end).ok_or(full)? = b'\n';
    Ok(end + 1)
}

/// Host side: the line the kernel sends for `event`, as a `String` (tests and
/// tools that write a serial log). `None` when it does not fit [`LINE_MAX`].
#[cfg(feature = "std")]
pub fn line_of<S: Serialize>(event: &Event<S>) -> Option<std::string::String> {
    let mut buf = [0u8; LINE_MAX];
    let len = encode_line(event, &mut buf).ok()?;
    std::string::String::from_utf8(buf[..len].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_prefix_json_newline() {
        let mut buf = [0u8; 64];
        let n = encode_line(&Event::<&str>::Plan { count: 3 }, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"@istorm {\"type\":\"plan\",\"count\":3}\n");
    }

    #[test]
    fn too_small_buffers_are_errors_at_every_size() {
        let event = Event::<&str>::Planned {
            test: "boot::nmi_all_to_all",
            expect_crash: None,
        };
        let mut big = [0u8; 128];
        let needed = encode_line(&event, &mut big).unwrap();
        for size in 0..needed {
            let mut buf = std::vec![0u8; size];
            assert_eq!(
                encode_line(&event, &mut buf),
                Err(EncodeError::BufferFull { capacity: size })
            );
        }
        let mut exact = std::vec![0u8; needed];
        assert_eq!(encode_line(&event, &mut exact), Ok(needed));
    }

    #[test]
    fn newlines_in_strings_are_escaped() {
        let mut buf = [0u8; 128];
        let event = Event::Panic {
            test: None,
            cpu: 0,
            message: "a\nb\r\"c\"",
            rip: None,
            vector: None,
        };
        let n = encode_line(&event, &mut buf).unwrap();
        assert_eq!(buf[..n].iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(
            &buf[..n],
            b"@istorm {\"type\":\"panic\",\"cpu\":0,\"message\":\"a\\nb\\r\\\"c\\\"\"}\n"
        );
    }
}
