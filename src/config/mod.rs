//! Middleware options: parsed from the object given to `altSession(options)`
//! and validated once, so a typo fails at start-up with `ERR_SESSION_CONFIG`
//! instead of at the first request. Unknown names are refused too
//! ([`known`]): the original ignored them, and a misspelt option then did
//! nothing, silently.

mod express;
mod known;

pub use express::{
    in_app_names as in_express_names, ExpressOptions, FUNCTION as EXPRESS_FUNCTION_MARKER,
};

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Result, SessionError};

pub const DEFAULT_TTI_SECS: u64 = 300;
pub const DEFAULT_PREFIX: &str = "session";
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_FIELDS: usize = 1000;
/// The most sessions one user may hold at once (`session.maxSessionsPerUser`).
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 100;
const MAX_MAX_SESSIONS_PER_USER: u64 = 100_000;
/// A write's fields cross into a Lua script as arguments; Lua's `unpack`
/// tops out near 8000, so the cap stays well below that.
pub const MAX_MAX_FIELDS: usize = 2000;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub redis: RedisOptions,
    pub session: SessionOptions,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisOptions {
    /// `redis://` / `rediss://` URL; when absent, built from host and port.
    /// Explicit `username`, `password` and `session.dbIndex` override the URL's.
    pub url: Option<String>,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `redis.tls`: `true` (Node's trusted CAs) or the object; `None` for plain
    /// TCP unless the URL is `rediss://`.
    pub tls: Option<TlsOptions>,
    /// `redis.sentinel`: where the sentinels are and the primary's name; the
    /// primary's address then comes from them, not from `host`/`port`/`url`.
    pub sentinel: Option<SentinelOptions>,
    /// `redis.cluster`: some nodes of a Redis Cluster, which name the rest.
    pub cluster: Option<ClusterOptions>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// `redis.waitReplicas` (and `redis.waitTimeout`); `None` when 0 (off).
    pub durability: Option<Durability>,
}

/// `redis.waitReplicas` and `redis.waitTimeout`: a write is acknowledged
/// once `replicas` replicas confirm it (`WAIT` behind it), and fails with
/// `ERR_SESSION_NOT_REPLICATED` when they do not within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    pub replicas: u32,
    pub timeout: Duration,
}

impl Durability {
    /// The most replicas a write may wait for: more than any deployment has.
    const MAX_REPLICAS: u64 = 100;

    fn parse(o: &Map<String, Value>, command_timeout: Duration) -> Result<Option<Durability>> {
        let replicas = match o.get("waitReplicas") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= Self::MAX_REPLICAS)
                .ok_or_else(|| {
                    SessionError::config(format!(
                        "redis.waitReplicas must be a whole number from 0 to {}",
                        Self::MAX_REPLICAS
                    ))
                })?,
        };
        let timeout = match o.get("waitTimeout") {
            None | Some(Value::Null) => command_timeout / 2,
            Some(_) => millis(o, "waitTimeout")?,
        };
        if timeout >= command_timeout {
            return Err(SessionError::config(format!(
                "redis.waitTimeout ({} ms) must be shorter than redis.commandTimeout ({} ms): a write waits for both",
                timeout.as_millis(),
                command_timeout.as_millis()
            )));
        }
        Ok((replicas > 0).then_some(Durability {
            replicas: replicas as u32,
            timeout,
        }))
    }
}

/// `redis.sentinel`: `{ name, nodes: [{ host, port }], username, password }`.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelOptions {
    /// The primary's name, as the sentinels know it (`sentinel monitor <name> ...`).
    pub name: String,
    pub nodes: Vec<(String, u16)>,
    /// Credentials of the sentinels themselves (`requirepass` of a sentinel);
    /// the primary's are `redis.username` / `redis.password`.
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to the sentinels (the primary's is `redis.tls`).
    pub tls: Option<TlsOptions>,
}

