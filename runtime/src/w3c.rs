//! W3C Trace Context (`traceparent`) and `X-Request-ID`: strict parsing of what comes in, and formatting of
//! what goes out. Nothing here panics, whatever the input.

use std::fmt;

use crate::trace_id::TraceId;

/// A 64-bit span ID (the `parent-id` of a `traceparent`), never zero.
///
/// ```
/// let id = observe::SpanId::generate();
/// assert_eq!(id.to_string().len(), 16);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(std::num::NonZeroU64);

impl SpanId {
    /// A new random span ID.
    ///
    /// ```
    /// assert_ne!(observe::SpanId::generate(), observe::SpanId::generate());
    /// ```
    pub fn generate() -> SpanId {
        // A v4 UUID has six fixed bits, four in its high half and two in its low half, at other places: the
        // halves XORed give 64 random bits.
        let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
        let random = high ^ low;
        SpanId(std::num::NonZeroU64::new(random).unwrap_or(std::num::NonZeroU64::MIN))
    }

    /// Builds a span ID from its value; `None` for zero.
    ///
    /// ```
    /// assert!(observe::SpanId::from_u64(0).is_none());
    /// ```
    pub const fn from_u64(value: u64) -> Option<SpanId> {
        match std::num::NonZeroU64::new(value) {
            Some(v) => Some(SpanId(v)),
            None => None,
        }
    }

    /// The 64-bit value.
    ///
    /// ```
    /// assert_eq!(observe::SpanId::from_u64(7).unwrap().as_u64(), 7);
    /// ```
    pub const fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0.get())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// The trace flags version `00` defines: sampled and random trace ID.
const KNOWN_FLAGS: u8 = 0x03;

/// A parsed `traceparent` header: `00-<trace-id>-<parent-id>-<flags>`.
///
/// Parsing follows the W3C Trace Context rules exactly: lowercase hex only, version `ff` invalid, all-zero
/// IDs invalid, exact length for version `00`, and for later versions extra fields after a `-` allowed (the
/// first four are read). Of the flags, the ones version `00` defines are kept (`01` sampled, `02` random
/// trace ID); the others are reserved, and set to zero as the standard asks of whoever passes the trace on.
///
/// ```
/// use observe::TraceParent;
///
/// let parsed = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(parsed.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(parsed.sampled());
/// assert_eq!(parsed.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
///
/// assert!(TraceParent::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
/// assert!(TraceParent::parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none());
///
/// // Reserved flags are not passed on.
/// let reserved = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff").unwrap();
/// assert_eq!(reserved.flags, 0x03);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace ID.
    pub trace_id: TraceId,
    /// The caller's span (`parent-id`).
    pub parent_id: SpanId,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` if it breaks any rule.
    ///
    /// ```
    /// assert!(observe::TraceParent::parse("garbage").is_none());
    /// ```
    pub fn parse(value: &str) -> Option<TraceParent> {
        let bytes = value.as_bytes();
        if bytes.len() < 55 {
            return None;
        }
        let version = hex_u8(&bytes[0..2])?;
        if version == 0xff {
            return None;
        }
        if version == 0 && bytes.len() != 55 {
            return None;
        }
        if version > 0 && bytes.len() > 55 && bytes[55] != b'-' {
            return None;
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id = TraceId::parse_hex(value.get(3..35)?)?;
        let parent_id = SpanId::from_u64(hex_u64(&bytes[36..52])?)?;
        let flags = hex_u8(&bytes[53..55])? & KNOWN_FLAGS;
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Whether the caller sampled the trace (flag bit 0).
    ///
    /// ```
    /// let p = observe::TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    /// assert!(!p.sampled());
    /// ```
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

impl TraceParent {
    /// The header's text, `00-<trace-id>-<parent-id>-<flags>`, in a stack buffer (no allocation).
    pub(crate) fn to_bytes(self) -> [u8; 55] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        out[3..35].copy_from_slice(&self.trace_id.to_hex());
        out[36..52].copy_from_slice(&crate::trace_id::hex_digits(self.parent_id.0.get()));
        out[53] = DIGITS[usize::from(self.flags >> 4)];
        out[54] = DIGITS[usize::from(self.flags & 0xf)];
        out
    }
}

impl fmt::Display for TraceParent {
    /// Always version `00`, whatever version was parsed (we speak version 00).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The buffer only holds ASCII.
        f.write_str(std::str::from_utf8(&self.to_bytes()).map_err(|_| fmt::Error)?)
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_u8(bytes: &[u8]) -> Option<u8> {
    let [hi, lo] = bytes else { return None };
    Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?)
}

fn hex_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != 16 {
        return None;
    }
    bytes
        .iter()
        .try_fold(0u64, |acc, &b| Some(acc << 4 | u64::from(hex_digit(b)?)))
}

