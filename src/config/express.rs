//! The options of the express-session entry point (`alt-session/express-session`):
//! express-session's names, read into the engine's [`Config`] (one table,
//! [`NAMES`], says where each goes, and turns the engine's messages back
//! into the names the app wrote), plus what only that entry point does
//! ([`ExpressOptions`], which its JavaScript side reads).

use serde_json::{Map, Value};

use super::{known, object_or_empty, opt_bool, Config};
use crate::error::{Result, SessionError};

/// The cookie's name unless `name` says otherwise: express-session's.
pub const DEFAULT_NAME: &str = "connect.sid";
/// The idle timeout when `cookie.maxAge` does not give one: connect-redis's
/// one day (express-session's cookie without `maxAge` ends with the browser).
pub const DEFAULT_TTI_SECS: u64 = 86_400;

/// Each express-session-style option that the engine also has: where the
/// app writes it, and the engine's name for it.
const NAMES: &[(&str, &str)] = &[
    ("secret", "session.secret"),
    ("name", "session.name"),
    ("prefix", "session.prefix"),
    ("tti", "session.tti"),
    ("maxLifetime", "session.maxLifetime"),
    ("maxSessionsPerUser", "session.maxSessionsPerUser"),
    ("maxValueBytes", "session.maxValueBytes"),
    ("maxFields", "session.maxFields"),
    ("cookie.path", "session.path"),
    ("cookie.domain", "session.domain"),
    ("cookie.secure", "session.secure"),
    ("cookie.sameSite", "session.sameSite"),
    ("cookie.httpOnly", "session.httpOnly"),
    ("cookie.partitioned", "session.partitioned"),
    ("cookie.priority", "session.priority"),
];

/// The names each level takes: the engine's above, and the entry point's own.
const ROOT: &[&str] = &[
    "secret",
    "name",
    "prefix",
    "tti",
    "maxLifetime",
    "maxSessionsPerUser",
    "maxValueBytes",
    "maxFields",
    "cookie",
    "rolling",
    "resave",
    "saveUninitialized",
    "unset",
    "proxy",
    "genid",
    "key",
    "store",
    "userOf",
    "redis",
];
const COOKIE: &[&str] = &[
    "path",
    "domain",
    "secure",
    "sameSite",
    "httpOnly",
    "partitioned",
    "priority",
    "maxAge",
    "expires",
];

/// What the entry point does beyond the engine's options, as express-session
/// does it (same names, same defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpressOptions {
    /// `rolling`: the cookie is set on every response.
    pub rolling: bool,
    /// `resave`: an unmodified session is saved too (here: refreshed, which
    /// the load already did).
    pub resave: bool,
    /// `saveUninitialized`: a new session is stored, and its cookie set,
    /// even when the request changed nothing.
    pub save_uninitialized: bool,
    /// `unset: 'destroy'`: `delete req.session` ends the session.
    pub unset_destroy: bool,
    /// `proxy`: trust `X-Forwarded-Proto` (`true`), only the socket
    /// (`false`), or Express's `trust proxy` (`None`).
    pub proxy: Option<bool>,
    /// `cookie.maxAge` (ms): the cookie's `Expires`, and the idle timeout.
    pub max_age_ms: Option<f64>,
    /// `cookie.expires` (unix ms): every new session's cookie expires then.
    pub expires: Option<f64>,
    /// Whether `userOf` was given.
    pub user_of: bool,
    /// Whether `cookie` is a function of the request.
    pub cookie_per_request: bool,
    /// Whether `genid` was given: ids come from the app (checked as the
    /// engine's are: 22 to 128 characters of the base64url alphabet).
    pub genid: bool,
}

