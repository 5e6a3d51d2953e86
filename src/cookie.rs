//! The `sid` cookie: signing and verification byte-compatible with the
//! `cookie-signature` npm package (what `cookie-parser` and Express's
//! `res.cookie(name, value, { signed: true })` use), reading the id out of a
//! `Cookie` header, and writing the `Set-Cookie` header that sets or clears it.

use ::cookie::Cookie;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{CookieOptions, Priority, SameSite};
use crate::error::{ErrorCode, Result, SessionError};
use crate::sid;

/// A `Cookie` header longer than this is ignored as a whole (a fresh session
/// starts): no browser sends one this long for a well-behaved site.
pub const MAX_COOKIE_HEADER_BYTES: usize = 8 * 1024;

/// Prefix Express puts before signed cookie values.
const SIGNED_PREFIX: &str = "s:";

/// What `encodeURIComponent` leaves alone; everything else is percent-encoded.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// `cookie-signature`'s `sign(value, secret)`: `value.base64(HMAC-SHA256)`, padding stripped.
pub fn sign(value: &str, secret: &str) -> String {
    let mut signed = String::with_capacity(value.len() + 44);
    signed.push_str(value);
    signed.push('.');
    STANDARD_NO_PAD.encode_string(mac(value, secret), &mut signed);
    signed
}

/// `cookie-signature`'s `unsign(signed, secret)`, over several secrets (rotation):
/// the value and the index of the secret that verified it, compared in constant time.
pub fn unsign<'a, S: AsRef<str>>(signed: &'a str, secrets: &[S]) -> Option<(&'a str, usize)> {
    let (value, signature) = signed.rsplit_once('.')?;
    let mut expected = String::with_capacity(43);
    secrets
        .iter()
        .position(|secret| {
            expected.clear();
            STANDARD_NO_PAD.encode_string(mac(value, secret.as_ref()), &mut expected);
            bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
        })
        .map(|index| (value, index))
}

fn mac(value: &str, secret: &str) -> [u8; 32] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(value.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The (percent-decoded) value of the first cookie called `name` in a
/// `Cookie` header, the one the `cookie` npm package (cookie-parser) would
/// pick: names compared as sent, only that cookie's value decoded (a
/// browser's header carries a site's other cookies too, analytics and
/// consent: decoding them all cost 0.8 µs more a request with seven of them).
pub fn find(header: &str, name: &str) -> Option<String> {
    let cookie = Cookie::split_parse(header)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)?;
    let value = percent_decode_str(cookie.value_trimmed())
        .decode_utf8()
        .ok()?;
    Some(value.into_owned())
}

/// The session id carried by a signed cookie value (`s:<id>.<mac>`), if the
/// signature verifies with one of `secrets` and the id has a valid shape.
/// Returns the id and the index of the secret that verified it.
pub fn verified_id<S: AsRef<str>>(cookie_value: &str, secrets: &[S]) -> Option<(String, usize)> {
    let signed = cookie_value.strip_prefix(SIGNED_PREFIX)?;
    let (id, index) = unsign(signed, secrets)?;
    sid::is_valid(id).then(|| (id.to_owned(), index))
}

/// Which session a request names: its id with the index of the secret that
/// verified it (`None` for a fresh session), and the secret to sign cookies with.
///
/// With `secrets` (`session.secret`) the id is read from the raw `Cookie`
/// header; otherwise from the id cookie-parser verified (`parser_id`), signing
/// with cookie-parser's secret. Either way an id must have a valid shape, and
/// a header over [`MAX_COOKIE_HEADER_BYTES`] names no session.
pub fn identify<'a>(
    secrets: &'a [String],
    cookie_name: &str,
    header: Option<&str>,
    parser_id: Option<&str>,
    parser_secret: Option<&'a str>,
) -> Result<(Option<(String, usize)>, &'a str)> {
    let oversized = header.is_some_and(|h| h.len() > MAX_COOKIE_HEADER_BYTES);
    if let Some(current) = secrets.first() {
        let known = header
            .filter(|_| !oversized)
            .and_then(|header| find(header, cookie_name))
            .and_then(|value| verified_id(&value, secrets));
        return Ok((known, current));
    }
    let secret = parser_secret.filter(|s| !s.is_empty()).ok_or_else(|| {
        SessionError::new(
            ErrorCode::Secret,
            "a secret is required to sign the session cookie: give session.secret, or mount cookie-parser(secret) before the session middleware",
        )
    })?;
    let known = parser_id
        .filter(|id| !oversized && sid::is_valid(id))
        .map(|id| {
            (
                id.to_owned(),
                parser_secret_index(header, cookie_name, secret),
            )
        });
    Ok((known, secret))
}

