// Type definitions for alt-session/express-session (express-session's API on alt-session's
// engine), hand-written to match lib/express-session.js. The Redis options and the
// middleware's per-user methods are the per-key API's (index.d.ts), imported, not copied.

/// <reference types="node" />

import type { IncomingMessage, ServerResponse } from 'node:http';
import altSession = require('./index');

/**
 * Creates express-session's middleware on alt-session's engine, on Redis: express-session's
 * options (`store` aside: `redis`), the same `req.session`.
 *
 * Options are validated at once: an unknown name, or a bad value, throws an error with code
 * `ERR_SESSION_CONFIG`. The connection to Redis is made on first use.
 *
 * @example
 * const session = require('alt-session/express-session');
 * app.use(session({ secret: 'keyboard cat', resave: false, saveUninitialized: false, redis: { url: 'redis://127.0.0.1:6379' } }));
 */
declare function session(options?: session.SessionOptions): session.SessionMiddleware;

declare namespace session {
  /** The same middleware on the embedded in-memory store (no Redis): for tests and single-process apps. `redis` is ignored. */
  function mock(options?: SessionOptions): SessionMiddleware;

  interface SessionOptions {
    /**
     * Secret(s) the session id cookie is signed with. The first signs; all of them verify
     * (rotation: put the new secret first). Default: none, the secret of
     * `cookie-parser(secret)`, which must then be mounted first.
     */
    secret?: string | readonly string[];
    /** The session id cookie's name. Default `'connect.sid'` (express-session's). */
    name?: string;
    /** express-session's older name for `name` (`name` wins when both are given). */
    key?: string;
    /**
     * The session id cookie's attributes, and its lifetime (`maxAge`); or a function of the
     * request that gives them (each request's are checked when its cookie is set).
     */
    cookie?: CookieOptions | ((req: IncomingMessage) => CookieOptions);
    /** Sends the cookie on every response, its expiry reset to `maxAge` from now. Default `false`. */
    rolling?: boolean;
    /**
     * express-session's "save a session the request did not change": accepted, and changes
     * nothing here (a save writes only what changed; the load refreshed the idle timeout).
     */
    resave?: boolean;
    /** Stores a new session, and sends its cookie, even when the request put nothing in it. Default `true`. */
    saveUninitialized?: boolean;
    /** What `delete req.session` (or setting it to `null`) does: `'keep'` the stored session, or `'destroy'` it. Default `'keep'`. */
    unset?: 'keep' | 'destroy';
    /**
     * Trust the reverse proxy's `X-Forwarded-Proto` for `cookie.secure: 'auto'` (`true`), only
     * the connection (`false`), or Express's `trust proxy` setting (not set, the default).
     */
    proxy?: boolean;
    /**
     * Makes each new session's id instead of the engine (the operating system's CSPRNG). An id
     * is held to the engine's rules (22 to 128 characters of `A-Z a-z 0-9 - _ + / =`: a
     * `uuid` passes), else the request fails with `ERR_SESSION_ARGUMENT`. Not with `userOf`
     * (a signed-in session's id is the engine's).
     */
    genid?(req: IncomingMessage): string;
    /** Refused (`ERR_SESSION_CONFIG`): sessions are stored on Redis (`redis`) or in memory (`session.mock()`). */
    store?: never;
    /** Where Redis is: one server (`url`, or `host` and `port`), TLS, Sentinel or Cluster. Ignored by {@link mock}. */
    redis?: altSession.RedisOptions;
    /** Key prefix: a session is the Redis hash `prefix + ':' + id`, as in the per-key API. Default `'session'`. */
    prefix?: string;
    /** Idle timeout in whole seconds when `cookie.maxAge` does not set one. Default `86400` (a day, as connect-redis). */
    tti?: number;
    /** Absolute session lifetime in whole seconds from its creation; activity never extends it. Default: none. */
    maxLifetime?: number;
    /**
     * The most sessions one user (as `userOf` says) may have (1 to 100000): beyond it the
     * user's least recently active sessions end. Default `100`.
     */
    maxSessionsPerUser?: number;
    /** Largest property value accepted, in bytes of its JSON text; a larger one fails the save with `ERR_SESSION_TOO_LARGE`. Default `1048576`. */
    maxValueBytes?: number;
    /** Most properties one session may hold (1 to 2000). Default `1000`. */
    maxFields?: number;
    /**
     * The user a session belongs to, read when it is saved: a change of user moves the
     * session to a fresh id (as a sign-in must), and lists it under the user for
     * `mw.sessions(userId)` and `mw.revoke(userId)`. `null`, `undefined` or `false`: nobody.
     *
     * @example
     * userOf: (s) => s.passport && s.passport.user // passport
     */
    userOf?(session: UserOfSession): string | number | false | null | undefined;
  }

