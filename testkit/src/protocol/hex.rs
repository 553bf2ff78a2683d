//! Addresses and register values on the wire, as `"0x..."` strings.
//!
//! People read the serial log too, and `"rip":"0xffffffff80012345"` is
//! searchable against a disassembly where `18446744071562134341` is not. It
//! also keeps 64-bit values exact for JSON readers that use doubles.

use core::fmt;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hex(pub u64);

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // "0x" and 16 digits at most; formatted on the stack, no heap.
        let mut buf = [0u8; 18];
        buf[..2].copy_from_slice(b"0x");
        let digits = 16 - (self.0.leading_zeros() as usize / 4).min(15);
        for i in 0..digits {
            let nibble = (self.0 >> (4 * (digits - 1 - i))) & 0xf;
            buf[2 + i] = b"0123456789abcdef"[nibble as usize];
        }
        // Only ASCII was written, so this cannot fail; fall back rather than panic.
        let text = core::str::from_utf8(&buf[..2 + digits]).unwrap_or("0x?");
        serializer.serialize_str(text)
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(HexVisitor)
    }
}

struct HexVisitor;

impl Visitor<'_> for HexVisitor {
    type Value = Hex;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a hex string like \"0x1f\" or an unsigned integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Hex, E> {
        v.strip_prefix("0x")
            .filter(|digits| !digits.is_empty() && !digits.starts_with('+'))
            .and_then(|digits| u64::from_str_radix(digits, 16).ok())
            .map(Hex)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    // Plain numbers are accepted too, so hand-written test lines stay easy.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Hex, E> {
        Ok(Hex(v))
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    fn encode(v: u64) -> std::string::String {
        let mut buf = [0u8; 32];
        let n = serde_json_core::to_slice(&Hex(v), &mut buf).unwrap();
        std::string::String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn encodes_without_leading_zeros() {
        assert_eq!(encode(0), "\"0x0\"");
        assert_eq!(encode(0x1f), "\"0x1f\"");
        assert_eq!(encode(u64::MAX), "\"0xffffffffffffffff\"");
        assert_eq!(encode(0xffff_ffff_8001_2345), "\"0xffffffff80012345\"");
    }

    #[test]
    fn decodes_strings_and_numbers_and_refuses_junk() {
        let de = |s: &str| serde_json::from_str::<Hex>(s).ok();
        assert_eq!(
            de("\"0xffffffff80012345\""),
            Some(Hex(0xffff_ffff_8001_2345))
        );
        assert_eq!(de("31"), Some(Hex(31)));
        for junk in [
            "\"1f\"",
            "\"0x\"",
            "\"0x+1\"",
            "\"0x10000000000000000\"",
            "-1",
            "\"0xg\"",
        ] {
            assert_eq!(de(junk), None, "{junk}");
        }
        for v in [0, 1, 0xdead_beef, u64::MAX] {
            assert_eq!(de(&encode(v)), Some(Hex(v)));
        }
    }
}