/// cookie-parser verifies with all its secrets but exposes only the first
/// (`req.secret`): a cookie that does not verify with that one was signed by
/// a retired secret (index 1), and is re-signed.
fn parser_secret_index(header: Option<&str>, cookie_name: &str, current: &str) -> usize {
    // Without the header (a caller that filled req.signedCookies itself) there
    // is nothing to tell: leave the cookie as it is.
    let Some(header) = header else { return 0 };
    let signed_by_current = find(header, cookie_name)
        .and_then(|value| verified_id(&value, &[current]))
        .is_some();
    usize::from(!signed_by_current)
}

/// `Set-Cookie` value carrying the signed id, in the attribute order of the
/// `cookie` npm package's `serialize`.
/// `max_age` (seconds): a persistent cookie; `None`, one that ends with the
/// browser session.
pub fn set_cookie(
    options: &CookieOptions,
    id: &str,
    secret: &str,
    secure: bool,
    max_age: Option<u64>,
) -> String {
    let value = format!("{SIGNED_PREFIX}{}", sign(id, secret));
    serialize(options, &value, max_age.map(Lifetime::MaxAge), secure)
}

/// `Set-Cookie` value of the express-session entry point's cookie: as
/// [`set_cookie`], and for one that expires (`expires_at`, unix ms) its
/// `Expires` (what express-session sends) with the `Max-Age` it comes to.
pub fn set_cookie_until(
    options: &CookieOptions,
    id: &str,
    secret: &str,
    secure: bool,
    expires_at: Option<u64>,
) -> String {
    let value = format!("{SIGNED_PREFIX}{}", sign(id, secret));
    serialize(options, &value, expires_at.map(Lifetime::Until), secure)
}

/// `Set-Cookie` value that deletes the cookie: same name, path and domain as
/// the one that set it (a different path or domain would leave it in place).
pub fn clear_cookie(options: &CookieOptions, secure: bool) -> String {
    serialize(options, "", Some(Lifetime::Expired), secure)
}

/// A cookie's lifetime attributes, when it has any.
enum Lifetime {
    /// `Max-Age`, in seconds.
    MaxAge(u64),
    /// Gone at once (an `Expires` in the past, which every browser honours).
    Expired,
    /// Until this time (unix ms): `Max-Age` and `Expires`.
    Until(u64),
}