/// The longest `X-Request-ID` accepted.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether `value` is an acceptable `X-Request-ID`: 1 to 128 characters of `[A-Za-z0-9._-]`. Anything else
/// (CR/LF, spaces, quotes, non-ASCII, overlong values) is rejected: it would let a client forge log lines or
/// blow up log storage.
///
/// ```
/// assert!(observe::valid_request_id("req-42.a_b"));
/// assert!(!observe::valid_request_id("req\r\nINFO forged line"));
/// assert!(!observe::valid_request_id(""));
/// ```
pub fn valid_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The trace ID an `X-Request-ID` stands for: the ID itself when it is 32 hex digits or a UUID (any case),
/// otherwise a 128-bit hash of it, so that every service that sees the same request ID derives the same trace
/// ID. `None` when the value is not a valid request ID (see [`valid_request_id`]).
///
/// ```
/// use observe::trace_id_from_request_id;
/// assert_eq!(
///     trace_id_from_request_id("4BF92F35-77B3-4DA6-A3CE-929D0E0E4736").unwrap().to_string(),
///     "4bf92f3577b34da6a3ce929d0e0e4736"
/// );
/// assert_eq!(trace_id_from_request_id("req-42"), trace_id_from_request_id("req-42"));
/// assert!(trace_id_from_request_id("bad value").is_none());
/// ```
pub fn trace_id_from_request_id(value: &str) -> Option<TraceId> {
    if !valid_request_id(value) {
        return None;
    }
    let hex: String = value.chars().filter(|c| *c != '-').collect();
    let is_uuid = value.len() == 36
        && value.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if (value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())) || is_uuid {
        if let Some(id) = TraceId::parse_hex(&hex.to_ascii_lowercase()) {
            return Some(id);
        }
    }
    // FNV-1a, twice with different offsets, for 128 bits; each half finished with MurmurHash3's fmix64 so
    // that similar request IDs (`checkout-1`, `checkout-2`) give trace IDs that do not look alike.
    let fmix = |mut h: u64| {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    };
    let hash = |offset: u64| {
        fmix(
            value
                .bytes()
                .fold(offset, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)),
        )
    };
    let value = (u128::from(hash(0xcbf2_9ce4_8422_2325)) << 64) | u128::from(hash(0x6c62_272e_07bb_0142));
    TraceId::from_u128(value).or(TraceId::from_u128(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// Every bit of a span ID is random: none is the UUID's fixed version or variant bits.
    #[test]
    fn span_ids_have_64_random_bits() {
        let (mut ones, mut zeros) = (0u64, 0u64);
        for _ in 0..256 {
            let id = SpanId::generate().0.get();
            ones |= id;
            zeros |= !id;
        }
        assert_eq!((ones, zeros), (u64::MAX, u64::MAX), "a bit that never changed");
    }

    #[test]
    fn reserved_flags_are_not_passed_on() {
        let with = |flags: &str| TraceParent::parse(&format!("{}{flags}", &VALID[..53])).unwrap();
        assert_eq!(with("ff").flags, 0x03);
        assert_eq!(with("fc").flags, 0x00);
        assert_eq!(with("01").to_string(), VALID);
        assert!(with("02").flags == 0x02 && !with("02").sampled());
    }

    #[test]
    fn spec_examples() {
        let p = TraceParent::parse(VALID).unwrap();
        assert_eq!(p.parent_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(p.flags, 1);
        let unsampled = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn rejects_what_the_spec_rejects() {
        for bad in [
            "",
            "00",
            // uppercase hex
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // version ff
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // all-zero IDs
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // version 00 must be exactly 55 characters
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            // wrong separators / lengths
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            // later version: what follows the flags must start with '-'
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            // non-ASCII at a boundary
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn later_versions_allow_extra_fields() {
        let p = TraceParent::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds")
            .unwrap();
        // 09: sampled, and a flag version 00 reserves (dropped).
        assert_eq!(p.flags, 1);
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some());
        // Formatting speaks version 00 and keeps the flags it defines.
        assert_eq!(p.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    }

    #[test]
    fn formatting_round_trips() {
        for text in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            "00-00000000000000000000000000000001-ffffffffffffffff-00",
            "00-ffffffffffffffffffffffffffffffff-0000000000000001-02",
        ] {
            let parsed = TraceParent::parse(text).unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(&parsed.to_bytes()[..], text.as_bytes());
        }
    }

    #[test]
    fn request_ids() {
        assert!(valid_request_id(&"a".repeat(128)));
        assert!(!valid_request_id(&"a".repeat(129)));
        for bad in ["a b", "a\nb", "a\rb", "a\"b", "é", "a/b", "a:b"] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
        assert_eq!(
            trace_id_from_request_id("4bf92f3577b34da6a3ce929d0e0e4736")
                .unwrap()
                .to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_ne!(trace_id_from_request_id("req-1"), trace_id_from_request_id("req-2"));
        assert!(trace_id_from_request_id("00000000000000000000000000000000").is_some());
    }
}
