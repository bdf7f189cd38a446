//! Property tests of everything that parses outside input: `traceparent`, `X-Request-ID`, carriers, trace IDs
//! and SQL fingerprints. No input makes them panic; valid values round-trip.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn traceparent_never_panics(input in ".{0,80}") {
        let _ = observe::TraceParent::parse(&input);
        let _ = input.parse::<observe::Carrier>();
    }

    #[test]
    fn traceparent_like_strings_never_panic(
        version in "[0-9a-fA-F]{2}",
        trace in "[0-9a-fA-FxX]{30,34}",
        parent in "[0-9a-fA-F]{14,18}",
        flags in "[0-9a-fA-F]{1,3}",
        extra in "(-[a-z0-9]{0,8})?",
    ) {
        let input = format!("{version}-{trace}-{parent}-{flags}{extra}");
        if let Some(parsed) = observe::TraceParent::parse(&input) {
            // Whatever is accepted follows the rules.
            prop_assert!(version.bytes().all(|b| !b.is_ascii_uppercase()));
            prop_assert_ne!(version.as_str(), "ff");
            prop_assert_eq!(parsed.trace_id.to_string(), trace);
            prop_assert_eq!(parsed.parent_id.to_string(), parent);
        }
    }

    #[test]
    fn valid_traceparents_round_trip(trace in 1u128.., parent in 1u64.., flags: u8) {
        let text = format!("00-{trace:032x}-{parent:016x}-{flags:02x}");
        let parsed = observe::TraceParent::parse(&text).unwrap();
        // The flags W3C reserves are dropped (zeroed for whoever the trace goes to next).
        let known = flags & 0x03;
        prop_assert_eq!(parsed.to_string(), format!("00-{trace:032x}-{parent:016x}-{known:02x}"));
        let carrier: observe::Carrier = text.parse().unwrap();
        prop_assert_eq!(observe::Carrier::from_map(&carrier.to_map()), Some(carrier));
    }

    #[test]
    fn request_ids_never_panic_and_only_safe_ones_pass(input in "\\PC{0,200}|[\\x00-\\x7f]{0,140}") {
        let valid = observe::valid_request_id(&input);
        prop_assert_eq!(valid, observe::trace_id_from_request_id(&input).is_some());
        if valid {
            prop_assert!(input.len() <= 128);
            prop_assert!(!input.contains(['\r', '\n', ' ', '"', '=']));
        }
    }

    #[test]
    fn trace_ids_parse_only_lowercase_hex(input in ".{0,40}") {
        if let Ok(id) = input.parse::<observe::TraceId>() {
            prop_assert_eq!(id.to_string(), input);
        }
    }

    #[test]
    fn fingerprints_never_panic(sql in "\\PC{0,200}") {
        let _ = observe::query::fingerprint(&sql);
    }

    #[test]
    fn fingerprints_ignore_literal_values(a in 0u64..1_000_000, b in "[a-z]{0,12}") {
        let one = observe::query::fingerprint(&format!("SELECT * FROM t WHERE id = {a} AND name = '{b}'"));
        prop_assert_eq!(one, "SELECT * FROM t WHERE id = ? AND name = ?");
    }
}
