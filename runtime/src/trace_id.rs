//! Trace IDs: 128-bit identifiers shown as 32 lowercase hex digits.

use std::fmt;
use std::num::NonZeroU128;
use std::str::FromStr;

/// A 128-bit trace ID, the value that joins every log line, metric exemplar and distributed trace of one execution.
///
/// It is displayed as 32 lowercase hex digits, the form used by W3C `traceparent`, OpenTelemetry and Datadog's
/// 128-bit trace IDs. The all-zero ID is invalid (W3C) and cannot be represented.
///
/// ```
/// use observe::TraceId;
///
/// let id: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap();
/// assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!("00000000000000000000000000000000".parse::<TraceId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(NonZeroU128);

impl TraceId {
    /// Generates a new random trace ID (a UUID v4, so 122 random bits).
    ///
    /// ```
    /// let a = observe::TraceId::generate();
    /// let b = observe::TraceId::generate();
    /// assert_ne!(a, b);
    /// ```
    pub fn generate() -> TraceId {
        loop {
            if let Some(id) = NonZeroU128::new(uuid::Uuid::new_v4().as_u128()) {
                return TraceId(id);
            }
        }
    }

    /// Builds a trace ID from its 128-bit value; `None` for zero, which W3C forbids.
    ///
    /// ```
    /// assert!(observe::TraceId::from_u128(0).is_none());
    /// assert_eq!(observe::TraceId::from_u128(1).unwrap().to_string(), "00000000000000000000000000000001");
    /// ```
    pub const fn from_u128(value: u128) -> Option<TraceId> {
        match NonZeroU128::new(value) {
            Some(id) => Some(TraceId(id)),
            None => None,
        }
    }

    /// The 128-bit value.
    ///
    /// ```
    /// let id = observe::TraceId::from_u128(255).unwrap();
    /// assert_eq!(id.as_u128(), 255);
    /// ```
    pub const fn as_u128(self) -> u128 {
        self.0.get()
    }

    /// Parses exactly 32 lowercase hex digits (the W3C rule). Returns `None` for anything else, including the
    /// all-zero ID and uppercase hex.
    ///
    /// ```
    /// use observe::TraceId;
    /// assert!(TraceId::parse_hex("4bf92f3577b34da6a3ce929d0e0e4736").is_some());
    /// assert!(TraceId::parse_hex("4BF92F3577B34DA6A3CE929D0E0E4736").is_none());
    /// assert!(TraceId::parse_hex("4bf92f35").is_none());
    /// ```
    pub fn parse_hex(text: &str) -> Option<TraceId> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut value: u128 = 0;
        for &b in bytes {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            value = (value << 4) | u128::from(digit);
        }
        TraceId::from_u128(value)
    }

    /// Writes the 32 lowercase hex digits into a fixed buffer, without allocating.
    ///
    /// ```
    /// let id = observe::TraceId::from_u128(0xab).unwrap();
    /// assert_eq!(&id.to_hex()[30..], b"ab");
    /// ```
    pub fn to_hex(self) -> [u8; 32] {
        let value = self.as_u128();
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&hex_digits((value >> 64) as u64));
        out[16..].copy_from_slice(&hex_digits(value as u64));
        out
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        // The buffer only holds ASCII hex digits.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

/// The error returned when a string is not a valid trace ID (32 lowercase hex digits, not all zero).
///
/// ```
/// let err = "xyz".parse::<observe::TraceId>().unwrap_err();
/// assert_eq!(err.to_string(), "a trace ID is 32 lowercase hex digits, not all zero");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTraceIdError;

impl fmt::Display for ParseTraceIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a trace ID is 32 lowercase hex digits, not all zero")
    }
}

impl std::error::Error for ParseTraceIdError {}

impl FromStr for TraceId {
    type Err = ParseTraceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceId::parse_hex(s).ok_or(ParseTraceIdError)
    }
}

/// `value` as 16 lowercase hex digits, most significant first. Eight digits at a time in a word (no table, no
/// loop over digits): every header and log line with a trace ID formats one.
pub(crate) fn hex_digits(value: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&hex_u32((value >> 32) as u32));
    out[8..].copy_from_slice(&hex_u32(value as u32));
    out
}

fn hex_u32(value: u32) -> [u8; 8] {
    // Spread the 8 nibbles over 8 bytes, nibble k in byte k.
    let mut x = u64::from(value);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // Bytes of 10 and more carry into their bit 4 when 6 is added: those get 'a' - '0' - 10 = 39 more. No byte
    // exceeds 102, so no carry crosses bytes.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    let ascii = x + 0x3030_3030_3030_3030 + letters * 39;
    // Nibble 7 (the most significant) is in the top byte: big-endian order writes it first.
    ascii.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_32_lowercase_hex_and_round_trips() {
        for _ in 0..1000 {
            let id = TraceId::generate();
            let text = id.to_string();
            assert_eq!(text.len(), 32);
            assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            assert_eq!(text.parse::<TraceId>(), Ok(id));
        }
    }

    #[test]
    fn hex_digits_match_the_formatter() {
        let mut value = 0x0123_4567_89ab_cdefu64;
        for edge in [0, 1, 9, 10, 15, 16, u64::MAX, u64::MAX - 1, 0xa0a0_a0a0_9f9f_9f9f] {
            assert_eq!(hex_digits(edge), *format!("{edge:016x}").as_bytes());
        }
        for _ in 0..10_000 {
            value = value
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(0x632b_e59b_d9b4_e019);
            assert_eq!(hex_digits(value), *format!("{value:016x}").as_bytes());
            let id = TraceId::from_u128(u128::from(value) << 64 | u128::from(!value)).unwrap();
            assert_eq!(id.to_hex(), *format!("{:032x}", id.as_u128()).as_bytes());
        }
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "0",
            "00000000000000000000000000000000",
            "4bf92f3577b34da6a3ce929d0e0e473",
            "4bf92f3577b34da6a3ce929d0e0e47366",
            "4bf92f3577b34da6a3ce929d0e0e473g",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "4bf92f3577b34da6a3ce929d0e0e473\n",
            "4bf92f3577b34da6a3ce929d0e0e47é",
        ] {
            assert!(bad.parse::<TraceId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn leading_zeros_are_kept() {
        let id = TraceId::from_u128(0x1).unwrap();
        assert_eq!(id.to_string(), "00000000000000000000000000000001");
        let max = TraceId::from_u128(u128::MAX).unwrap();
        assert_eq!(max.to_string(), "ffffffffffffffffffffffffffffffff");
    }
}
