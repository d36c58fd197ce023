//! HTTP/1.1 at the edge: the limits a request head must keep, and why a request is refused
//! before a byte of it is forwarded. RFC 9112 §6 and, where it leaves a choice, what nginx
//! does guide each rule; `h1.rs` applies them while it parses.

/// The longest request line (method, target, version) accepted: longer is a 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// The longest header line (name and value) accepted: longer is a 431 (nginx's 8 KiB buffer).
pub const MAX_HEADER_LINE: usize = 8 * 1024;
/// The most header lines, and the most header bytes in all, accepted: more is a 431.
pub const MAX_HEADER_COUNT: usize = 100;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why a request is refused before it is forwarded: its framing or size could be read in
/// more than one way, or is beyond the limits.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    /// The `reason` label of `lb_refused_requests_total`.
    pub reason: &'static str,
    pub message: &'static str,
}

pub const fn refuse(status: u16, reason: &'static str, message: &'static str) -> Refusal {
    Refusal {
        status,
        reason,
        message,
    }
}

/// The refusals for a head beyond the limits above.
pub const TARGET_TOO_LONG: Refusal =
    refuse(414, "uri_too_long", "request target longer than 8 KiB");
pub const FIELD_TOO_LONG: Refusal =
    refuse(431, "header_too_large", "a header field longer than 8 KiB");
pub const TOO_MANY_FIELDS: Refusal = refuse(431, "header_too_large", "more than 100 header fields");
pub const FIELDS_TOO_LONG: Refusal = refuse(
    431,
    "header_too_large",
    "header fields longer than 64 KiB in all",
);

/// `host[:port]` as RFC 3986 spells it (a name, an IPv4 or a bracketed IPv6 address), without
/// user information: what nginx accepts too.
pub fn is_host(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_a_name_or_address_with_an_optional_port() {
        for ok in [
            "lb",
            "lb:8080",
            "10.0.0.1:80",
            "[::1]:8000",
            "a-b.example.org",
        ] {
            assert!(is_host(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "user@lb", "lb/evil", "a b", "lb\u{ff}"] {
            assert!(!is_host(bad.as_bytes()), "{bad}");
        }
    }
}