/// express-session's options (`value`) as the engine's [`Config`] and the
/// entry point's own.
pub fn from_json(value: &Value) -> Result<(Config, ExpressOptions)> {
    let root = object_or_empty(value, "options")?;
    known::only(&root, "", ROOT)?;
    // `cookie` may be a function of the request, whose answer each request checks.
    let cookie_per_request = root.get("cookie").and_then(Value::as_str) == Some(FUNCTION);
    let cookie = match cookie_per_request {
        true => Map::new(),
        false => object_or_empty(root.get("cookie").unwrap_or(&Value::Null), "cookie")?,
    };
    known::only(&cookie, "cookie", COOKIE)?;
    refuse(&root)?;
    let express = ExpressOptions {
        rolling: flag(&root, "rolling", false)?,
        resave: flag(&root, "resave", true)?,
        save_uninitialized: flag(&root, "saveUninitialized", true)?,
        unset_destroy: unset(root.get("unset"))?,
        proxy: opt_bool(&root, "proxy", "proxy")?,
        max_age_ms: max_age(cookie.get("maxAge"))?,
        expires: expires(cookie.get("expires"))?,
        user_of: function(root.get("userOf"), "userOf must be a function (session) => user id, e.g. (s) => s.passport && s.passport.user")?,
        genid: function(root.get("genid"), "genid must be a function (req) => a new session id")?,
        cookie_per_request,
    };
    let engine = engine_options(&root, &cookie, &express);
    let config = Config::from_json(&engine).map_err(|err| SessionError {
        message: in_app_names(&err.message),
        ..err
    })?;
    Ok((config, express))
}

/// The options express-session has that cannot mean the same here.
fn refuse(root: &Map<String, Value>) -> Result<()> {
    if root.contains_key("store") {
        return Err(SessionError::config(
            "store: sessions are stored on Redis (the redis option: one server, TLS, Sentinel or Cluster) or in memory (session.mock())",
        ));
    }
    let given = |name: &str| root.get(name).is_some_and(|v| !v.is_null());
    if given("genid") && given("userOf") {
        return Err(SessionError::config(
            "genid and userOf cannot go together: a signed-in session's id is the engine's, of a shape of its own (its lease is read from it)",
        ));
    }
    Ok(())
}

/// The engine's options: `{ redis, session }`.
fn engine_options(
    root: &Map<String, Value>,
    cookie: &Map<String, Value>,
    express: &ExpressOptions,
) -> Value {
    let mut session = Map::new();
    for (app, engine) in NAMES {
        let value = match app.strip_prefix("cookie.") {
            Some(name) => cookie.get(name),
            None => root.get(*app),
        };
        if let Some(value) = value.filter(|v| !v.is_null()) {
            session.insert(engine["session.".len()..].to_owned(), value.clone());
        }
    }
    // `key`: express-session's old name for `name`, still taken there.
    let name = root.get("key").filter(|v| !v.is_null()).cloned();
    session
        .entry("name")
        .or_insert(name.unwrap_or(DEFAULT_NAME.into()));
    // The store keeps a session as long as its cookie says; without
    // maxAge, connect-redis's day.
    let tti = express
        .max_age_ms
        .map_or(DEFAULT_TTI_SECS, |ms| (ms / 1000.0).ceil().max(1.0) as u64);
    session.entry("tti").or_insert(tti.into());
    // Strict ids: this entry point never issued alt-session 0.0.1's.
    session.insert("legacyIds".into(), false.into());
    let mut engine = Map::new();
    engine.insert("session".into(), session.into());
    if let Some(redis) = root.get("redis") {
        engine.insert("redis".into(), redis.clone());
    }
    engine.into()
}

/// An engine's message with the names the app wrote (`cookie.path`, not `session.path`).
pub fn in_app_names(message: &str) -> String {
    let mut message = message.to_owned();
    // Longest engine names first: `session.name` is a prefix of none, but keep it safe.
    let mut names: Vec<&(&str, &str)> = NAMES.iter().collect();
    names.sort_by_key(|(_, engine)| std::cmp::Reverse(engine.len()));
    for (app, engine) in names {
        message = message.replace(engine, app);
    }
    message
}