  /** The session id cookie's options (express-session's `cookie`). */
  interface CookieOptions {
    /**
     * The cookie's lifetime in milliseconds (its `Expires` is set that far from now), and the
     * session's idle timeout. Not set (the default) or `null`: a cookie that ends with the
     * browser, and the session's idle timeout is `tti`.
     */
    maxAge?: number | null;
    /** A fixed `Expires` date (express-session deprecates it for `maxAge`). Default: none. */
    expires?: Date | null;
    /** `Secure` attribute: `true` always, `false` never, `'auto'` when the request came over HTTPS (see `proxy`). Default `false`. */
    secure?: boolean | 'auto';
    /** `HttpOnly` attribute. Default `true`. */
    httpOnly?: boolean;
    /**
     * `SameSite` attribute, any letter case: `true` means `'strict'`, `false` sends none;
     * `'none'` requires `secure: true`; `'auto'`: `None` over HTTPS, `Lax` over HTTP.
     * Default `'lax'` (express-session: none, which browsers take as `Lax`).
     */
    sameSite?: altSession.SessionOptions['sameSite'];
    /** `Domain` attribute (a host name). Default: none (a host-only cookie). */
    domain?: string;
    /** `Path` attribute; must start with `/`. Default `'/'`. */
    path?: string;
    /** `Partitioned` attribute (CHIPS). Default `false`. */
    partitioned?: boolean;
    /** `Priority` attribute. Default: none. */
    priority?: 'low' | 'medium' | 'high';
  }

  /** The middleware: `app.use(middleware)`; it is also an Express `RequestHandler`. */
  interface SessionMiddleware extends altSession.Events {
    (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void;
    /** The round trip to the store, in milliseconds (the per-key API's `ping()`). */
    ping: altSession.Middleware['ping'];
    /** What it counted: operations by kind, errors by code, latency, connections. */
    stats: altSession.Middleware['stats'];
    /**
     * The live sessions whose `userOf()` was `userId` when last saved, most recently seen
     * first (the per-key API's `sessions()`). Needs `userOf`.
     */
    sessions: altSession.Middleware['sessions'];
    /**
     * Ends every session of the user but `options.except` (a session id, e.g. the current
     * `req.sessionID`): each one's next request starts with a new, empty session (and
     * `req.sessionEnded`). Resolves how many ended. Needs `userOf`.
     */
    revoke: altSession.Middleware['revoke'];
    /** Graceful shutdown: refuses new calls, lets calls in flight finish and closes the connection. */
    close: altSession.Middleware['close'];
  }

  /**
   * The callback of `save()`, `reload()`, `destroy()` and `regenerate()`: an error, or nothing
   * (express-session's type).
   */
  // biome-ignore lint/suspicious/noExplicitAny: express-session's callback type, so that express-session code type-checks unchanged
  type SessionCallback = (err?: any) => void;

  /**
   * `req.session`'s methods and `cookie` (its data, {@link SessionData}, are its own
   * properties: `req.session.views = 1`; each one is a field of the session's Redis hash,
   * saved when the response ends if it changed).
   */
  interface Session {
    /** The session id, as `req.sessionID`. It changes at `regenerate()`, and when `userOf()`'s user changes. */
    readonly id: string;
    /** The session id cookie, for this session: its expiry can be changed per visitor (`req.session.cookie.maxAge = ms`). */
    cookie: Cookie;
    /** Replaces the session with a new, empty one under a new id; the old id ends at once (passport calls it at log-in and log-out). */
    regenerate(callback?: SessionCallback): this;
    /** Ends the session (deleted from the store, the cookie cleared) and removes `req.session`. */
    destroy(callback?: SessionCallback): this;
    /** Reads the session again from the store. */
    reload(callback?: SessionCallback): this;
    /** Saves what changed now (the response's end saves what changes after): before a redirect, or on a long-lived request. */
    save(callback?: SessionCallback): this;
    /** Resets the cookie's expiry to `maxAge` from now (the middleware does it on every request). */
    touch(): this;
    /** Resets the cookie's `maxAge` to `originalMaxAge`. */
    resetMaxAge(): this;
  }

