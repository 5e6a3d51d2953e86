//! Session ids: 256 bits from the OS CSPRNG, base64url without padding.
//!
//! Ids arriving from cookies are checked against a strict alphabet before they
//! ever become part of a store key, so a cookie cannot inject key syntax
//! (`:`, `{}`, spaces, control bytes) into Redis.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::{ErrorCode, Result, SessionError};

/// Bytes of entropy in a new id (256 bits, 43 characters once encoded).
pub const ID_BYTES: usize = 32;
/// Shortest id accepted from a cookie. The original's ids are 52 characters.
pub const MIN_ID_LEN: usize = 22;
/// Longest id accepted from a cookie.
pub const MAX_ID_LEN: usize = 128;

/// A fresh, unguessable session id.
pub fn generate() -> Result<String> {
    random_id::<ID_BYTES>()
}

fn random_id<const BYTES: usize>() -> Result<String> {
    let mut bytes = [0u8; BYTES];
    getrandom::fill(&mut bytes).map_err(|err| {
        SessionError::new(
            ErrorCode::Connection,
            format!("the OS random source failed: {err}"),
        )
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Bytes of entropy in the id of a signed-in session: 264 bits, 44
/// characters once encoded. The length says, with no store lookup, that a
/// request's session is bound to a user (see `Op::Seen`).
pub const BOUND_ID_BYTES: usize = 33;

/// A fresh id for a session that signs in.
pub fn generate_bound() -> Result<String> {
    random_id::<BOUND_ID_BYTES>()
}

/// The length of a signed-in session's id: [`BOUND_ID_BYTES`] in base64, unpadded.
pub const BOUND_ID_LEN: usize = (BOUND_ID_BYTES * 4).div_ceil(3);

/// Whether `id` was issued to a signed-in session (see [`BOUND_ID_BYTES`]).
pub fn is_bound(id: &str) -> bool {
    id.len() == BOUND_ID_LEN && is_valid(id)
}

/// Whether `id` has a shape this library (or the original) could have issued:
/// base64 / base64url characters only, of a plausible length.
/// The original's ids are base64 of a sha256 (`+ / =` included) plus 8 alphanumerics.
pub fn is_valid(id: &str) -> bool {
    (MIN_ID_LEN..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'='))
}

/// Whether `id` has the shape of an id alt-session 0.0.1 issued: base64 of a
/// sha256 (43 characters of `A-Z a-z 0-9 + /` and one `=`), then 8
/// alphanumerics. 0.0.1 stored nothing when it issued an id, so a missing
/// hash under such an id may be a session that is live in 0.0.1's eyes.
pub fn is_legacy(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 52
        && bytes[..43]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
        && bytes[43] == b'='
        && bytes[44..].iter().all(u8::is_ascii_alphanumeric)
}

/// Rejects an id that is not of a valid shape, with `ERR_SESSION_ARGUMENT`.
pub fn ensure_valid(id: &str) -> Result<()> {
    if is_valid(id) {
        Ok(())
    } else {
        Err(SessionError::argument("malformed session id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn new_ids_are_43_url_safe_characters() {
        let id = generate().unwrap();
        assert_eq!(id.len(), 43);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(is_valid(&id));
    }

    #[test]
    fn a_signed_in_sessions_id_is_told_by_its_length() {
        let bound = generate_bound().unwrap();
        assert_eq!(bound.len(), BOUND_ID_LEN);
        assert_eq!(BOUND_ID_LEN, 44);
        assert!(is_bound(&bound));
        assert!(!is_bound(&generate().unwrap()));
    }

    #[test]
    fn ids_do_not_repeat_and_use_every_symbol() {
        let ids: Vec<String> = (0..10_000).map(|_| generate().unwrap()).collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        // 430k symbols over a 64-letter alphabet: every letter appears, and none
        // dominates (a biased or truncated source would fail this).
        let mut counts = [0usize; 128];
        for id in &ids {
            for b in id.bytes() {
                counts[b as usize] += 1;
            }
        }
        let used: Vec<usize> = counts.iter().copied().filter(|&c| c > 0).collect();
        assert_eq!(used.len(), 64);
        let mean = used.iter().sum::<usize>() as f64 / 64.0;
        assert!(used
            .iter()
            .all(|&c| (c as f64) > mean * 0.85 && (c as f64) < mean * 1.15));
    }

    #[test]
    fn accepts_the_original_id_shape() {
        // base64(sha256) (44 chars with `+ / =`) followed by 8 alphanumerics.
        assert!(is_valid(
            "q1Vt+0x/3mVj6mKk2b0c3Ww9Zq0yP3lQq7v2c8rj1u0=AbC123xy"
        ));
    }

    #[test]
    fn tells_the_original_ids_from_ours() {
        let original = "q1Vt+0x/3mVj6mKk2b0c3Ww9Zq0yP3lQq7v2c8rj1u0=AbC123xy";
        assert!(is_legacy(original));
        assert!(!is_legacy(&generate().unwrap()));
        for near in [
            "q1Vt+0x/3mVj6mKk2b0c3Ww9Zq0yP3lQq7v2c8rj1u0=AbC123x",
            "q1Vt+0x/3mVj6mKk2b0c3Ww9Zq0yP3lQq7v2c8rj1u0=AbC123x_",
            "q1Vt+0x/3mVj6mKk2b0c3Ww9Zq0yP3lQq7v2c8rj1u0xAbC123xy",
            "q1Vt-0x/3mVj6mKk2b0c3Ww9Zq0yP3lQq7v2c8rj1u0=AbC123xy",
        ] {
            assert!(!is_legacy(near), "{near:?}");
        }
    }

    #[test]
    fn rejects_key_syntax_and_odd_lengths() {
        for bad in [
            "",
            "false",
            "short",
            "abcdefghijklmnopqrstuvwxyz:other",
            "abcdefghijklmnopqrstuvwxyz{tag}",
            "abcdefghijklmnopqrstuvwxyz abc",
            "abcdefghijklmnopqrstuvwxyz\0abc",
            "abcdefghijklmnopqrstuvwxyzé",
        ] {
            assert!(!is_valid(bad), "{bad:?} should be rejected");
        }
        assert!(!is_valid(&"a".repeat(MAX_ID_LEN + 1)));
        assert!(ensure_valid("nope").is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// An accepted id never holds key syntax or control bytes, whatever the input.
        #[test]
        fn accepted_ids_hold_only_base64_characters(id in ".{0,200}") {
            if is_valid(&id) {
                prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_+/=".contains(&b)));
                prop_assert!((MIN_ID_LEN..=MAX_ID_LEN).contains(&id.len()));
            }
        }
    }
}
