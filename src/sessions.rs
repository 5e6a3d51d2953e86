//! The rules of sessions, whatever the store: a request's session resolved
//! from its cookie (or a fresh one), each operation checked, and the store
//! key built from a checked id. Stores then only run what passed.

use crate::config::{CookieOptions, SameSite, SecureMode, SessionOptions};
use crate::cookie;
use crate::error::{ErrorCode, Result, SessionError};
use crate::sid;
use crate::store::{too_many_fields, Item, Limits, Op};

/// How a request's session was resolved from its cookie.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub id: String,
    pub is_new: bool,
    /// Whether a write may create the session's hash: for an id issued now,
    /// and (under `session.legacyIds`) for an id of alt-session 0.0.1's
    /// shape, which 0.0.1 issued without storing anything (so a missing hash
    /// need not mean a dead session). Every other id whose hash is missing
    /// is dead, and never revived.
    pub may_create: bool,
    /// A `Set-Cookie` value to send, when the visitor needs a (new or re-signed) cookie.
    pub set_cookie: Option<String>,
    /// Whether the id is a signed-in session's ([`sid::is_bound`]): its
    /// per-request refresh is [`Op::Seen`], which tells the user id.
    pub bound: bool,
}

/// Whether a cookie set in a request (secure or not) carries `Secure`.
fn secure_under(mode: SecureMode, request_secure: bool) -> bool {
    match mode {
        SecureMode::Never => false,
        SecureMode::Always => true,
        SecureMode::Auto => request_secure,
    }
}

/// The longest session key (a hash field name), in bytes of UTF-8: a key is
/// a name the application chose, and a megabyte one is a mistake or an attack.
pub const MAX_KEY_BYTES: usize = 1024;

pub struct Sessions {
    pub session: SessionOptions,
    /// What every write obeys, from `session`; fixed for the engine's life.
    pub limits: Limits,
    closed: bool,
}