impl SentinelOptions {
    fn parse(value: Option<&Value>) -> Result<Option<SentinelOptions>> {
        let Some(o) = opt_object(value, "redis.sentinel")? else {
            return Ok(None);
        };
        known::only(o, "redis.sentinel", known::SENTINEL)?;
        let name = opt_string(o, "name", "redis.sentinel.name")?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                SessionError::config(
                    "redis.sentinel.name must name the primary, as the sentinels know it",
                )
            })?;
        let nodes = nodes(o.get("nodes"), "redis.sentinel.nodes", 26379)?;
        let tls = TlsOptions::parse_verified(o.get("tls"), "redis.sentinel.tls", "the sentinels'")?;
        Ok(Some(SentinelOptions {
            name,
            nodes,
            tls,
            username: opt_string(o, "username", "redis.sentinel.username")?,
            password: opt_string(o, "password", "redis.sentinel.password")?
                .filter(|p| !p.is_empty()),
        }))
    }
}

/// `redis.cluster`: `{ nodes: [{ host, port }], username, password, tls }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    pub nodes: Vec<(String, u16)>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to every node (redis-rs's rustls).
    pub tls: Option<TlsOptions>,
}

impl ClusterOptions {
    fn parse(value: Option<&Value>) -> Result<Option<ClusterOptions>> {
        let Some(o) = opt_object(value, "redis.cluster")? else {
            return Ok(None);
        };
        known::only(o, "redis.cluster", known::CLUSTER)?;
        let tls = TlsOptions::parse_verified(o.get("tls"), "redis.cluster.tls", "the nodes'")?;
        Ok(Some(ClusterOptions {
            tls,
            nodes: nodes(o.get("nodes"), "redis.cluster.nodes", 6379)?,
            username: opt_string(o, "username", "redis.cluster.username")?,
            password: opt_string(o, "password", "redis.cluster.password")?
                .filter(|p| !p.is_empty()),
        }))
    }
}

/// The option `what`: a non-empty list of `{ host, port }` (`default_port`
/// where a node gives none).
fn nodes(value: Option<&Value>, what: &str, default_port: u16) -> Result<Vec<(String, u16)>> {
    let nodes = match value {
        Some(Value::Array(nodes)) if !nodes.is_empty() => nodes,
        _ => {
            return Err(SessionError::config(format!(
                "{what} must be a non-empty array of {{ host, port }}"
            )))
        }
    };
    nodes
        .iter()
        .map(|node| {
            let node = node.as_object().ok_or_else(|| {
                SessionError::config(format!("{what} must be [{{ host, port }}, ...]"))
            })?;
            known::only(node, &format!("{what}[]"), known::NODE)?;
            let host = opt_string(node, "host", &format!("{what}[].host"))?
                .unwrap_or_else(|| "127.0.0.1".into());
            let port = match node.get("port") {
                None | Some(Value::Null) => default_port,
                given => port(given)?,
            };
            Ok((host, port))
        })
        .collect()
}

