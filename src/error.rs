//! The one error type of the engine. Every failure carries a stable code that
//! JavaScript code can branch on, and a message holding the whole cause chain.

use std::fmt;

use napi_derive::napi;

/// Declares the error codes once: the Rust enum, its text, and the
/// JavaScript object the binding exports (`ErrorCode.Config` is
/// `'ERR_SESSION_CONFIG'`), which the JS half uses for the codes it raises.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $name:ident = $code:literal,)*) => {
        /// Stable error codes, surfaced to JavaScript as `err.code`.
        #[napi(string_enum)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* #[napi(value = $code)] $name,)*
        }

        impl ErrorCode {
            const ALL: &[ErrorCode] = &[$(ErrorCode::$name),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $code,)*
                }
            }
        }
    };
}

// The docs as `#[doc]` attributes: napi-rs copies their text into
// binding.d.ts, where `///` inside a macro would arrive as raw strings.
error_codes! {
    #[doc = " Invalid middleware options."]
    Config = "ERR_SESSION_CONFIG",
    #[doc = " Invalid argument to a session method (key, value, id)."]
    Argument = "ERR_SESSION_ARGUMENT",
    #[doc = " A value or a session over the configured size limits."]
    TooLarge = "ERR_SESSION_TOO_LARGE",
    #[doc = " No usable secret to sign or verify cookies."]
    Secret = "ERR_SESSION_SECRET",
    #[doc = " The store could not be reached, or the connection broke."]
    Connection = "ERR_SESSION_CONNECTION",
    #[doc = " The store did not answer within `commandTimeout`."]
    Timeout = "ERR_SESSION_TIMEOUT",
    #[doc = " The store answered with an error (wrong type, script error, ...)."]
    Store = "ERR_SESSION_STORE",
    #[doc = " The engine was closed with `close()`."]
    Closed = "ERR_SESSION_CLOSED",
    #[doc = " Another request changed the session at the same moment (two"]
    #[doc = " `regenerate()` calls of one cookie); nothing was done."]
    Conflict = "ERR_SESSION_CONFLICT",
    #[doc = " Redis refused the credentials, or wants some that were not given."]
    Auth = "ERR_SESSION_AUTH",
    #[doc = " Redis is out of memory (`maxmemory`): nothing was written."]
    Full = "ERR_SESSION_STORE_FULL",
    #[doc = " The TLS handshake with Redis failed: a certificate that does not"]
    #[doc = " verify, a client certificate refused or missing, no TLS on that port."]
    Tls = "ERR_SESSION_TLS",
    #[doc = " The sentinels could not name the primary: none knows that name, or"]
    #[doc = " none answered in time."]
    Sentinel = "ERR_SESSION_SENTINEL",
    #[doc = " A write was applied on the primary, but fewer replicas than"]
    #[doc = " `redis.waitReplicas` confirmed it in time: it may or may not survive"]
    #[doc = " a failover."]
    NotReplicated = "ERR_SESSION_NOT_REPLICATED",
    #[doc = " A session method called after the response was sent (raised in JavaScript)."]
    HeadersSent = "ERR_SESSION_HEADERS_SENT",
    #[doc = " The native engine could not be loaded nor built (raised in JavaScript,"]
    #[doc = " by the loader, with the code's text: the binding is what failed)."]
    Native = "ERR_SESSION_NATIVE",
}

impl ErrorCode {
    /// The code named by `as_str`'s text, for codes that come back from JavaScript.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError {
    pub code: ErrorCode,
    pub message: String,
}

pub type Result<T, E = SessionError> = std::result::Result<T, E>;

impl SessionError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        SessionError {
            code,
            message: message.into(),
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Config, message)
    }

    pub fn argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Argument, message)
    }

    /// Wraps a lower-level error, keeping its whole `source()` chain in the message.
    pub fn caused_by(code: ErrorCode, context: &str, cause: &dyn std::error::Error) -> Self {
        let mut message = format!("{context}: {cause}");
        let mut source = cause.source();
        while let Some(inner) = source {
            // Some errors repeat their source in their own text: say it once.
            let text = inner.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = inner.source();
        }
        Self::new(code, message)
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for SessionError {}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// What a native call throws: JavaScript receives an `Error` whose `code` is
/// the session code (napi-rs sets it from the status) and whose message is
/// the whole cause chain. Every error crosses the boundary so: thrown (a
/// `#[napi]` function returning `Result<T, Thrown>`), or as a value, a
/// batch's result (`lib.rs`'s `Failure`).
pub type Thrown = napi::Error<ErrorCode>;

impl From<SessionError> for Thrown {
    fn from(err: SessionError) -> Self {
        napi::Error::new(err.code, err.message)
    }
}

/// A failure of napi itself (creating a value, a Promise) as a session error.
pub fn internal(err: napi::Error) -> Thrown {
    napi::Error::new(
        ErrorCode::Store,
        format!("the native engine could not answer: {}", err.reason),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_starts_with_the_stable_code() {
        let err = SessionError::argument("key must be a non-empty string");
        assert_eq!(
            err.to_string(),
            "ERR_SESSION_ARGUMENT: key must be a non-empty string"
        );
    }

    #[test]
    fn caused_by_keeps_the_whole_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = SessionError::caused_by(ErrorCode::Connection, "connecting", &io);
        assert_eq!(err.code, ErrorCode::Connection);
        assert!(err.message.starts_with("connecting: refused"));
    }
}