impl Sessions {
    pub fn new(session: SessionOptions) -> Sessions {
        let limits = Limits {
            ttl_secs: session.tti_secs,
            max_fields: session.max_fields,
            max_lifetime_secs: session.max_lifetime_secs,
            max_sessions_per_user: session.max_sessions_per_user,
            persistent: session.persistent,
        };
        Sessions {
            session,
            limits,
            closed: false,
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
        Ok(match known {
            // Signed by a retired secret: re-sign with the current one.
            Some((id, secret_index)) => Opened {
                set_cookie: (secret_index > 0).then(|| {
                    let max_age = self.max_age(false);
                    cookie::set_cookie(&self.session.cookie, &id, signing_secret, secure, max_age)
                }),
                may_create: self.session.legacy_ids && sid::is_legacy(&id),
                bound: sid::is_bound(&id),
                id,
                is_new: false,
            },
            None => self.issue(false, false, signing_secret, secure)?,
        })
    }

    /// A fresh cookie's `Max-Age`: under `session.persistent`, or for a
    /// session that asks to be remembered; `None` otherwise.
    fn max_age(&self, remember: bool) -> Option<u64> {
        (self.limits.persistent || remember).then(|| self.limits.cookie_max_age_secs())
    }

    /// The `Set-Cookie` of a persistent session's renewal (the refresh said
    /// when, see `Op::Touch`): `max_age_ms` from now, rounded up.
    pub fn renewed_cookie(
        &self,
        id: &str,
        max_age_ms: u64,
        parser_secret: Option<&str>,
        request_secure: bool,
    ) -> Result<String> {
        sid::ensure_valid(id)?;
        let secret = self.signing_secret(parser_secret)?;
        let secure = self.is_secure(request_secure);
        let max_age = Some(max_age_ms.div_ceil(1000));
        Ok(cookie::set_cookie(
            &self.session.cookie,
            id,
            secret,
            secure,
            max_age,
        ))
    }

    /// The express-session entry point's cookie for `id`: expiring at
    /// `expires_at` (unix ms), or with the browser session.
    /// `attributes`: this cookie's own (see `CookieOptions::with_attributes`),
    /// where they differ from the options'.
    pub fn cookie_until(
        &self,
        id: &str,
        expires_at: Option<u64>,
        attributes: Option<&CookieOptions>,
        parser_secret: Option<&str>,
        request_secure: bool,
    ) -> Result<String> {
        sid::ensure_valid(id)?;
        let secret = self.signing_secret(parser_secret)?;
        let mut options = attributes.unwrap_or(&self.session.cookie);
        let resolved;
        // express-session's `sameSite: 'auto'` follows the request, not the Secure flag.
        if options.same_site == SameSite::Auto {
            let same_site = if request_secure {
                SameSite::None
            } else {
                SameSite::Lax
            };
            resolved = CookieOptions {
                same_site,
                ..options.clone()
            };
            options = &resolved;
        }
        let secure = secure_under(options.secure, request_secure);
        Ok(cookie::set_cookie_until(
            options, id, secret, secure, expires_at,
        ))
    }

    /// A fresh session for a request that moves to one (`regenerate()`, a
    /// write to an ended session), or (`bound`) that signs in; `remember`:
    /// its cookie is persistent whatever `session.persistent` says.
    pub fn open_fresh(
        &self,
        bound: bool,
        remember: bool,
        parser_secret: Option<&str>,
        request_secure: bool,
    ) -> Result<Opened> {
        let secret = self.signing_secret(parser_secret)?;
        self.issue(bound, remember, secret, self.is_secure(request_secure))
    }

    /// The secret that signs a cookie set now: `session.secret`'s first, or
    /// cookie-parser's (`parser_secret`); `ERR_SESSION_SECRET` without either.
    fn signing_secret<'a>(&'a self, parser_secret: Option<&'a str>) -> Result<&'a str> {
        let name = &self.session.cookie.name;
        let (_, secret) = cookie::identify(&self.session.secrets, name, None, None, parser_secret)?;
        Ok(secret)
    }

    /// A fresh id and its cookie, signed with `signing_secret`.
    fn issue(
        &self,
        bound: bool,
        remember: bool,
        signing_secret: &str,
        secure: bool,
    ) -> Result<Opened> {
        let id = if bound {
            sid::generate_bound()?
        } else {
            sid::generate()?
        };
        Ok(Opened {
            set_cookie: Some(cookie::set_cookie(
                &self.session.cookie,
                &id,
                signing_secret,
                secure,
                self.max_age(remember),
            )),
            id,
            is_new: true,
            may_create: true,
            bound,
        })
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self, request_secure: bool) -> String {
        cookie::clear_cookie(&self.session.cookie, self.is_secure(request_secure))
    }

    fn is_secure(&self, request_secure: bool) -> bool {
        secure_under(self.session.cookie.secure, request_secure)
    }

    /// Checks every operation of a batch: each one that passes becomes a
    /// command on its store key, each one that does not fails alone.
    pub fn prepare(&self, ops: Vec<(String, Result<Op>)>) -> Vec<Item> {
        ops.into_iter()
            .map(|(id, op)| {
                if self.closed {
                    return Item::Ready(Err(closed()));
                }
                if op.as_ref().is_ok_and(Op::is_on_user_index) {
                    return match op.and_then(|op| self.check_index_op(&id, &op).map(|()| op)) {
                        Ok(op) => Item::Run(self.user_index_key(&id), op),
                        Err(err) => Item::Ready(Err(err)),
                    };
                }
                match op.and_then(|op| self.check(&id, &op).map(|()| op)) {
                    Ok(Op::Rename { to }) => {
                        Item::Run(self.key(&id), Op::Rename { to: self.key(&to) })
                    }
                    Ok(op) => Item::Run(self.key(&id), op),
                    Err(err) => Item::Ready(Err(err)),
                }
            })
            .collect()
    }

    /// From now on every operation fails with `ERR_SESSION_CLOSED`.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// The store key of a session: `prefix:id`, as the original built it.
    fn key(&self, id: &str) -> String {
        // Built by hand: `format!` costs several times as much, once per operation.
        let prefix = &self.session.prefix;
        let mut key = String::with_capacity(prefix.len() + 1 + id.len());
        key.push_str(prefix);
        key.push(':');
        key.push_str(id);
        key
    }

    /// The key of a user's index of sessions: `prefix:user:<user id>`. No
    /// session key has this shape: `user` is shorter than any id.
    fn user_index_key(&self, user: &str) -> String {
        format!("{}:user:{user}", self.session.prefix)
    }

    /// A user id must be a non-empty string of at most [`MAX_USER_ID_BYTES`];
    /// the session ids given with it must have a valid shape.
    fn check_index_op(&self, user: &str, op: &Op) -> Result<()> {
        check_user_id(user)?;
        match op {
            Op::IndexAdd { id, .. } => sid::ensure_valid(id),
            Op::IndexRemove(ids) => ids.iter().try_for_each(|id| sid::ensure_valid(id)),
            _ => Ok(()),
        }
    }

    /// The id must have a valid shape (it becomes part of a store key), field
    /// names must be non-empty (always a caller's bug otherwise) and at most
    /// [`MAX_KEY_BYTES`], and values must fit `maxValueBytes`.
    fn check(&self, id: &str, op: &Op) -> Result<()> {
        sid::ensure_valid(id)?;
        let fields: Box<dyn Iterator<Item = &String>> = match op {
            Op::Get(field) | Op::Incr { field, .. } => Box::new(std::iter::once(field)),
            Op::MGet(fields) => Box::new(fields.iter()),
            Op::Write { set, delete, .. } => Box::new(set.iter().map(|(f, _)| f).chain(delete)),
            Op::Rename { to } => {
                sid::ensure_valid(to)?;
                Box::new(std::iter::empty())
            }
            Op::Bind { user, meta, .. } => {
                self.check_login(user, meta.as_deref())?;
                Box::new(std::iter::empty())
            }
            _ => Box::new(std::iter::empty()),
        };
        for field in fields {
            // Empty, or starting with NUL (reserved for the store's own fields).
            if field.is_empty() || field.starts_with('\0') {
                return Err(SessionError::argument(
                    "session keys must be non-empty strings not starting with NUL",
                ));
            }
            if field.len() > MAX_KEY_BYTES {
                return Err(SessionError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "a session key is {} bytes, over the limit of {MAX_KEY_BYTES}",
                        field.len()
                    ),
                ));
            }
        }
        // Deletions are not counted against maxFields: they never add a field.
        if let Op::Write { set, .. } = op {
            let max_fields = self.session.max_fields;
            if set.len() > max_fields {
                return Err(too_many_fields(max_fields));
            }
            for (field, value) in set {
                self.check_value(&format!("the value of {field:?}"), value)?;
            }
        }
        Ok(())
    }

    /// What `login()` binds: a user id and, when given, meta that fits
    /// `maxValueBytes`. Checked before login() moves anything.
    pub fn check_login(&self, user: &str, meta: Option<&str>) -> Result<()> {
        check_user_id(user)?;
        self.check_value("the meta of login()", meta.unwrap_or_default())
    }

    /// A value must fit `maxValueBytes`.
    fn check_value(&self, what: &str, value: &str) -> Result<()> {
        let limit = self.session.max_value_bytes;
        if value.len() <= limit {
            return Ok(());
        }
        Err(SessionError::new(
            ErrorCode::TooLarge,
            format!(
                "{what} is {} bytes, over session.maxValueBytes ({limit})",
                value.len()
            ),
        ))
    }
}

