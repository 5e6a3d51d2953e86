//! Where one Redis server is, and what every connection to it says first:
//! the URL or host and port, credentials, database and TLS of the options.

use redis::{Cmd, ConnectionAddr, IntoConnectionInfo};

use super::with;
use crate::config::{RedisOptions, TlsOptions};
use crate::error::{ErrorCode, Result, SessionError};

/// Where the socket connects to (Node resolves the host name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// Where to connect and what every connection says first.
#[derive(Debug)]
pub struct Target {
    pub address: Address,
    /// TLS, for `redis.tls` or a `rediss://` URL (the handshake is Node's).
    pub tls: Option<TlsOptions>,
    /// `AUTH` (when a password is set) and `SELECT` (when the database is not 0).
    pub handshake: Vec<Cmd>,
    /// The credentials in that `AUTH` (Sentinel checks the primary with them).
    pub username: Option<String>,
    pub password: Option<String>,
}

/// `AUTH` with these credentials, if there is a password.
pub fn auth(username: Option<&str>, password: Option<&str>) -> Option<Cmd> {
    let mut auth = redis::cmd("AUTH");
    if let Some(username) = username {
        auth.arg(username);
    }
    Some(with(auth, password?))
}

/// The URL (or host and port), with explicit credentials and database
/// (`session.dbIndex`) taking precedence over the URL's.
pub fn target(redis: &RedisOptions, db_index: Option<i64>) -> Result<Target> {
    let (url, url_tls) = match &redis.url {
        // redis-rs reads the rest of a rediss:// URL as it reads redis://;
        // TLS itself is Node's, so only the scheme says to use it.
        Some(url) => match url.strip_prefix("rediss://") {
            Some(rest) => (format!("redis://{rest}"), true),
            None => (url.clone(), false),
        },
        None => match redis.host.contains(':') {
            true => (format!("redis://[{}]:{}", redis.host, redis.port), false),
            false => (format!("redis://{}:{}", redis.host, redis.port), false),
        },
    };
    let info = url
        .as_str()
        .into_connection_info()
        .map_err(|err| SessionError::caused_by(ErrorCode::Config, "redis options", &err))?;
    let ConnectionAddr::Tcp(host, port) = info.addr() else {
        return Err(SessionError::config("redis.url must name a host and port"));
    };
    let address = Address {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: *port,
    };
    let tls = match (&redis.tls, url_tls) {
        (Some(tls), _) => Some(tls.clone()),
        (None, true) => Some(TlsOptions::default_verified()),
        (None, false) => None,
    };
    let settings = info.redis_settings();
    let username = redis.username.as_deref().or(settings.username());
    let password = redis.password.as_deref().or(settings.password());
    let db = db_index.unwrap_or(settings.db());
    let mut handshake: Vec<Cmd> = auth(username, password).into_iter().collect();
    if db != 0 {
        handshake.push(with(redis::cmd("SELECT"), db));
    }
    Ok(Target {
        address,
        tls,
        handshake,
        username: username.map(str::to_owned),
        password: password.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    /// The target, with its handshake as readable words.
    fn target_of(options: serde_json::Value) -> (Address, Vec<Vec<String>>) {
        let config = Config::from_json(&options).unwrap();
        let target = target(&config.redis, config.session.db_index).unwrap();
        let words = target
            .handshake
            .iter()
            .map(|cmd| {
                cmd.args_iter()
                    .map(|arg| match arg {
                        redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        _ => "<not a simple argument>".into(),
                    })
                    .collect()
            })
            .collect();
        (target.address, words)
    }

    fn tcp(host: &str, port: u16) -> Address {
        Address {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn host_port_password_and_db_index() {
        let (address, handshake) = target_of(json!({
            "redis": {"host": "localhost", "port": 6390, "auth_pass": "p@ss:/"},
            "session": {"dbIndex": 2}
        }));
        assert_eq!(address, tcp("localhost", 6390));
        assert_eq!(handshake, [vec!["AUTH", "p@ss:/"], vec!["SELECT", "2"]]);
        let (_, none) = target_of(json!({}));
        assert!(
            none.is_empty(),
            "no password, database 0: nothing to say first"
        );
        let (v6, _) = target_of(json!({"redis": {"host": "::1"}}));
        assert_eq!(v6, tcp("::1", 6379));
    }

    #[test]
    fn rediss_and_tls_options_ask_for_tls() {
        let config = |options| Config::from_json(&options).unwrap();
        let url = config(json!({"redis": {"url": "rediss://u:pw@h:6380/2"}}));
        let target_of_url = target(&url.redis, None).unwrap();
        assert_eq!(target_of_url.address, tcp("h", 6380));
        assert_eq!(target_of_url.tls, Some(TlsOptions::default_verified()));
        assert_eq!(
            target_of_url.handshake.len(),
            2,
            "AUTH and SELECT as for redis://"
        );
        let ca = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----";
        let object =
            config(json!({"redis": {"port": 6380, "tls": {"ca": ca, "servername": "db"}}}));
        let tls = target(&object.redis, None).unwrap().tls.unwrap();
        assert_eq!(
            (
                tls.ca.as_deref(),
                tls.servername.as_deref(),
                tls.reject_unauthorized
            ),
            (Some(ca), Some("db"), true)
        );
        assert_eq!(target(&config(json!({})).redis, None).unwrap().tls, None);
    }

    #[test]
    fn explicit_options_override_the_url() {
        let (address, from_url) = target_of(json!({"redis": {"url": "redis://u:pw@h:1/3"}}));
        assert_eq!(address, tcp("h", 1));
        assert_eq!(from_url, [vec!["AUTH", "u", "pw"], vec!["SELECT", "3"]]);
        let (_, overridden) = target_of(json!({
            "redis": {"url": "redis://u:pw@h:1/3", "password": "other"},
            "session": {"dbIndex": 5}
        }));
        assert_eq!(
            overridden,
            [vec!["AUTH", "u", "other"], vec!["SELECT", "5"]]
        );
    }
}
