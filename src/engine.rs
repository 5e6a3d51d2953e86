//! The session engine behind the N-API class: validates each operation,
//! builds the store key from a checked id, runs operations on the store and
//! tracks what is in flight so that `close` can wait for it.

use std::future::Future;
use std::sync::Arc;

use crate::config::{SecureMode, SessionOptions};
use crate::cookie;
use crate::error::{ErrorCode, Result, SessionError};
use crate::sid;
use crate::store::{too_many_fields, InFlight, Limits, Op, Reply, Store};

/// How a request's session was resolved from its cookie.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub id: String,
    pub is_new: bool,
    /// A `Set-Cookie` value to send, when the visitor needs a (new or re-signed) cookie.
    pub set_cookie: Option<String>,
}

pub struct Core {
    store: Arc<dyn Store>,
    pub session: SessionOptions,
    /// What every write obeys, from `session`; fixed for the engine's life.
    limits: Limits,
    in_flight: Arc<InFlight>,
}

impl Core {
    pub fn new(store: Arc<dyn Store>, session: SessionOptions) -> Core {
        let limits = Limits {
            ttl_secs: session.tti_secs,
            max_fields: session.max_fields,
            max_lifetime_secs: session.max_lifetime_secs,
        };
        Core {
            store,
            session,
            limits,
            in_flight: Arc::default(),
        }
    }

    /// Resolves the session a request names (see [`cookie::identify`]), or starts one.
    pub fn open(
        &self,
        header: Option<&str>,
        parser_id: Option<&str>,
        parser_secret: Option<&str>,
        request_secure: bool,
    ) -> Result<Opened> {
        let (known, signing_secret) = cookie::identify(
            &self.session.secrets,
            &self.session.cookie.name,
            header,
            parser_id,
            parser_secret,
        )?;
        let secure = self.is_secure(request_secure);
        let sign = |id: &str| cookie::set_cookie(&self.session.cookie, id, signing_secret, secure);
        Ok(match known {
            // Signed by a retired secret: re-sign with the current one.
            Some((id, secret_index)) => Opened {
                set_cookie: (secret_index > 0).then(|| sign(&id)),
                id,
                is_new: false,
            },
            None => {
                let id = sid::generate()?;
                Opened {
                    set_cookie: Some(sign(&id)),
                    id,
                    is_new: true,
                }
            }
        })
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self, request_secure: bool) -> String {
        cookie::clear_cookie(&self.session.cookie, self.is_secure(request_secure))
    }

    fn is_secure(&self, request_secure: bool) -> bool {
        match self.session.cookie.secure {
            SecureMode::Never => false,
            SecureMode::Always => true,
            SecureMode::Auto => request_secure,
        }
    }