/// TLS for the connection to Redis. The handshake is Node's (`tls.connect`);
/// these are its options, checked here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsOptions {
    /// PEM: the CA certificates to trust instead of Node's bundled ones.
    pub ca: Option<String>,
    /// PEM: a client certificate and its private key, for `tls-auth-clients`.
    pub cert: Option<String>,
    pub key: Option<String>,
    /// The name the server's certificate must hold (SNI); the host by default.
    pub servername: Option<String>,
    /// `false` accepts any certificate (tests only: it gives up what TLS is for).
    pub reject_unauthorized: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionOptions {
    /// `SELECT`ed database; `None` keeps the URL's (or 0).
    pub db_index: Option<i64>,
    /// Idle timeout (`EXPIRE` on every request), in seconds.
    pub tti_secs: u64,
    pub prefix: String,
    /// Secrets for signing (the first) and verifying (all) the cookie. Empty when
    /// the app relies on `cookie-parser`'s secret instead.
    pub secrets: Vec<String>,
    pub cookie: CookieOptions,
    pub max_value_bytes: usize,
    /// The most keys one session may hold.
    pub max_fields: usize,
    /// Absolute session lifetime in seconds, from creation; off by default.
    pub max_lifetime_secs: Option<u64>,
    /// The most sessions one user may be signed in with; signing in beyond
    /// it ends the least recently active ones.
    pub max_sessions_per_user: usize,
    /// Whether the per-request idle refresh completes before `next()`.
    pub await_touch: bool,
    /// `session.refreshErrors`: whether an error of the per-request refresh
    /// goes to `next(err)` (`'next'`), or the route runs (`'ignore'`, the default).
    pub refresh_errors_to_next: bool,
    /// `session.persistent`: every session's cookie carries `Max-Age`.
    pub persistent: bool,
    /// `session.lazy`: a new visitor's session is stored, and its cookie
    /// sent, at its first write; a request that writes nothing costs neither.
    pub lazy: bool,
    /// `session.legacyIds`: whether an id of alt-session 0.0.1's shape whose
    /// session does not exist may still be created by a write (0.0.1 issued
    /// ids without storing anything). On by default, for a rollout from
    /// 0.0.1; off after it, such an id is unknown, as any other.
    pub legacy_ids: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CookieOptions {
    pub name: String,
    pub path: String,
    pub domain: Option<String>,
    pub http_only: bool,
    pub same_site: SameSite,
    pub secure: SecureMode,
    /// `Partitioned` (CHIPS: a cookie kept apart per top-level site).
    pub partitioned: bool,
    pub priority: Option<Priority>,
}

/// The `Priority` attribute (Chrome's eviction order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
    /// No `SameSite` attribute at all.
    Off,
    /// `None` on a cookie marked `Secure`, `Lax` on one that is not
    /// (express-session's `'auto'`: a cross-site cookie where it can be one).
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureMode {
    Never,
    Always,
    /// `Secure` exactly when the request came over HTTPS (`req.secure`).
    Auto,
}

impl Config {
    /// The options of the express-session entry point (see [`express`]).
    pub fn from_express_json(options: &Value) -> Result<(Config, ExpressOptions)> {
        express::from_json(options)
    }

    pub fn from_json(options: &Value) -> Result<Config> {
        let root = object_or_empty(options, "options")?;
        known::only(&root, "", known::ROOT)?;
        let redis = object_or_empty(field(&root, "redis"), "redis")?;
        known::only(&redis, "redis", known::REDIS)?;
        let session = object_or_empty(field(&root, "session"), "session")?;
        known::only(&session, "session", known::SESSION)?;
        Ok(Config {
            redis: RedisOptions::parse(&redis)?,
            session: SessionOptions::parse(&session)?,
        })
    }
}

impl RedisOptions {
    fn parse(o: &Map<String, Value>) -> Result<RedisOptions> {
        let url = opt_string(o, "url", "redis.url")?;
        if let Some(url) = &url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(SessionError::config(
                    "redis.url must start with redis:// or rediss://",
                ));
            }
        }
        // The original took `pass || password || auth_pass`, in that order.
        let mut password = None;
        for key in ["pass", "password", "auth_pass"] {
            let given = opt_string(o, key, &format!("redis.{key}"))?.filter(|p| !p.is_empty());
            password = password.or(given);
        }
        let tls = TlsOptions::parse(o.get("tls"), "redis.tls")?;
        let sentinel = SentinelOptions::parse(o.get("sentinel"))?;
        let command_timeout = millis(o, "commandTimeout")?;
        if sentinel.is_some() && tls.as_ref().is_some_and(|tls| !tls.reject_unauthorized) {
            return Err(SessionError::config(
                "redis.tls.rejectUnauthorized: false is not supported under Sentinel: the primary's certificate is always verified",
            ));
        }
        Ok(RedisOptions {
            url,
            host: opt_string(o, "host", "redis.host")?.unwrap_or_else(|| "127.0.0.1".into()),
            port: port(o.get("port"))?,
            username: opt_string(o, "username", "redis.username")?,
            password,
            tls,
            cluster: ClusterOptions::parse(o.get("cluster"))?,
            sentinel,
            connect_timeout: millis(o, "connectTimeout")?,
            command_timeout,
            durability: Durability::parse(o, command_timeout)?,
        })
    }
}

