//! String and address sanitising shared by every field rule.

use std::net::IpAddr;

/// Removes control characters (C0, DEL, C1), which have no business in logged text and can
/// forge log lines or terminal escapes.
pub fn strip_controls(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
pub fn truncate_bytes(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// A route as stored: the path only (query string and fragment dropped, since they carry
/// secrets such as codes and tokens), without control characters, at most 255 bytes.
pub fn sanitize_route(route: &str) -> String {
    let path = route.split(['?', '#']).next().unwrap_or_default();
    truncate_bytes(strip_controls(path), 255)
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) become plain IPv4, so that a /24 rule or a
/// count sees one address, not two spellings of it.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_lose_query_fragment_and_controls() {
        assert_eq!(sanitize_route("/oauth/token?code=secret"), "/oauth/token");
        assert_eq!(sanitize_route("/a#frag"), "/a");
        assert_eq!(sanitize_route("/a\n\u{1b}[31mb"), "/a[31mb");
        assert_eq!(sanitize_route(&"x".repeat(300)).len(), 255);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "é".repeat(300); // 600 bytes
        let t = truncate_bytes(s, 511);
        assert_eq!(t.len(), 510);
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let ip: IpAddr = "::ffff:1.2.3.4".parse().expect("valid");
        assert_eq!(canonical_ip(ip).to_string(), "1.2.3.4");
        let ip: IpAddr = "2001:db8::1".parse().expect("valid");
        assert_eq!(canonical_ip(ip), ip);
    }
}
