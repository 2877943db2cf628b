//! The request signature: `X-StorePulse-Signature: sha256=<hex>`, the
//! HMAC-SHA256, keyed with the webhook's secret, of `"<timestamp>.<body>"`
//! where `<timestamp>` is the `X-StorePulse-Timestamp` header (unix seconds)
//! and `<body>` the exact request body bytes.
//!
//! A receiver recomputes the HMAC over the same bytes, compares in constant
//! time ([`verify`] does), and refuses timestamps too far from its clock
//! (e.g. 5 minutes) so a captured request cannot be replayed later. Each
//! attempt is signed afresh with the time of the attempt.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of the signature header value.
pub const SCHEME_PREFIX: &str = "sha256=";

/// The raw HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = new_mac(key);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long keys are hashed first), so
    // `new_from_slice` cannot fail; the fallback is never taken.
    HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
}

fn signed_mac(key: &[u8], timestamp: u64, body: &[u8]) -> HmacSha256 {
    let mut mac = new_mac(key);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-StorePulse-Signature` header value for a request sent at
/// `timestamp` (unix seconds) with `body`: `sha256=<64 lowercase hex>`.
pub fn sign(key: &[u8], timestamp: u64, body: &[u8]) -> String {
    let digest = signed_mac(key, timestamp, body).finalize().into_bytes();
    let mut out = String::with_capacity(SCHEME_PREFIX.len() + 64);
    out.push_str(SCHEME_PREFIX);
    out.push_str(&hex(&digest));
    out
}

/// Whether `header` is the right signature for `timestamp` and `body`
/// (constant-time comparison). What a receiver does; the tests use it.
pub fn verify(key: &[u8], timestamp: u64, body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.strip_prefix(SCHEME_PREFIX) else {
        return false;
    };
    let Some(bytes) = unhex(hex_digest) else {
        return false;
    };
    signed_mac(key, timestamp, body)
        .verify_slice(&bytes)
        .is_ok()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2 (HMAC-SHA-256).
    #[test]
    fn rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// RFC 4231, test case 6: a key longer than the block size.
    #[test]
    fn rfc4231_case_6_long_key() {
        let key = [0xaau8; 131];
        let mac = hmac_sha256(
            &key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex(&mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn header_is_the_hmac_of_timestamp_dot_body() {
        let body = br#"{"id":"raised:42","rule":"refund_abuse"}"#;
        let header = sign(b"s3cret", 1_764_000_000, body);
        let mut message = b"1764000000.".to_vec();
        message.extend_from_slice(body);
        assert_eq!(
            header,
            format!("sha256={}", hex(&hmac_sha256(b"s3cret", &message)))
        );
        assert!(verify(b"s3cret", 1_764_000_000, body, &header));
    }

    #[test]
    fn verify_refuses_any_change() {
        let body = br#"{"a":1}"#;
        let header = sign(b"k", 100, body);
        assert!(!verify(b"other", 100, body, &header));
        assert!(!verify(b"k", 101, body, &header));
        assert!(!verify(b"k", 100, br#"{"a":2}"#, &header));
        assert!(!verify(
            b"k",
            100,
            body,
            &header.replace("sha256=", "sha1=")
        ));
        assert!(!verify(b"k", 100, body, "sha256=zz"));
        assert!(!verify(b"k", 100, body, "sha256=abc"));
    }
}