impl TlsOptions {
    /// `true`, `false`, or `{ ca, cert, key, servername, rejectUnauthorized }`
    /// (PEM strings; JavaScript turns Buffers into strings first), at the
    /// option `what` (`redis.tls`, `redis.sentinel.tls`).
    /// [`TlsOptions::parse`] for connections redis-rs makes (to sentinels,
    /// to cluster nodes), which always verify `whose` certificates:
    /// `rejectUnauthorized: false` is refused.
    fn parse_verified(
        value: Option<&Value>,
        what: &str,
        whose: &str,
    ) -> Result<Option<TlsOptions>> {
        let tls = TlsOptions::parse(value, what)?;
        if tls.as_ref().is_some_and(|tls| !tls.reject_unauthorized) {
            return Err(SessionError::config(format!(
                "{what}.rejectUnauthorized: false is not supported: {whose} certificates are always verified"
            )));
        }
        Ok(tls)
    }

    fn parse(value: Option<&Value>, what: &str) -> Result<Option<TlsOptions>> {
        let o = match value {
            None | Some(Value::Null) | Some(Value::Bool(false)) => return Ok(None),
            Some(Value::Bool(true)) => return Ok(Some(TlsOptions::default_verified())),
            Some(Value::Object(o)) => o,
            Some(_) => {
                return Err(SessionError::config(format!(
                    "{what} must be true, false or an object"
                )))
            }
        };
        known::only(o, what, known::TLS)?;
        let pem = |key: &str| -> Result<Option<String>> {
            let value = opt_string(o, key, &format!("{what}.{key}"))?;
            if value.as_deref().is_some_and(|v| !v.contains("-----BEGIN ")) {
                return Err(SessionError::config(format!(
                    "{what}.{key} must be PEM text (-----BEGIN ...), as a string or a Buffer"
                )));
            }
            Ok(value)
        };
        let tls = TlsOptions {
            ca: pem("ca")?,
            cert: pem("cert")?,
            key: pem("key")?,
            servername: opt_string(o, "servername", &format!("{what}.servername"))?,
            reject_unauthorized: opt_bool(
                o,
                "rejectUnauthorized",
                &format!("{what}.rejectUnauthorized"),
            )?
            .unwrap_or(true),
        };
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(SessionError::config(format!(
                "{what}.cert and {what}.key go together: a client certificate needs its key"
            )));
        }
        Ok(Some(tls))
    }

    /// TLS verified against Node's trusted CAs, the server name from the host.
    pub fn default_verified() -> TlsOptions {
        TlsOptions {
            reject_unauthorized: true,
            ..TlsOptions::default()
        }
    }
}

impl SessionOptions {
    fn parse(o: &Map<String, Value>) -> Result<SessionOptions> {
        let db_index =
            match o.get("dbIndex") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
                    SessionError::config("session.dbIndex must be an integer >= 0")
                })?),
            };
        let tti_secs = match o.get("tti") {
            None | Some(Value::Null) => DEFAULT_TTI_SECS,
            Some(v) => v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                SessionError::config("session.tti must be a whole number of seconds > 0")
            })?,
        };
        let prefix =
            opt_string(o, "prefix", "session.prefix")?.unwrap_or_else(|| DEFAULT_PREFIX.into());
        if prefix.is_empty() || prefix.chars().any(char::is_control) {
            return Err(SessionError::config(
                "session.prefix must be a non-empty string without control characters",
            ));
        }
        let max_value_bytes = match o.get("maxValueBytes") {
            None | Some(Value::Null) => DEFAULT_MAX_VALUE_BYTES,
            Some(v) => v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                SessionError::config("session.maxValueBytes must be a whole number > 0")
            })? as usize,
        };
        let max_fields = match o.get("maxFields") {
            None | Some(Value::Null) => DEFAULT_MAX_FIELDS,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_MAX_FIELDS as u64).contains(n))
                .ok_or_else(|| {
                    SessionError::config(format!(
                        "session.maxFields must be a whole number from 1 to {MAX_MAX_FIELDS}"
                    ))
                })? as usize,
        };
        let max_sessions_per_user = match o.get("maxSessionsPerUser") {
            None | Some(Value::Null) => DEFAULT_MAX_SESSIONS_PER_USER,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_MAX_SESSIONS_PER_USER).contains(n))
                .ok_or_else(|| {
                    SessionError::config(format!(
                        "session.maxSessionsPerUser must be a whole number from 1 to {MAX_MAX_SESSIONS_PER_USER}"
                    ))
                })? as usize,
        };
        let max_lifetime_secs = match o.get("maxLifetime") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                SessionError::config("session.maxLifetime must be a whole number of seconds > 0")
            })?),
        };
        let persistent = opt_bool(o, "persistent", "session.persistent")?.unwrap_or(false);
        let await_touch = opt_bool(o, "awaitTouch", "session.awaitTouch")?.unwrap_or(true);
        if persistent && !await_touch {
            return Err(SessionError::config(
                "session.persistent needs session.awaitTouch: true: a refresh may send the cookie again, and must do so before the response",
            ));
        }
        Ok(SessionOptions {
            db_index,
            max_fields,
            max_lifetime_secs,
            max_sessions_per_user,
            tti_secs,
            prefix,
            secrets: secrets(o.get("secret"))?,
            cookie: CookieOptions::parse(o)?,
            max_value_bytes,
            await_touch,
            refresh_errors_to_next: refresh_errors(o.get("refreshErrors"))?,
            lazy: opt_bool(o, "lazy", "session.lazy")?.unwrap_or(false),
            persistent,
            legacy_ids: opt_bool(o, "legacyIds", "session.legacyIds")?.unwrap_or(true),
        })
    }
}

