//! The names of every option, level by level: a name no level knows is
//! refused at construction (`ERR_SESSION_CONFIG`), with what was probably
//! meant, so that `scure: true` or express-session's `cookie: { secure }`
//! cannot pass silently and leave the cookie without `Secure`.

use serde_json::{Map, Value};

use crate::error::{Result, SessionError};

pub const ROOT: &[&str] = &["redis", "session"];
pub const REDIS: &[&str] = &[
    "url",
    "host",
    "port",
    "username",
    "password",
    "pass",
    "auth_pass",
    "tls",
    "sentinel",
    "cluster",
    "connectTimeout",
    "commandTimeout",
    "waitReplicas",
    "waitTimeout",
];
pub const TLS: &[&str] = &["ca", "cert", "key", "servername", "rejectUnauthorized"];
pub const SENTINEL: &[&str] = &["name", "nodes", "username", "password", "tls"];
pub const CLUSTER: &[&str] = &["nodes", "username", "password", "tls"];
pub const NODE: &[&str] = &["host", "port"];
pub const SESSION: &[&str] = &[
    "secret",
    "name",
    "path",
    "domain",
    "secure",
    "sameSite",
    "httpOnly",
    "partitioned",
    "priority",
    "tti",
    "prefix",
    "dbIndex",
    "maxLifetime",
    "maxValueBytes",
    "maxFields",
    "maxSessionsPerUser",
    "awaitTouch",
    "refreshErrors",
    "lazy",
    "persistent",
    "legacyIds",
];

/// express-session's options, which the per-key entry point does not take
/// (`alt-session/express-session` does: see `express.rs`), and what stands
/// for each here.
const EXPRESS_SESSION: &[(&str, &str)] = &[
    ("cookie", "the cookie's attributes are session.secure, session.domain, session.path, session.sameSite and session.httpOnly"),
    ("resave", "alt-session writes each key when it is set, never the whole session"),
    ("saveUninitialized", "session.lazy: true stores nothing and sends no cookie until the first write"),
    ("store", "alt-session stores on Redis (the redis options) or in memory (altSession.mock())"),
    ("rolling", "every request refreshes the idle timeout (session.tti)"),
    ("genid", "ids come from the operating system's CSPRNG"),
    ("unset", "a session's keys are removed with req.session.remove()"),
    ("proxy", "session.secure: 'auto' follows Express's req.secure, which trusts proxies as 'trust proxy' says"),
];

/// Refuses every name of `o` (the option at `at`, `""` for the root) that
/// `known` does not hold, in one error that says of each what was meant.
pub fn only(o: &Map<String, Value>, at: &str, known: &[&str]) -> Result<()> {
    let unknown: Vec<String> = o
        .keys()
        .filter(|name| !known.contains(&name.as_str()))
        .map(|name| format!("{}{}", path(at, name), hint(at, name, known)))
        .collect();
    match unknown.len() {
        0 => Ok(()),
        1 => Err(SessionError::config(format!(
            "unknown option {}",
            unknown[0]
        ))),
        _ => Err(SessionError::config(format!(
            "unknown options {}",
            unknown.join("; ")
        ))),
    }
}

fn path(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

/// What `name` at `at` probably meant: a name of this level it nearly
/// spells, the same name at the level it belongs to, or, for one of
/// express-session's, what stands for it here.
fn hint(at: &str, name: &str, known: &[&str]) -> String {
    if let Some(near) = known.iter().find(|k| near(k, name)) {
        return format!(": did you mean {}?", path(at, near));
    }
    let home = [("session", SESSION), ("redis", REDIS)]
        .into_iter()
        .find(|(home, names)| *home != at && names.contains(&name));
    if let Some((home, _)) = home.filter(|_| matches!(at, "" | "session" | "redis")) {
        return format!(": did you mean {home}.{name}?");
    }
    if let Some((_, instead)) = EXPRESS_SESSION.iter().find(|(n, _)| *n == name) {
        return format!(
            " (an option of express-session, which require('alt-session/express-session') takes; here {instead})"
        );
    }
    String::new()
}

/// Whether `a` and `b` differ by case alone or by at most two edits.
fn near(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || distance(&a.to_ascii_lowercase(), &b.to_ascii_lowercase()) <= 2
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(o: Value, at: &str, known: &[&str]) -> String {
        only(o.as_object().unwrap(), at, known).unwrap_err().message
    }

    #[test]
    fn a_misspelt_name_is_refused_with_the_name_it_nearly_spells() {
        let message = refused(json!({"scure": true}), "session", SESSION);
        assert_eq!(
            message,
            "unknown option session.scure: did you mean session.secure?"
        );
        assert!(
            refused(json!({"TTI": 1}), "session", SESSION).ends_with("did you mean session.tti?")
        );
    }

    #[test]
    fn a_name_at_the_wrong_level_points_at_its_level() {
        assert!(refused(json!({"tti": 1}), "", ROOT).ends_with("did you mean session.tti?"));
        assert!(
            refused(json!({"host": "h"}), "session", SESSION).ends_with("did you mean redis.host?")
        );
        assert!(refused(json!({"prefix": "p"}), "redis", REDIS)
            .ends_with("did you mean session.prefix?"));
    }

    #[test]
    fn express_session_options_say_what_stands_for_them() {
        let message = refused(json!({"saveUninitialized": false}), "", ROOT);
        assert!(
            message.contains("express-session") && message.contains("session.lazy"),
            "{message}"
        );
        let message = refused(json!({"cookie": {"secure": true}}), "session", SESSION);
        assert!(message.contains("session.secure"), "{message}");
    }

    #[test]
    fn known_names_pass() {
        assert!(only(
            json!({"secret": "s", "tti": 5}).as_object().unwrap(),
            "session",
            SESSION
        )
        .is_ok());
    }
}
