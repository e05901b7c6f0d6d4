//! Arbitrary request bodies through the ingest rules, in both framings: they must answer
//! events or a typed error, never panic, and accepted events must respect the field limits.
#![no_main]

use gatewatch::ingest::{parse_body, BodyFormat};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_795_000_000_000;

fuzz_target!(|data: &[u8]| {
    for format in [BodyFormat::Json, BodyFormat::Ndjson] {
        if let Ok(events) = parse_body(data, format, NOW) {
            for e in events {
                assert!(e.route.as_ref().is_none_or(|r| r.len() <= 255 && !r.contains('?')));
                assert!(e.user_agent.as_ref().is_none_or(|u| u.len() <= 512));
                assert!(e.token.as_ref().is_none_or(|t| t.chars().count() <= 128));
                assert!(e.context.as_ref().is_none_or(|c| c.len() <= 4096));
            }
        }
    }
});