    /// Runs a batch: every valid operation goes to the store at once (on
    /// Redis, one pipeline); each operation succeeds or fails on its own. The
    /// batch counts as in flight from this call on (not from its first poll),
    /// so a `close` issued right after it waits for it.
    pub fn run_batch(
        self: &Arc<Self>,
        ops: Vec<(String, Result<Op>)>,
    ) -> impl Future<Output = Vec<Result<Reply>>> + Send + 'static {
        let in_flight = self.in_flight.enter();
        let mut results: Vec<Option<Result<Reply>>> = vec![None; ops.len()];
        let mut valid = Vec::with_capacity(ops.len());
        let mut positions = Vec::with_capacity(ops.len());
        for (position, (id, op)) in ops.into_iter().enumerate() {
            match op.and_then(|op| self.check(&id, &op).map(|()| op)) {
                Ok(op) => {
                    let op = match op {
                        Op::Rename { to } => Op::Rename { to: self.key(&to) },
                        other => other,
                    };
                    valid.push((self.key(&id), op));
                    positions.push(position);
                }
                Err(err) => results[position] = Some(Err(err)),
            }
        }
        let core = Arc::clone(self);
        async move {
            let replies = core.store.execute_batch(valid, core.limits).await;
            for (position, reply) in positions.into_iter().zip(replies) {
                results[position] = Some(reply);
            }
            drop(in_flight);
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(lost))
                .collect()
        }
    }

    /// The store key of a session: `prefix:id`, as the original built it.
    fn key(&self, id: &str) -> String {
        format!("{}:{}", self.session.prefix, id)
    }

    /// Refuses new work, waits for the calls in flight, then lets the connection close.
    pub async fn close(&self) {
        self.store.close().await;
        self.in_flight.wait_idle().await;
    }

    /// The id must have a valid shape (it becomes part of a store key), field
    /// names must be non-empty (always a caller's bug otherwise), and values
    /// must fit `maxValueBytes`.
    fn check(&self, id: &str, op: &Op) -> Result<()> {
        sid::ensure_valid(id)?;
        // Empty, or starting with NUL (reserved for the store's own fields).
        let bad = |field: &String| field.is_empty() || field.starts_with('\0');
        let empty = match op {
            Op::Get(field) => bad(field),
            Op::MGet(fields) => fields.iter().any(bad),
            Op::Write { set, delete, .. } => {
                set.iter().any(|(f, _)| bad(f)) || delete.iter().any(bad)
            }
            Op::Incr { field, .. } => bad(field),
            Op::Rename { to } => {
                sid::ensure_valid(to)?;
                false
            }
            Op::GetAll | Op::Touch | Op::Destroy => false,
        };
        if empty {
            return Err(SessionError::argument(
                "session keys must be non-empty strings not starting with NUL",
            ));
        }
        let limit = self.session.max_value_bytes;
        if let Op::Write { set, delete, .. } = op {
            let max_fields = self.session.max_fields;
            if set.len() > max_fields || delete.len() > max_fields {
                return Err(too_many_fields(max_fields));
            }
            if let Some((field, value)) = set.iter().find(|(_, v)| v.len() > limit) {
                return Err(SessionError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the value of {field:?} is {} bytes, over session.maxValueBytes ({limit})",
                        value.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A store that answered fewer operations than it was given (a bug).
fn lost() -> Result<Reply> {
    Err(SessionError::new(
        ErrorCode::Store,
        "the store lost an operation of the batch",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::memory::MemoryStore;
    use futures_util::FutureExt;
    use serde_json::json;

    fn core(session: serde_json::Value) -> Arc<Core> {
        let config = Config::from_json(&json!({ "session": session })).unwrap();
        Arc::new(Core::new(Arc::new(MemoryStore::new()), config.session))
    }

    fn write(field: &str, value: &str) -> Op {
        Op::Write {
            set: vec![(field.into(), value.into())],
            delete: vec![],
            create: true,
        }
    }

    #[test]
    fn a_batch_fails_operation_by_operation() {
        let core = core(json!({ "secret": "k", "maxValueBytes": 4 }));
        let id = core.open(None, None, None, false).unwrap().id;
        let results = core
            .run_batch(vec![
                (id.clone(), Ok(write("a", "1"))),
                (id.clone(), Ok(write("b", "12345"))),
                ("bad:id".into(), Ok(Op::Get("a".into()))),
                (id.clone(), Ok(Op::Get("".into()))),
                (id.clone(), Ok(Op::Get("a".into()))),
            ])
            .now_or_never()
            .unwrap();
        assert_eq!(results[0], Ok(Reply::Done));
        assert_eq!(results[1].as_ref().unwrap_err().code, ErrorCode::TooLarge);
        assert_eq!(results[2].as_ref().unwrap_err().code, ErrorCode::Argument);
        assert_eq!(results[3].as_ref().unwrap_err().code, ErrorCode::Argument);
        assert_eq!(results[4], Ok(Reply::Value(Some("1".into()))));
    }

    #[test]
    fn secure_auto_follows_the_request() {
        let core = core(json!({ "secret": "k", "secure": "auto" }));
        let plain = core.open(None, None, None, false).unwrap();
        let tls = core.open(None, None, None, true).unwrap();
        assert!(!plain.set_cookie.unwrap().contains("Secure"));
        assert!(tls.set_cookie.unwrap().ends_with("; Secure"));
        assert!(core.clear_cookie(true).ends_with("; Secure"));
    }
}