impl CookieOptions {
    /// A cookie's attributes given per request (the express-session entry
    /// point's `req.session.cookie`, or its `cookie(req)`): checked as the
    /// options are, under the engine's cookie name.
    pub fn with_attributes(&self, attributes: &Value) -> Result<CookieOptions> {
        let mut o = object_or_empty(attributes, "cookie")?;
        o.insert("name".into(), self.name.clone().into());
        CookieOptions::parse(&o).map_err(|err| SessionError::argument(err.message))
    }

    fn parse(o: &Map<String, Value>) -> Result<CookieOptions> {
        let name = opt_string(o, "name", "session.name")?.unwrap_or_else(|| "sid".into());
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(SessionError::config(
                "session.name must be a cookie name (letters, digits, !#$%&'*+-.^_`|~)",
            ));
        }
        let path = opt_string(o, "path", "session.path")?.unwrap_or_else(|| "/".into());
        if !path.starts_with('/') || !path.bytes().all(is_attribute_byte) {
            return Err(SessionError::config(
                "session.path must start with / and hold no ';' or control characters",
            ));
        }
        let domain = opt_string(o, "domain", "session.domain")?.filter(|d| !d.is_empty());
        if let Some(domain) = &domain {
            let valid = domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !valid {
                return Err(SessionError::config(
                    "session.domain must be a host name (letters, digits, '.', '-')",
                ));
            }
        }
        let secure = match o.get("secure") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => SecureMode::Never,
            Some(Value::Bool(true)) => SecureMode::Always,
            Some(Value::String(s)) if s == "auto" => SecureMode::Auto,
            Some(_) => {
                return Err(SessionError::config(
                    "session.secure must be true, false or 'auto'",
                ))
            }
        };
        let same_site = match o.get("sameSite") {
            None | Some(Value::Null) => SameSite::Lax,
            Some(Value::Bool(false)) => SameSite::Off,
            Some(Value::Bool(true)) => SameSite::Strict,
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "lax" => SameSite::Lax,
                "strict" => SameSite::Strict,
                "none" => SameSite::None,
                "auto" => SameSite::Auto,
                _ => return Err(same_site_error()),
            },
            Some(_) => return Err(same_site_error()),
        };
        if same_site == SameSite::None && secure != SecureMode::Always {
            return Err(SessionError::config(
                "session.sameSite 'none' needs session.secure: true (browsers drop the cookie otherwise)",
            ));
        }
        Ok(CookieOptions {
            name,
            path,
            domain,
            http_only: opt_bool(o, "httpOnly", "session.httpOnly")?.unwrap_or(true),
            same_site,
            secure,
            partitioned: opt_bool(o, "partitioned", "session.partitioned")?.unwrap_or(false),
            priority: priority(o.get("priority"))?,
        })
    }
}

fn priority(value: Option<&Value>) -> Result<Option<Priority>> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match value.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("low") => Ok(Some(Priority::Low)),
        Some("medium") => Ok(Some(Priority::Medium)),
        Some("high") => Ok(Some(Priority::High)),
        _ => Err(SessionError::config(
            "session.priority must be 'low', 'medium' or 'high'",
        )),
    }
}

