'use strict';

/**
 * `req.session.cookie` of the express-session entry point
 * (lib/express-session.js): express-session's Cookie, the session cookie's
 * lifetime and attributes as the route sees and changes them. Its Rust
 * twin, src/cookie.rs, writes the `Set-Cookie` from them.
 */

const ATTRIBUTES = ['domain', 'secure', 'sameSite', 'partitioned', 'priority'];

/**
 * `req.session.cookie`: express-session's Cookie, made from the `cookie`
 * options (or what `cookie(req)` gave). The engine writes the `Set-Cookie`
 * (src/cookie.rs), from the options it checked at start-up, or from this
 * cookie's own attributes where a request changed them.
 */
class Cookie {
  constructor(options) {
    this.path = options.path !== undefined ? options.path : '/';
    this._expires = null;
    this.originalMaxAge = null;
    this.httpOnly = options.httpOnly !== undefined ? options.httpOnly : true;
    for (const name of ATTRIBUTES) if (options[name] !== undefined) this[name] = options[name];
    if (options.maxAge != null) this.maxAge = options.maxAge;
    else if (options.expires) this.expires = new Date(options.expires);
  }

  /** Its attributes, as the engine reads them (`CookieOptions::with_attributes`). */
  attributes() {
    const { path, httpOnly, domain, secure, sameSite, partitioned, priority } = this;
    return JSON.stringify({ path, httpOnly, domain, secure, sameSite, partitioned, priority });
  }

  get expires() {
    return this._expires;
  }

  set expires(date) {
    this._expires = date || null; // false, as express-session takes it: the browser session
    this.originalMaxAge = this.maxAge;
  }

  /** Milliseconds left; setting it sets `expires` that far from now. */
  get maxAge() {
    return this._expires instanceof Date ? this._expires.valueOf() - Date.now() : this._expires;
  }

  set maxAge(ms) {
    if (ms && typeof ms !== 'number' && !(ms instanceof Date)) {
      throw new TypeError('maxAge must be a number or Date');
    }
    if (typeof ms !== 'number') {
      this.expires = ms;
      return;
    }
    this._expires = new Date(Date.now() + ms);
    this.originalMaxAge = ms; // as given: not what is left a millisecond later
  }

  /** The lifetime a session kept (its `cookie` field): expiring `originalMaxAge` from now, or with the browser. */
  adopt(kept) {
    if (kept === null || typeof kept !== 'object') return;
    const { originalMaxAge } = kept;
    if (originalMaxAge === null) this.expires = null;
    else if (typeof originalMaxAge === 'number' && originalMaxAge > 0) this.maxAge = originalMaxAge;
  }

  toJSON() {
    const { originalMaxAge, expires, secure, httpOnly, domain, path, sameSite } = this;
    return { originalMaxAge, expires, secure, httpOnly, domain, path, sameSite };
  }
}

module.exports = { Cookie };
