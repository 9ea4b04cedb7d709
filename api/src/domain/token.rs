//! API tokens: 256 random bits, shown once, stored as their SHA-256.
//!
//! A slow password hash buys nothing for a 256-bit random secret; SHA-256 makes the lookup a
//! single indexed read.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every API token starts with this, so a leaked one is recognisable by secret scanners.
pub const PREFIX: &str = "gct_";

/// A new random token.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn looks_like_token(s: &str) -> bool {
    s.starts_with(PREFIX)
}

/// A random secret of 256 bits, URL-safe: a console session's cookie, a CSRF token, an OIDC
/// `state`, `nonce` or PKCE code verifier (RFC 7636 asks 43 to 128 such characters).
pub fn secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE `S256` code challenge of a code verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the database stores for a token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_rfc_7636s_example() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let s = secret();
        assert_eq!(s.len(), 43);
        assert_ne!(s, secret());
        assert!(same_secret(&s, &s.clone()));
        assert!(!same_secret(&s, &secret()));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(looks_like_token(&a));
        assert_eq!(a.len(), PREFIX.len() + 43);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 32);
    }
}