/// The longest user id, in bytes of UTF-8: it becomes part of a store key.
pub const MAX_USER_ID_BYTES: usize = 256;

fn check_user_id(user: &str) -> Result<()> {
    if user.is_empty() || user.len() > MAX_USER_ID_BYTES {
        return Err(SessionError::argument(format!(
            "a user id must be a non-empty string of at most {MAX_USER_ID_BYTES} bytes"
        )));
    }
    Ok(())
}

/// What every call gets once the store is closed.
pub fn closed() -> SessionError {
    SessionError::new(ErrorCode::Closed, "the session store is closed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn core(session: serde_json::Value) -> Sessions {
        let config = Config::from_json(&json!({ "session": session })).unwrap();
        Sessions::new(config.session)
    }

    fn error_code(item: &Item) -> Option<ErrorCode> {
        match item {
            Item::Ready(Err(err)) => Some(err.code),
            _ => None,
        }
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
        let mut core = core(json!({ "secret": "k", "maxValueBytes": 4 }));
        let id = core.open(None, None, None, false).unwrap().id;
        let items = core.prepare(vec![
            (id.clone(), Ok(write("a", "1"))),
            (id.clone(), Ok(write("b", "12345"))),
            ("bad:id".into(), Ok(Op::Get("a".into()))),
            (id.clone(), Ok(Op::Get("".into()))),
            (id.clone(), Ok(Op::Rename { to: id.clone() })),
            (id.clone(), Ok(Op::Get("k".repeat(MAX_KEY_BYTES + 1)))),
            (id.clone(), Ok(Op::Get("k".repeat(MAX_KEY_BYTES)))),
            (
                id.clone(),
                Ok(Op::Write {
                    set: vec![],
                    delete: (0..5000).map(|i| format!("k{i}")).collect(),
                    create: false,
                }),
            ),
        ]);
        let codes: Vec<_> = items.iter().map(error_code).collect();
        assert_eq!(
            codes,
            [
                None,
                Some(ErrorCode::TooLarge),
                Some(ErrorCode::Argument),
                Some(ErrorCode::Argument),
                None,
                Some(ErrorCode::TooLarge),
                None,
                None,
            ]
        );
        let key = format!("session:{id}");
        assert!(matches!(&items[0], Item::Run(k, _) if *k == key));
        assert!(matches!(&items[4], Item::Run(_, Op::Rename { to }) if *to == key));

        core.close();
        let after = core.prepare(vec![(id, Ok(Op::Touch))]);
        assert_eq!(error_code(&after[0]), Some(ErrorCode::Closed));
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

    #[test]
    fn user_index_operations_go_to_the_users_key_and_check_their_ids() {
        let core = core(json!({ "secret": "k", "prefix": "app" }));
        let id = core.open(None, None, None, false).unwrap().id;
        let add = |id: &str| Op::IndexAdd {
            id: id.into(),
            renew: false,
        };
        let items = core.prepare(vec![
            ("ann".into(), Ok(add(&id))),
            ("ann".into(), Ok(add("bad:id"))),
            ("".into(), Ok(Op::IndexList)),
            ("u".repeat(MAX_USER_ID_BYTES + 1), Ok(Op::IndexList)),
            (
                "ann".into(),
                Ok(Op::IndexRemove(vec![id.clone(), "x y".into()])),
            ),
        ]);
        assert!(matches!(&items[0], Item::Run(key, _) if key == "app:user:ann"));
        let codes: Vec<_> = items[1..].iter().map(error_code).collect();
        assert_eq!(codes, [Some(ErrorCode::Argument); 4]);
        let bound = core.open_fresh(true, false, None, false).unwrap();
        assert!(bound.bound && sid::is_bound(&bound.id) && !sid::is_bound(&id));
        let reopened = core.open(
            Some(&format!(
                "sid={}",
                bound.set_cookie.unwrap().split(';').next().unwrap()[4..].to_owned()
            )),
            None,
            None,
            false,
        );
        assert!(
            reopened.unwrap().bound,
            "a signed-in id says so from its cookie"
        );
    }
}