fn serialize(
    options: &CookieOptions,
    value: &str,
    lifetime: Option<Lifetime>,
    secure: bool,
) -> String {
    let mut out = String::with_capacity(160);
    out.push_str(&options.name);
    out.push('=');
    out.extend(utf8_percent_encode(value, URI_COMPONENT));
    if let Some(domain) = &options.domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    out.push_str("; Path=");
    out.push_str(&options.path);
    match lifetime {
        Some(Lifetime::MaxAge(secs)) => out.push_str(&format!("; Max-Age={secs}")),
        Some(Lifetime::Expired) => out.push_str("; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
        Some(Lifetime::Until(at)) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let secs = at.saturating_sub(now.as_millis() as u64).div_ceil(1000);
            let when = UNIX_EPOCH + Duration::from_millis(at);
            out.push_str(&format!(
                "; Max-Age={secs}; Expires={}",
                httpdate::fmt_http_date(when)
            ));
        }
        None => {}
    }
    if options.http_only {
        out.push_str("; HttpOnly");
    }
    if options.partitioned {
        out.push_str("; Partitioned");
    }
    match options.priority {
        Some(Priority::Low) => out.push_str("; Priority=Low"),
        Some(Priority::Medium) => out.push_str("; Priority=Medium"),
        Some(Priority::High) => out.push_str("; Priority=High"),
        None => {}
    }
    match options.same_site {
        SameSite::Lax => out.push_str("; SameSite=Lax"),
        SameSite::Strict => out.push_str("; SameSite=Strict"),
        SameSite::None => out.push_str("; SameSite=None"),
        SameSite::Auto if secure => out.push_str("; SameSite=None"),
        SameSite::Auto => out.push_str("; SameSite=Lax"),
        SameSite::Off => {}
    }
    if secure {
        out.push_str("; Secure");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecureMode;

    // Vectors produced by `require('cookie-signature').sign(value, secret)`.
    const VECTORS: &[(&str, &str, &str)] = &[
        (
            "hello",
            "tobiiscool",
            "hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI",
        ),
        ("", "secret", ".+eZuF5tnR65UEI+C+K3os8Jddv0wr95sOVgixTAZYWk"),
    ];

    #[test]
    fn signs_like_cookie_signature() {
        for (value, secret, signed) in VECTORS {
            assert_eq!(sign(value, secret), *signed);
            assert_eq!(unsign(signed, &[secret]), Some((*value, 0)));
        }
    }

    #[test]
    fn unsign_rejects_tampering_and_finds_the_right_secret() {
        let signed = sign("abc", "new");
        assert_eq!(unsign(&signed, &["old", "new"]), Some(("abc", 1)));
        assert_eq!(unsign(&signed, &["other"]), None);
        assert_eq!(unsign(&signed.replace("abc", "abd"), &["new"]), None);
        assert_eq!(unsign("no-dot-at-all", &["new"]), None);
        assert_eq!(unsign(&signed[..signed.len() - 1], &["new"]), None);
    }

    #[test]
    fn finds_the_first_cookie_of_a_name_decoded() {
        let header = "a=1; sid=s%3Aabc.def; sid=second; other=\"q\"";
        assert_eq!(find(header, "sid").as_deref(), Some("s:abc.def"));
        assert_eq!(find(header, "other").as_deref(), Some("q"));
        assert_eq!(find(header, "missing"), None);
        assert_eq!(find("sid=%E0%A4%A", "sid"), None, "bad percent-encoding");
        assert_eq!(
            find("s%69d=x", "sid"),
            None,
            "names compared as sent, as npm's cookie does"
        );
        let beside = "a=%E0%A4%A; sid=s%3Aabc.def";
        assert_eq!(
            find(beside, "sid").as_deref(),
            Some("s:abc.def"),
            "another cookie's encoding does not matter"
        );
    }

    #[test]
    fn verified_id_needs_prefix_signature_and_shape() {
        let id = "A".repeat(43);
        let good = format!("s:{}", sign(&id, "k"));
        assert_eq!(verified_id(&good, &["k"]), Some((id.clone(), 0)));
        assert_eq!(verified_id(&good[2..], &["k"]), None, "unsigned prefix");
        assert_eq!(verified_id(&good, &["x"]), None, "wrong secret");
        let bad_shape = format!("s:{}", sign("evil:key", "k"));
        assert_eq!(verified_id(&bad_shape, &["k"]), None, "key syntax in id");
    }

    #[test]
    fn identify_reads_the_header_or_trusts_cookie_parser() {
        let id = "B".repeat(43);
        let header = format!(
            "sid={}",
            format!("s:{}", sign(&id, "old")).replace(':', "%3A")
        );
        let secrets = vec!["new".to_string(), "old".to_string()];
        let (known, signer) = identify(&secrets, "sid", Some(&header), None, None).unwrap();
        assert_eq!((known, signer), (Some((id.clone(), 1)), "new"));

        let current = format!(
            "sid={}",
            format!("s:{}", sign(&id, "cp")).replace(':', "%3A")
        );
        let (known, signer) = identify(&[], "sid", Some(&current), Some(&id), Some("cp")).unwrap();
        assert_eq!((known, signer), (Some((id.clone(), 0)), "cp"));
        // cookie-parser(["cp", "old"]) accepted a cookie signed with "old": re-sign it.
        let retired = identify(&[], "sid", Some(&header), Some(&id), Some("cp")).unwrap();
        assert_eq!(retired.0, Some((id.clone(), 1)));
        let (known, _) = identify(&[], "sid", None, Some("bad:id"), Some("cp")).unwrap();
        assert_eq!(known, None);
        let err = identify(&[], "sid", None, Some(&id), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::Secret);
    }

    #[test]
    fn identify_ignores_oversized_headers_in_both_modes() {
        let id = "C".repeat(43);
        let signed = format!("s:{}", sign(&id, "k")).replace(':', "%3A");
        let huge = format!("sid={signed}; pad={}", "y".repeat(MAX_COOKIE_HEADER_BYTES));
        let secrets = vec!["k".to_string()];
        assert_eq!(
            identify(&secrets, "sid", Some(&huge), None, None)
                .unwrap()
                .0,
            None
        );
        assert_eq!(
            identify(&[], "sid", Some(&huge), Some(&id), Some("k"))
                .unwrap()
                .0,
            None
        );
    }

    fn options() -> CookieOptions {
        CookieOptions {
            name: "sid".into(),
            path: "/".into(),
            domain: Some("example.com".into()),
            http_only: true,
            same_site: SameSite::Lax,
            secure: SecureMode::Never,
            partitioned: false,
            priority: None,
        }
    }

    #[test]
    fn set_cookie_is_percent_encoded_like_express() {
        let header = set_cookie(&options(), "a+b/c=", "k", true, None);
        let expected_value = format!("s:{}", sign("a+b/c=", "k"))
            .replace(':', "%3A")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(
            header,
            format!(
                "sid={expected_value}; Domain=example.com; Path=/; HttpOnly; SameSite=Lax; Secure"
            )
        );
    }

    #[test]
    fn clear_cookie_keeps_name_path_and_domain() {
        assert_eq!(
            clear_cookie(&options(), false),
            "sid=; Domain=example.com; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
        );
    }
}

/// Property tests: whatever bytes arrive in a Cookie header, parsing never
/// panics, and no id that reaches a store key has an invalid shape.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_header_yields_only_valid_ids(header in ".{0,300}", secret in "[ -~]{1,20}") {
            let secrets = vec![secret.clone()];
            if let Ok((Some((id, _)), _)) = identify(&secrets, "sid", Some(&header), None, None) {
                prop_assert!(sid::is_valid(&id));
            }
            let parsed = identify(&[], "sid", Some(&header), Some(&header), Some(&secret));
            if let Ok((Some((id, _)), _)) = parsed {
                prop_assert!(sid::is_valid(&id));
            }
        }

        #[test]
        fn cookies_around_a_valid_one_do_not_hide_it(
            before in "[a-z]{1,8}=[a-zA-Z0-9%]{0,20}",
            after in "[a-z]{1,8}=[^;]{0,20}",
        ) {
            prop_assume!(!before.starts_with("sid="));
            let id = crate::sid::generate().unwrap();
            let value = format!("s:{}", sign(&id, "k")).replace(':', "%3A");
            let header = format!("{before}; sid={value}; {after}");
            let secrets = vec!["k".to_string()];
            let (known, _) = identify(&secrets, "sid", Some(&header), None, None).unwrap();
            prop_assert_eq!(known, Some((id, 0)));
        }

        #[test]
        fn signatures_round_trip_and_reject_any_change(
            value in ".{0,64}",
            secret in ".{1,32}",
            flip in 0usize..43,
        ) {
            let signed = sign(&value, &secret);
            prop_assert_eq!(unsign(&signed, &[&secret]), Some((value.as_str(), 0)));
            let mut tampered: Vec<char> = signed.chars().collect();
            let at = tampered.len() - 1 - flip;
            tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
            let tampered: String = tampered.into_iter().collect();
            prop_assert_eq!(unsign(&tampered, &[&secret]), None);
        }
    }
}
