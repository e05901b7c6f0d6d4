//! Arbitrary text as an `ip` query filter (address or CIDR): a network or a typed error.
#![no_main]

use gatewatch::app::parse_ip_filter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(net) = parse_ip_filter(text) {
            // Canonical: the network address itself, so equal ranges compare equal.
            assert_eq!(net, net.trunc());
        }
    }
});