  /**
   * `req.session.cookie`: made from the `cookie` options for each request. A route may change
   * any attribute for its own response (checked when the cookie is set: a wrong one fails
   * with `ERR_SESSION_ARGUMENT`); a changed `maxAge` (or `expires = false`) is kept by the
   * session for its later requests.
   */
  interface Cookie {
    /**
     * Milliseconds until the cookie expires; `null` for a cookie that ends with the browser.
     * Setting it sets `expires` that far from now.
     */
    maxAge: number | null;
    /** When the cookie expires; `null` for a cookie that ends with the browser. */
    expires: Date | null;
    /** The `maxAge` the cookie was given, in milliseconds; `null` for a cookie that ends with the browser. */
    originalMaxAge: number | null;
    httpOnly: boolean;
    path: string;
    domain?: string;
    secure?: boolean | 'auto';
    sameSite?: CookieOptions['sameSite'];
    partitioned?: boolean;
    priority?: CookieOptions['priority'];
  }

  /**
   * The properties an app keeps in `req.session`, declared by declaration merging (as with
   * express-session's `SessionData`); each is optional on `req.session`.
   *
   * @example
   * declare module 'alt-session/express-session' {
   *   interface SessionData {
   *     views: number;
   *   }
   * }
   */
  // biome-ignore lint/suspicious/noEmptyInterface: apps fill it in by declaration merging
  interface SessionData {}

  /** `req.session`'s type. */
  type RequestSession = Session & Partial<SessionData>;

  /**
   * What `userOf` is given: the session, with whatever other middleware put in it
   * (passport's `passport.user`) readable without declaring it in {@link SessionData}.
   */
  interface UserOfSession extends Session, Partial<SessionData> {
    // biome-ignore lint/suspicious/noExplicitAny: any middleware's data, e.g. `s.passport && s.passport.user`
    [property: string]: any;
  }

  /** The properties the middleware gives a request. */
  interface RequestProperties {
    /** This request's session. */
    session: RequestSession;
    /** This request's session id (as `req.session.id`). */
    sessionID: string;
  }
}

/*
 * `req.session` in the typings (see the end of index.d.ts for why it is declared there, on a
 * base type of Node's `IncomingMessage`, and never clashes with @types/express-session):
 *
 * - @types/express-session not in the program: `req.session` is this entry point's
 *   `RequestSession` (registered below in place of the per-key `Session`), `req.sessionID`
 *   a string;
 * - @types/express-session in the program (imported by the app or by another package's
 *   typings, as csrf-sync's and connect-redis's do, or included from node_modules/@types):
 *   `req.session` is express-session's own type (the same shape: this entry point is its
 *   drop-in), and the merge below makes the app's `SessionData` part of express-session's,
 *   so that either declaration types it: `declare module 'alt-session/express-session'`
 *   as well as `declare module 'express-session'` (an app migrating keeps its own, and
 *   csrf-sync's and connect-flash's apply).
 *
 * A module augmentation never brings its module into the program: the merge only applies
 * where express-session's typings already are, and where they are not installed it is
 * silently dropped. Where express-session itself is installed without its typings,
 * TypeScript refuses to augment it (TS2665, "untyped module"): the `@ts-ignore` keeps that
 * from failing the app's compile (`@ts-expect-error` would fail wherever nothing is wrong).
 */

/** The app's `SessionData`, for express-session's to extend. */
type AltSessionData = session.SessionData;

// @ts-ignore: TS2665 where express-session is installed without its typings (see above)
declare module 'express-session' {
  interface SessionData extends AltSessionData {}
}

declare module './index' {
  interface RequestTypes {
    expressSession: session.RequestProperties;
  }
}

declare module 'node:http' {
  interface IncomingMessage {
    /**
     * `true` when the request's cookie named a session that has ended (revoked, expired,
     * destroyed) and a new session was started for it (alt-session/express-session).
     */
    sessionEnded?: boolean;
  }
}

export = session;