fn flag(o: &Map<String, Value>, name: &str, default: bool) -> Result<bool> {
    Ok(opt_bool(o, name, name)?.unwrap_or(default))
}

fn unset(value: Option<&Value>) -> Result<bool> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) if s == "keep" => Ok(false),
        Some(Value::String(s)) if s == "destroy" => Ok(true),
        Some(_) => Err(SessionError::config("unset must be 'keep' or 'destroy'")),
    }
}

fn max_age(value: Option<&Value>) -> Result<Option<f64>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|ms| ms.is_finite() && *ms > 0.0)
            .map(Some)
            .ok_or_else(|| {
                SessionError::config("cookie.maxAge must be a number of milliseconds > 0, or null")
            }),
    }
}

/// `cookie.expires`: a `Date`, which crosses as its time (ms); `false` for none.
fn expires(value: Option<&Value>) -> Result<Option<f64>> {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|ms| ms.is_finite())
            .map(Some)
            .ok_or_else(|| SessionError::config("cookie.expires must be a valid Date")),
    }
}

/// Whether an option that must be a function (`userOf`, `genid`) was given;
/// it crosses as the marker the JavaScript side puts for a function.
fn function(value: Option<&Value>, otherwise: &str) -> Result<bool> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) if s == FUNCTION => Ok(true),
        Some(_) => Err(SessionError::config(otherwise)),
    }
}

/// What the JavaScript side sends in place of a function (which JSON cannot hold).
pub const FUNCTION: &str = "[function]";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecureMode;
    use serde_json::json;

    fn parse(options: Value) -> Result<(Config, ExpressOptions)> {
        from_json(&options)
    }

    #[test]
    fn express_session_defaults() {
        let (config, express) = parse(json!({"secret": "s"})).unwrap();
        assert_eq!(config.session.cookie.name, "connect.sid");
        assert_eq!(config.session.tti_secs, DEFAULT_TTI_SECS);
        assert!(express.resave && express.save_uninitialized && !express.rolling);
        assert!(!config.session.legacy_ids);
        assert_eq!(express.max_age_ms, None);
    }

    #[test]
    fn cookie_options_go_to_the_engine_and_max_age_sets_the_idle_timeout() {
        let (config, express) = parse(json!({
            "secret": ["new", "old"],
            "cookie": {"maxAge": 90_500, "secure": "auto", "path": "/app", "sameSite": "strict"},
            "prefix": "p",
        }))
        .unwrap();
        assert_eq!(config.session.tti_secs, 91);
        assert_eq!(express.max_age_ms, Some(90_500.0));
        assert_eq!(config.session.cookie.secure, SecureMode::Auto);
        assert_eq!(config.session.cookie.path, "/app");
        assert_eq!(config.session.prefix, "p");
        assert_eq!(config.session.secrets, vec!["new", "old"]);
    }

    #[test]
    fn messages_name_the_options_as_the_app_wrote_them() {
        let message = parse(json!({"cookie": {"path": "app"}}))
            .unwrap_err()
            .message;
        assert!(message.starts_with("cookie.path must"), "{message}");
        let message = parse(json!({"cookie": {"maxage": 1}})).unwrap_err().message;
        assert!(message.contains("did you mean cookie.maxAge?"), "{message}");
        let message = parse(json!({"store": {}})).unwrap_err().message;
        assert!(message.contains("redis"), "{message}");
        let message = parse(json!({"genid": FUNCTION, "userOf": FUNCTION}))
            .unwrap_err()
            .message;
        assert!(message.contains("cannot go together"), "{message}");
        let message = parse(json!({"genid": "uuid"})).unwrap_err().message;
        assert!(message.contains("genid must be a function"), "{message}");
        let message = parse(json!({"userOf": "x"})).unwrap_err().message;
        assert!(message.contains("userOf must be a function"), "{message}");
    }
}
