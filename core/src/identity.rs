//! Who called, without keeping secrets: `key_id` is a short hash of the API key.

use alloc::string::String;
use core::fmt::Write as _;

use sha2::{Digest, Sha256};

/// First 12 hex digits of SHA-256 of the key in an `Authorization` (`Bearer …`) or API-key
/// header value. `None` for an empty value. The key itself is never returned or stored.
pub fn key_id(credential: &str) -> Option<String> {
    let credential = credential.trim();
    let is_bearer = credential.len() >= 6 && credential[..6].eq_ignore_ascii_case("bearer");
    let key = match credential.get(6..) {
        Some(rest) if is_bearer && (rest.is_empty() || rest.starts_with(' ')) => rest.trim(),
        _ => credential,
    };
    if key.is_empty() {
        return None;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(12);
    for b in digest.iter().take(6) {
        let _ = write!(out, "{b:02x}");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::key_id;

    #[test]
    fn bearer_and_bare_keys_hash_alike_and_never_leak() {
        let id = key_id("Bearer sk-or-v1-secret").unwrap();
        assert_eq!(id.len(), 12);
        assert_eq!(Some(id.clone()), key_id("sk-or-v1-secret"));
        assert_eq!(Some(id.clone()), key_id("bearer   sk-or-v1-secret "));
        assert!(!id.contains("secret"));
        assert_eq!(key_id("Bearer "), None);
        assert_ne!(key_id("a"), key_id("b"));
    }
}