fn same_site_error() -> SessionError {
    SessionError::config("session.sameSite must be 'lax', 'strict', 'none', 'auto' or false")
}

/// RFC 6265 cookie-name characters (an HTTP token).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Characters allowed in a cookie attribute value.
fn is_attribute_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b';'
}

/// The object at the option `what`; `None` when absent or null.
fn opt_object<'a>(value: Option<&'a Value>, what: &str) -> Result<Option<&'a Map<String, Value>>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(SessionError::config(format!("{what} must be an object"))),
    }
}

fn object_or_empty(value: &Value, what: &str) -> Result<Map<String, Value>> {
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map.clone()),
        _ => Err(SessionError::config(format!("{what} must be an object"))),
    }
}

fn field<'a>(o: &'a Map<String, Value>, key: &str) -> &'a Value {
    o.get(key).unwrap_or(&Value::Null)
}

fn opt_string(o: &Map<String, Value>, key: &str, what: &str) -> Result<Option<String>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(SessionError::config(format!("{what} must be a string"))),
    }
}

fn opt_bool(o: &Map<String, Value>, key: &str, what: &str) -> Result<Option<bool>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(SessionError::config(format!("{what} must be a boolean"))),
    }
}

/// Port as a number or a string of digits (node_redis took both).
fn port(value: Option<&Value>) -> Result<u16> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(6379),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        Some(_) => None,
    };
    parsed
        .filter(|p| (1..=65535).contains(p))
        .map(|p| p as u16)
        .ok_or_else(|| SessionError::config("redis.port must be an integer from 1 to 65535"))
}

fn millis(o: &Map<String, Value>, key: &str) -> Result<Duration> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(Duration::from_millis(DEFAULT_TIMEOUT_MS)),
        Some(v) => v
            .as_u64()
            .filter(|ms| (1..=600_000).contains(ms))
            .map(Duration::from_millis)
            .ok_or_else(|| {
                SessionError::config(format!(
                    "redis.{key} must be a whole number of milliseconds from 1 to 600000"
                ))
            }),
    }
}

/// `session.refreshErrors`: `'ignore'` (the default) or `'next'`; whether the latter.
fn refresh_errors(value: Option<&Value>) -> Result<bool> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) if s == "ignore" => Ok(false),
        Some(Value::String(s)) if s == "next" => Ok(true),
        Some(_) => Err(SessionError::config(
            "session.refreshErrors must be 'ignore' (the route runs) or 'next' (next(err))",
        )),
    }
}

