//! The run's summary on the wire: the QR code's text (testkit's `summary`
//! format) as `qr` events, cut into parts so that each event fits a line
//! whatever the text holds.
//!
//! A summary is at most as long as the biggest QR code the kernel draws
//! (1273 bytes at version 25) and would fit one line as printable ASCII, but
//! JSON escapes a quote to two bytes and a control character to six: a
//! 1200-byte text could need 7200. A part of [`QR_PART`] bytes fits
//! [`LINE_MAX`](super::LINE_MAX) even when every byte escapes to six (tested),
//! so the kernel never has a summary it cannot send.

use super::Event;

/// The longest text one `qr` event carries, in bytes.
pub const QR_PART: usize = 320;

/// The `qr` events that carry `text`, in order; an empty text is one empty
/// part. Cuts fall on character boundaries, so a part may be up to three
/// bytes shorter than [`QR_PART`].
pub fn qr_parts(text: &str) -> QrParts<'_> {
    let mut parts: u32 = 1;
    let mut rest = text;
    while rest.len() > QR_PART {
        rest = &rest[cut(rest)..];
        parts = parts.saturating_add(1);
    }
    QrParts {
        rest: text,
        part: 0,
        parts,
    }
}

/// Where the part at the start of `rest` ends.
fn cut(rest: &str) -> usize {
    let mut end = rest.len().min(QR_PART);
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// See [`qr_parts`].
#[derive(Clone, Debug)]
pub struct QrParts<'a> {
    rest: &'a str,
    part: u32,
    parts: u32,
}

impl<'a> Iterator for QrParts<'a> {
    type Item = Event<&'a str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.part == self.parts {
            return None;
        }
        self.part += 1;
        let (text, rest) = self.rest.split_at(cut(self.rest));
        self.rest = rest;
        Some(Event::Qr {
            part: self.part,
            parts: self.parts,
            text,
        })
    }
}

#[cfg(feature = "std")]
impl super::Transcript {
    /// The summary the boot sent in `qr` events, joined; `None` unless every
    /// part came, once and in order (the last complete set if there are more).
    pub fn summary_text(&self) -> Option<std::string::String> {
        let mut complete = None;
        // The parts so far of the set being joined: (its part count, text).
        let mut joining: Option<(u32, std::string::String)> = None;
        let mut next = 1;
        for (_, event) in self.events() {
            let super::OwnedEvent::Qr { part, parts, text } = event else {
                continue;
            };
            if *part == 1 {
                joining = Some((*parts, std::string::String::new()));
                next = 1;
            }
            match &mut joining {
                Some((count, joined)) if *part == next && *parts == *count => {
                    joined.push_str(text);
                    next += 1;
                    if *part == *parts {
                        complete = joining.take().map(|(_, joined)| joined);
                    }
                }
                // A part lost, repeated or from another set: wait for a new part 1.
                _ => joining = None,
            }
        }
        complete
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::protocol::{LINE_MAX, encode_line, line_of, parse_stream};
    use std::string::String;
    use std::vec::Vec;

    fn serial(events: impl IntoIterator<Item = Event<String>>) -> String {
        events
            .into_iter()
            .map(|event| line_of(&event).expect("a part fits a line"))
            .collect()
    }

    fn owned(text: &str) -> Vec<Event<String>> {
        qr_parts(text).map(|e| e.map_str(String::from)).collect()
    }

    #[test]
    fn the_worst_part_fits_a_line() {
        // Every byte a control character (six bytes escaped), every number at
        // its widest: the longest `qr` line there can be.
        let text = "\u{1}".repeat(QR_PART);
        let event = Event::Qr {
            part: u32::MAX,
            parts: u32::MAX,
            text: text.as_str(),
        };
        let mut buf = [0u8; LINE_MAX];
        let n = encode_line(&event, &mut buf).expect("fits LINE_MAX");
        assert!(n > 6 * QR_PART, "{n}");
        // One byte more per part would still fit, but not 20 more.
        let longer = "\u{1}".repeat(QR_PART + 20);
        let event = Event::Qr {
            part: u32::MAX,
            parts: u32::MAX,
            text: longer.as_str(),
        };
        assert!(encode_line(&event, &mut buf).is_err());
    }

    #[test]
    fn any_summary_travels_in_parts_and_joins_back() {
        let quotes = "\"\\".repeat(700);
        let mixed = "IST1|cpu=é€😀|".repeat(90);
        for text in ["", "IST1|x", quotes.as_str(), mixed.as_str()] {
            let events = owned(text);
            let last = events.len() - 1;
            for (i, event) in events.iter().enumerate() {
                let Event::Qr { text: part, .. } = event else {
                    panic!("{event:?}")
                };
                assert!(part.len() <= QR_PART, "{}", part.len());
                assert!(i == last || part.len() + 3 >= QR_PART, "{}", part.len());
            }
            let joined = parse_stream(serial(events).as_bytes()).summary_text();
            assert_eq!(joined.as_deref(), Some(text));
        }
    }

    #[test]
    fn a_summary_with_a_part_lost_is_no_summary() {
        let text = "x".repeat(3 * QR_PART + 1);
        let mut events = owned(&text);
        assert_eq!(events.len(), 4);
        let all = serial(events.clone());
        assert_eq!(
            parse_stream(all.as_bytes()).summary_text(),
            Some(text.clone())
        );
        events.remove(1);
        let lost = serial(events.clone());
        assert_eq!(parse_stream(lost.as_bytes()).summary_text(), None);
        // A later complete set still counts; a repeated part breaks a set.
        let again = lost + &serial(owned("IST1|y"));
        assert_eq!(
            parse_stream(again.as_bytes()).summary_text().as_deref(),
            Some("IST1|y")
        );
        let mut doubled = owned(&text);
        doubled.insert(2, doubled[1].clone());
        assert_eq!(
            parse_stream(serial(doubled).as_bytes()).summary_text(),
            None
        );
        assert_eq!(parse_stream(b"qr: IST1|x\n").summary_text(), None);
    }
}