fn secrets(value: Option<&Value>) -> Result<Vec<String>> {
    let invalid =
        || SessionError::config("session.secret must be a non-empty string or array of them");
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if !s.is_empty() => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                _ => Err(invalid()),
            })
            .collect(),
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn parse(options: Value) -> Result<Config> {
        Config::from_json(&options)
    }

    fn config_error(options: Value) -> String {
        let err = parse(options).expect_err("options should be rejected");
        assert_eq!(err.code, ErrorCode::Config);
        err.message
    }

    #[test]
    fn defaults_match_the_original() {
        let config = parse(json!({})).unwrap();
        assert_eq!(config.session.tti_secs, 300);
        assert_eq!(config.session.prefix, "session");
        assert_eq!(config.session.cookie.name, "sid");
        assert_eq!(config.session.cookie.path, "/");
        assert!(config.session.cookie.http_only);
        assert_eq!(config.session.cookie.secure, SecureMode::Never);
        assert_eq!(config.redis.host, "127.0.0.1");
        assert_eq!(config.redis.port, 6379);
        assert_eq!(config.session.db_index, None);
    }

    #[test]
    fn original_options_are_understood() {
        let config = parse(json!({
            "redis": { "host": "localhost", "port": "6390", "auth_pass": "p@ss" },
            "session": { "dbIndex": 2, "tti": 60, "prefix": "sess", "secure": true, "domain": "example.com" }
        }))
        .unwrap();
        assert_eq!(config.redis.host, "localhost");
        assert_eq!(config.redis.port, 6390);
        assert_eq!(config.redis.password.as_deref(), Some("p@ss"));
        assert_eq!(config.session.db_index, Some(2));
        assert_eq!(config.session.tti_secs, 60);
        assert_eq!(config.session.prefix, "sess");
        assert_eq!(config.session.cookie.secure, SecureMode::Always);
        assert_eq!(config.session.cookie.domain.as_deref(), Some("example.com"));
    }

    #[test]
    fn rejects_bad_values_with_a_message_naming_the_option() {
        assert!(config_error(json!({"session": {"tti": -1}})).contains("session.tti"));
        assert!(config_error(json!({"session": {"tti": "abc"}})).contains("session.tti"));
        assert!(config_error(json!({"session": {"tti": 1.5}})).contains("session.tti"));
        assert!(config_error(json!({"redis": {"port": 70000}})).contains("redis.port"));
        assert!(config_error(json!({"redis": {"port": "63x9"}})).contains("redis.port"));
        assert!(config_error(json!({"redis": {"url": "http://x"}})).contains("redis.url"));
        assert!(config_error(json!({"session": {"secret": ""}})).contains("session.secret"));
        assert!(config_error(json!({"session": {"secret": [1]}})).contains("session.secret"));
        assert!(config_error(json!({"session": {"name": "a b"}})).contains("session.name"));
        assert!(config_error(json!({"session": {"domain": "a;b"}})).contains("session.domain"));
        assert!(config_error(json!({"session": {"sameSite": "none"}})).contains("secure"));
        assert!(config_error(json!({"session": 5})).contains("session must be an object"));
        assert!(config_error(json!({"redis": {"commandTimeout": 0}})).contains("commandTimeout"));
        assert!(config_error(json!({"session": {"maxFields": 0}})).contains("maxFields"));
        assert!(config_error(json!({"session": {"maxLifetime": -5}})).contains("maxLifetime"));
        assert!(config_error(json!({"session": {"maxFields": 5000}})).contains("maxFields"));
        let sessions_per_user =
            |n: Value| config_error(json!({"session": {"maxSessionsPerUser": n}}));
        assert!(sessions_per_user(json!(0)).contains("maxSessionsPerUser"));
        assert!(sessions_per_user(json!(1.5)).contains("maxSessionsPerUser"));
        assert!(config_error(json!({"redis": {"waitReplicas": -1}})).contains("waitReplicas"));
        assert!(
            config_error(json!({"redis": {"waitReplicas": 1, "waitTimeout": 1000}}))
                .contains("shorter than redis.commandTimeout")
        );
    }

    #[test]
    fn durable_writes_and_the_sessions_per_user_cap() {
        let config = |options| Config::from_json(&options).unwrap();
        let off = config(json!({}));
        assert_eq!(off.redis.durability, None);
        assert_eq!(off.session.max_sessions_per_user, 100);
        let on = config(json!({"redis": {"waitReplicas": 2, "commandTimeout": 800}}));
        assert_eq!(
            on.redis.durability,
            Some(Durability {
                replicas: 2,
                timeout: Duration::from_millis(400)
            }),
            "waitTimeout defaults to half of commandTimeout"
        );
        let given = config(
            json!({"redis": {"waitReplicas": 1, "waitTimeout": 50}, "session": {"maxSessionsPerUser": 3}}),
        );
        assert_eq!(
            given.redis.durability.map(|d| d.timeout),
            Some(Duration::from_millis(50))
        );
        assert_eq!(given.session.max_sessions_per_user, 3);
    }

    #[test]
    fn password_precedence_is_the_originals() {
        let config =
            parse(json!({"redis": {"auth_pass": "c", "password": "b", "pass": "a"}})).unwrap();
        assert_eq!(config.redis.password.as_deref(), Some("a"));
        let config = parse(json!({"redis": {"auth_pass": "c", "password": "b"}})).unwrap();
        assert_eq!(config.redis.password.as_deref(), Some("b"));
    }

    #[test]
    fn secrets_accept_a_string_or_a_rotation_list() {
        let one = parse(json!({"session": {"secret": "a"}})).unwrap();
        assert_eq!(one.session.secrets, vec!["a"]);
        let many = parse(json!({"session": {"secret": ["new", "old"]}})).unwrap();
        assert_eq!(many.session.secrets, vec!["new", "old"]);
    }
}
