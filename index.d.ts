// Type definitions for alt-session (the Rust engine), hand-written to match index.js.

/// <reference types="node" />

import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Creates the session middleware on Redis.
 *
 * Options are validated at once: a bad option throws a {@link altSession.SessionError}
 * with code `ERR_SESSION_CONFIG`. The connection to Redis is made on first use, so the
 * middleware can be created before Redis is up.
 *
 * @example
 * const altSession = require('alt-session');
 * app.use(altSession({ redis: { host: '127.0.0.1', port: 6379 }, session: { secret: 'keyboard cat' } }));
 */
declare function altSession(options?: altSession.Options): altSession.Middleware;

declare namespace altSession {
  /**
   * The same middleware on the embedded in-memory store (no Redis): for tests and
   * single-process apps. Sessions are isolated and expire after `session.tti` idle
   * seconds, as on Redis. `redis` options are ignored.
   */
  function mock(options?: Options): Middleware;

  /**
   * The factory again, as a named export: `import { altSession } from 'alt-session'`
   * (the default export and `require('alt-session')` are the factory itself).
   */
  const altSession: AltSession;

  interface Options {
    /** Where Redis is. Ignored by {@link mock}. */
    redis?: RedisOptions;
    /** The session cookie and the stored data. */
    session?: SessionOptions;
  }

  interface RedisOptions {
    /** Host name or IP address. Default `'127.0.0.1'`. Ignored when `url` is given. */
    host?: string;
    /** Port, as a number or a string of digits. Default `6379`. Ignored when `url` is given. */
    port?: number | string;
    /** Password (the original's node_redis 2 option name). Used when neither `pass` nor `password` is given. */
    auth_pass?: string;
    /** Password. Takes precedence over `password` and `auth_pass`, as in 0.0.1 (`pass || password || auth_pass`). */
    pass?: string;
    /** Password (`AUTH`). Takes precedence over `auth_pass`; `pass` over it; any of them over the URL's. */
    password?: string;
    /** ACL user name (Redis 6+); overrides the URL's. */
    username?: string;
    /**
     * `redis://[user[:password]@]host[:port][/db]`, or `rediss://...` for TLS. When given,
     * `host` and `port` are ignored; `username`, a password option and `session.dbIndex`
     * override the URL's.
     */
    url?: string;
    /**
     * TLS: `true` verifies the server against Node's trusted CAs, an object sets the
     * `tls.connect` options below. A `rediss://` URL turns it on as `true` does. Default `false`.
     */
    tls?: boolean | TlsOptions;
    /**
     * Redis under Sentinel: the primary's address comes from the sentinels (asked before
     * every new connection), not from `host`, `port` or `url`; `username`, the password
     * options and `tls` still apply to the primary.
     */
    sentinel?: SentinelOptions;
    /**
     * Redis Cluster: some of its nodes (they name the rest). Sessions shard by hash slot;
     * `host`, `port`, `url` and `sentinel` are then unused.
     */
    cluster?: ClusterOptions;
    /** How long to wait for a connection, in milliseconds (1 to 600000). Default `1000`. */
    connectTimeout?: number;
    /**
     * The longest a session call waits for Redis, in milliseconds (1 to 600000). Default `1000`.
     * A call past it fails with `ERR_SESSION_TIMEOUT`. It counts from when the call was made,
     * including any time it waited (behind a move, or during a Sentinel failover).
     */
    commandTimeout?: number;
    /**
     * Durable writes: a write (set, mset, remove, incr, invalidate, regenerate, login, logout,
     * the per-user index) is acknowledged only once this many replicas have it (`WAIT` behind
     * it; per node on a cluster). One not confirmed within `waitTimeout` fails with
     * `ERR_SESSION_NOT_REPLICATED`: applied on the primary, it may or may not survive a
     * failover. Default `0` (off).
     */
    waitReplicas?: number;
    /** How long a write waits for `waitReplicas`, in milliseconds; shorter than `commandTimeout`. Default: half of it. */
    waitTimeout?: number;
  }

  interface SentinelOptions {
    /** The primary's name, as the sentinels monitor it (`sentinel monitor <name> ...`). */
    name: string;
    /** The sentinels (port 26379 when not given). */
    nodes: ReadonlyArray<{ host?: string; port?: number | string }>;
    /** The sentinels' own ACL user, when they require one. */
    username?: string;
    /** The sentinels' own password (`requirepass` of the sentinels). */
    password?: string;
    /** TLS to the sentinels: `true` (the system's trusted CAs) or `{ ca, cert, key }`; certificates are always verified. */
    tls?: boolean | TlsOptions;
  }

  interface ClusterOptions {
    /** Some nodes of the cluster (port 6379 when not given). */
    nodes: ReadonlyArray<{ host?: string; port?: number | string }>;
    /** The nodes' ACL user. */
    username?: string;
    /** The nodes' password. */
    password?: string;
    /** TLS to every node: `true` (the system's trusted CAs) or `{ ca, cert, key }`; certificates are always verified. */
    tls?: boolean | TlsOptions;
  }

  /** TLS options (Node's `tls.connect`): PEM text, as strings or Buffers. */
  interface TlsOptions {
    /** The CA certificates to trust instead of Node's bundled ones. */
    ca?: string | Buffer;
    /** A client certificate, for a server with `tls-auth-clients yes`; needs `key`. */
    cert?: string | Buffer;
    /** The client certificate's private key. */
    key?: string | Buffer;
    /** The name the server's certificate must hold (SNI). Default: the host, unless it is an IP address. */
    servername?: string;
    /** `false` accepts any certificate: for tests only. Default `true`. */
    rejectUnauthorized?: boolean;
  }

  interface SessionOptions {
    /** Redis database number (`SELECT`), an integer >= 0. Default `0`. */
    dbIndex?: number;
    /**
     * Time to idle, in whole seconds > 0: a session untouched this long is removed
     * (`EXPIRE` on every request and every write). Default `300`.
     */
    tti?: number;
    /** Key prefix: a session is stored at `prefix + ':' + id`. Default `'session'`. */
    prefix?: string;
    /**
     * `Secure` cookie attribute: `true` always, `false` never, `'auto'` when the request
     * came over HTTPS (`req.secure`, which honours Express's `trust proxy`). Default `false`.
     */
    secure?: boolean | 'auto';
    /** Cookie `Domain` attribute (a host name). Default: none (the cookie is host-only). */
    domain?: string;
    /**
     * Secret(s) to sign the cookie with. The first signs; all of them verify (rotation:
     * put the new secret first, a cookie signed by an older one is re-signed).
     * Default: none, the secret of `cookie-parser(secret)`, which must then be mounted first.
     */
    secret?: string | readonly string[];
    /** Cookie name. Default `'sid'`. */
    name?: string;
    /** Cookie `Path` attribute; must start with `/`. Default `'/'`. */
    path?: string;
    /**
     * Cookie `SameSite` attribute, any letter case. `true` means `'strict'`; `false` sends
     * no `SameSite` attribute. `'none'` requires `secure: true`; `'auto'` is `None` on a
     * `Secure` cookie, else `Lax`. Default `'lax'`.
     */
    sameSite?: 'lax' | 'strict' | 'none' | 'auto' | 'Lax' | 'Strict' | 'None' | 'Auto' | boolean;
    /** Cookie `HttpOnly` attribute. Default `true`. */
    httpOnly?: boolean;
    /** Cookie `Partitioned` attribute (CHIPS; browsers want `Secure` with it). Default `false`. */
    partitioned?: boolean;
    /** Cookie `Priority` attribute (Chrome's eviction order). Default: none. */
    priority?: 'low' | 'medium' | 'high';
    /**
     * Largest value accepted, in bytes of its JSON text. A larger value fails with
     * `ERR_SESSION_TOO_LARGE` and nothing is written. Default `1048576` (1 MiB).
     */
    maxValueBytes?: number;
    /**
     * Absolute session lifetime in whole seconds from the session's creation; idle
     * refreshes never extend a session past it. Default: none.
     */
    maxLifetime?: number;
    /**
     * Most keys one session may hold (1 to 2000); a write over it fails with
     * `ERR_SESSION_TOO_LARGE` and writes nothing. Default `1000`.
     */
    maxFields?: number;
    /**
     * The most sessions one user may be signed in with (1 to 100000): signing in beyond it
     * ends the user's least recently active sessions (to within the hour a session in use
     * renews its lease). `sessions(userId)` lists at most this many. Default `100`.
     */
    maxSessionsPerUser?: number;
    /**
     * Whether the per-request idle refresh (`EXPIRE`) completes before `next()` is called
     * (an error there goes where `refreshErrors` says; a Redis already slow to answer is not
     * waited for). `false`: `next()` is called at once and a failed refresh is ignored.
     * Default `true`.
     */
    awaitTouch?: boolean;
    /**
     * What an error of the per-request refresh does: `'ignore'` (the default) runs the route
     * (its session calls fail on their own; a signed-in visitor reads as signed out);
     * `'next'` passes it to `next(err)`.
     */
    refreshErrors?: 'ignore' | 'next';
    /**
     * Every session's cookie carries `Max-Age` (twice `tti`, never past `maxLifetime`) and
     * outlives a browser restart; it is sent again when a refresh moves the session's expiry
     * past the cookie's. Default `false`: only `login(user, { remember: true })` makes one
     * persistent. Needs `awaitTouch: true`.
     */
    persistent?: boolean;
    /**
     * A new visitor's session is stored, and its cookie sent, at its first write (`set`,
     * `mset`, `incr`, `regenerate`, `login`): a request that writes nothing gets no
     * `Set-Cookie` and sends no Redis command (crawlers, health checks, consent rules).
     * Until then `req.session.id` is the id the first write will issue, stored nowhere, and
     * reads find nothing. A first write after the response was sent fails with
     * `ERR_SESSION_HEADERS_SENT`. Default `false` (0.0.1's behaviour: every new visitor gets
     * a cookie and a key).
     */
    lazy?: boolean;
    /**
     * Whether a write may create the session of an id in alt-session 0.0.1's shape that is
     * not stored (0.0.1 issued ids without storing them). Default `true`, for a rollout
     * from 0.0.1; set `false` once 0.0.1 no longer runs: such an id is then unknown, and a
     * write moves to a fresh session (live sessions under 0.0.1 ids keep their ids).
     */
    legacyIds?: boolean;
  }

  /** The middleware: `app.use(middleware)`. */
  /** Where a server is. */
  interface Address {
    host: string;
    port: number;
  }

  /** An open connection was lost (on a cluster: a primary stopped answering). */
  interface Disconnect extends Address {
    reason: string;
    code: SessionErrorCode;
  }

  /** The primary moved: under Sentinel, or (with `slots`) some of a cluster's slots. */
  interface Failover {
    from: Address;
    to: Address;
    /** On a cluster: how many slots moved from `from` to `to`. */
    slots?: number;
  }

  /**
   * What the middleware tells operators, as an EventEmitter (also logged with
   * `DEBUG=alt-session`): `connect` (a connection is open; on a cluster, a primary
   * answers), `disconnect` (an open one was lost), `failover` (the sentinels moved the
   * primary, or a cluster's slots changed primary), `error` (a connection could not be
   * opened, or a refresh failed where the route did not see it). An `error` nobody
   * listens to is logged, never thrown.
   */
  interface Events extends EventEmitter {
    on(event: 'connect', listener: (address: Address) => void): this;
    on(event: 'disconnect', listener: (detail: Disconnect) => void): this;
    on(event: 'failover', listener: (detail: Failover) => void): this;
    on(event: 'error', listener: (err: SessionError) => void): this;
    once(event: 'connect', listener: (address: Address) => void): this;
    once(event: 'disconnect', listener: (detail: Disconnect) => void): this;
    once(event: 'failover', listener: (detail: Failover) => void): this;
    once(event: 'error', listener: (err: SessionError) => void): this;
  }

  /** One kind of operation in `stats()`. */
  interface OperationStats {
    /** How many finished, errors included. */
    count: number;
    /** The errors among them, by code. */
    errors: Partial<Record<SessionErrorCode, number>>;
    /** From the call to its answer, in milliseconds (to 1%), since the start. */
    latency: { p50: number; p90: number; p99: number; max: number };
  }

  /** `mw.stats()`: counts since the middleware was made. */
  interface Stats {
    /** By operation (`get`, `write`, `load`, `seen`...): only those that ran. */
    operations: Record<string, OperationStats>;
    /** Every failed operation, by code. */
    errors: Partial<Record<SessionErrorCode, number>>;
    /** Operations issued and not answered yet. */
    pending: number;
    /** Connections opened, and how many of them were reconnections. */
    connects: number;
    reconnects: number;
    /** Each connection (none in memory): where, and whether it is open. */
    connections: Array<{ host: string | null; port: number | null; state: 'connected' | 'connecting' | 'disconnected' }>;
  }

  interface Middleware extends Events {
    (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void;
    /**
     * The round trip to the store, in milliseconds: one read through the same batches and
     * connection as every call (so it fails as they would, with their codes). For a health check.
     */
    ping(callback?: ValueCallback<number>): Promise<number>;
    /** What it counted: operations by kind, errors by code, latency, connections. */
    stats(): Stats;
    /**
     * Graceful shutdown: refuses new calls (they fail with `ERR_SESSION_CLOSED`),
     * lets calls in flight finish and closes the connection.
     */
    close(callback?: (err: SessionError | null) => void): Promise<void>;
    /**
     * The live sessions a user signed in with (`req.session.login(userId)`), most
     * recently seen first. A user id is a non-empty string or a safe integer.
     */
    sessions(userId: string | number, callback?: ValueCallback<UserSession[]>): Promise<UserSession[]>;
    /**
     * Ends every session of the user but `options.except` (a session id, e.g. the
     * current `req.session.id`): each one's next request starts signed out, and a
     * request in flight for one cannot bring it back. Resolves how many ended.
     */
    revoke(userId: string | number, callback?: ValueCallback<number>): Promise<number>;
    revoke(userId: string | number, options?: RevokeOptions, callback?: ValueCallback<number>): Promise<number>;
  }

  /** One signed-in session, as `sessions()` lists it. */
  interface UserSession {
    /** The session id: compare with `req.session.id` to mark the current one. */
    id: string;
    /** When it signed in (unix milliseconds). */
    createdAt: number;
    /** When a request last came with it (unix milliseconds). */
    lastSeenAt: number;
    /** `login()`'s `options.meta` (`null` when none was given). */
    meta: unknown;
  }

  interface RevokeOptions {
    /** A session id to leave signed in (the current one, for "sign out everywhere else"). */
    except?: string;
  }

  interface LoginOptions {
    /** Stored with the session (as JSON) and listed by `sessions()`: a device name, an IP address... */
    meta?: unknown;
    /**
     * "Remember me": the session's cookie becomes persistent (`Max-Age`, see
     * `SessionOptions.persistent`) and stays so through `regenerate()`. Default `false`.
     */
    remember?: boolean;
  }

  /**
   * The keys an app stores and their values' types, declared by declaration merging;
   * `req.session.get('views')` then resolves `number | null`, and `set('views', v)`
   * takes a number. Keys not declared stay allowed, as `unknown` (or the type argument
   * given: `get<User>('user')`). Declared once, it holds for every session of the app.
   *
   * @example
   * declare module 'alt-session' {
   *   interface SessionData {
   *     views: number;
   *     cart: string[];
   *   }
   * }
   */
  // biome-ignore lint/suspicious/noEmptyInterface: apps fill it in by declaration merging
  interface SessionData {}

  /**
   * Which middleware's properties a request carries in the typings (see the end of this
   * file): the per-key `{ session: Session }`, unless the typings of
   * `alt-session/express-session` are in the program (they add `expressSession` here).
   * Not for apps.
   */
  // biome-ignore lint/suspicious/noEmptyInterface: alt-session/express-session's typings fill it in by declaration merging
  interface RequestTypes {}

  /** Node-style callback of a session method that resolves nothing. */
  type Callback = (err: SessionError | null) => void;

  /** Node-style callback of a session method that resolves a value. */
  type ValueCallback<T> = (err: SessionError | null, value?: T) => void;

  /**
   * `req.session`. Every method takes an optional Node-style callback AND returns a
   * Promise (a rejection nobody listens to is never reported as unhandled).
   * Values are stored as JSON.
   */
  interface Session {
    /**
     * The session id (43 URL-safe characters for new sessions). It stays until
     * the session ends: it changes on `regenerate()` (at once, for the calls
     * that follow), and when a write finds the cookie's session ended (expired,
     * invalidated, regenerated away): the request then moves to a fresh session.
     */
    readonly id: string;
    /** Whether this request started the session (no live session came in with the cookie). */
    readonly isNew: boolean;
    /**
     * The user the session signed in as with `login()` (as a string), on every
     * request of the session; `null` when signed out (never signed in, logged
     * out, revoked, expired).
     */
    readonly userId: string | null;

    /**
     * Reads one key (`HGET`); a missing key reads as `null`. A key declared in
     * {@link SessionData} reads as its declared type; any other as `T` (default `unknown`).
     */
    get<K extends keyof SessionData & string>(key: K, callback?: ValueCallback<SessionData[K] | null>): Promise<SessionData[K] | null>;
    get<T = unknown>(key: string, callback?: ValueCallback<T | null>): Promise<T | null>;

    /**
     * Reads several keys (`HMGET`) into `{ key: value }`; missing keys read as `null`.
     * Keys declared in {@link SessionData} read as their declared types, the others as `T`.
     */
    mget<T = unknown, K extends string = string>(keys: readonly K[] | K, callback?: ValueCallback<ValuesOf<K, T>>): Promise<ValuesOf<K, T>>;

    /**
     * Reads every key of the session (`HGETALL`) into `{ key: value }`: the keys declared in
     * {@link SessionData} as their types (each may be missing), any other as `T`.
     */
    getAll<T = unknown>(callback?: ValueCallback<AllValues<T>>): Promise<AllValues<T>>;

    /**
     * Stores one key (`HSET` and `EXPIRE`, atomically). `undefined` removes the key
     * (as `JSON.stringify` drops it). A key declared in {@link SessionData} takes a
     * value of its declared type.
     */
    set<K extends string>(key: K, value: ValueToSet<K>, callback?: Callback): Promise<void>;

    /**
     * Stores several keys atomically (`HSET`, `HDEL`, `EXPIRE`): all of them, or none
     * on error. Keys whose value is `undefined` are removed. Keys declared in
     * {@link SessionData} take values of their declared types.
     */
    mset<T extends object>(
      values: T extends readonly unknown[] | ((...args: never[]) => unknown) ? never : T & DeclaredValues<T>,
      callback?: Callback
    ): Promise<void>;

    /** Removes one key or an array of keys (`HDEL` and `EXPIRE`, atomically). */
    remove(keys: string | readonly string[], callback?: Callback): Promise<void>;

    /**
     * Deletes the whole session (`DEL`) and clears the cookie, with the `Path` and
     * `Domain` it was set with.
     */
    invalidate(callback?: Callback): Promise<void>;

    /** Refreshes the idle timeout (`EXPIRE`); the middleware does this on every request. */
    touch(callback?: Callback): Promise<void>;

    /**
     * Adds `by` (a safe integer, default 1) to an integer key atomically (`HINCRBY`)
     * and resolves the new value. A key holding something other than an integer
     * fails with `ERR_SESSION_ARGUMENT`.
     */
    incr<K extends string>(key: NumericKey<K>, callback?: ValueCallback<number>): Promise<number>;
    incr<K extends string>(key: NumericKey<K>, by?: number, callback?: ValueCallback<number>): Promise<number>;

    /**
     * A new id and cookie for the same data; the old id stops working at once
     * (the hash is renamed atomically). Call it at login and at every privilege
     * change, against session fixation. Calls made after it, even in the same
     * tick, go to the new id. Fails, renaming nothing, with
     * `ERR_SESSION_HEADERS_SENT` after the response was sent, and with
     * `ERR_SESSION_CONFLICT` when another request regenerated the same session
     * a moment ago (a double-submitted form).
     */
    regenerate(callback?: Callback): Promise<void>;

    /**
     * Signs in as `userId` (a non-empty string or a safe integer, kept as a
     * string): `regenerate()`, then the session is bound to the user. From then
     * on `userId` holds it, `sessions(userId)` lists the session with
     * `options.meta`, and `revoke(userId)` ends it. Fails as `regenerate()`
     * does; the request keeps its id then.
     */
    login(userId: string | number, callback?: Callback): Promise<void>;
    login(userId: string | number, options?: LoginOptions, callback?: Callback): Promise<void>;

    /** Signs out: the session ends as with `invalidate()` and leaves the user's list. */
    logout(callback?: Callback): Promise<void>;
  }

  /** Every error code the package produces. */
  type SessionErrorCode =
    /** Invalid middleware options (thrown by `altSession()` / `mock()`). */
    | 'ERR_SESSION_CONFIG'
    /** Invalid argument to a session method (key, value, keys list). */
    | 'ERR_SESSION_ARGUMENT'
    /** A value over `session.maxValueBytes`, a key over 1024 bytes, a session over `maxFields` keys. */
    | 'ERR_SESSION_TOO_LARGE'
    /** No secret to sign the cookie (no `session.secret` and no `cookie-parser(secret)`). */
    | 'ERR_SESSION_SECRET'
    /** Redis could not be reached, or the connection broke. */
    | 'ERR_SESSION_CONNECTION'
    /** Redis did not answer within `redis.commandTimeout`. */
    | 'ERR_SESSION_TIMEOUT'
    /** Redis answered with an error (for example a key of the wrong type). */
    | 'ERR_SESSION_STORE'
    /** Redis refused the credentials or ACL permissions, or wants a password that was not given. */
    | 'ERR_SESSION_AUTH'
    /** The TLS handshake failed: a certificate that does not verify, a client certificate refused or missing, no TLS there. */
    | 'ERR_SESSION_TLS'
    /** The sentinels name no usable primary: a name they do not monitor, or a failover under way. */
    | 'ERR_SESSION_SENTINEL'
    /**
     * A write applied on the primary that fewer replicas than `redis.waitReplicas` confirmed
     * within `redis.waitTimeout`: it may or may not survive a failover.
     */
    | 'ERR_SESSION_NOT_REPLICATED'
    /** The native engine could not be loaded, nor built from source (thrown by `require`). */
    | 'ERR_SESSION_NATIVE'
    /** Redis is out of memory (`maxmemory`): nothing was written. */
    | 'ERR_SESSION_STORE_FULL'
    /**
     * Another request regenerated the session a moment ago (nothing was renamed), is moving it
     * to a new id right now (a write on a cluster: nothing was written), or it was revoked
     * while it signed in.
     */
    | 'ERR_SESSION_CONFLICT'
    /** `regenerate()`, or a write that needed a fresh session, after the response was sent: no cookie could reach the browser. */
    | 'ERR_SESSION_HEADERS_SENT'
    /** The middleware was closed with `close()`. */
    | 'ERR_SESSION_CLOSED';

  /** The errors this package produces: plain `Error`s with a stable `code`. */
  interface SessionError extends Error {
    code: SessionErrorCode;
  }
}

/** A value `set()` takes for `key`: its declared type (or `undefined`, which removes it), or anything for a key not declared. */
type ValueToSet<K extends string> = K extends keyof altSession.SessionData ? altSession.SessionData[K] | undefined : unknown;

/** What `mset()` checks beside the object it is given: the keys of it declared in `SessionData`. */
type DeclaredValues<T> = { [P in keyof T & keyof altSession.SessionData]?: altSession.SessionData[P] | undefined };

/** `mget()`'s answer: each key's declared type, or `T` for a key not declared; `null` when missing. */
type ValuesOf<K extends string, T> = { [P in K]: (P extends keyof altSession.SessionData ? altSession.SessionData[P] : T) | null };

/** `getAll()`'s answer: the declared keys as their types (any may be missing), the others as `T`. */
type AllValues<T> = Partial<altSession.SessionData> & Record<string, T>;

/** A key `incr()` takes: one not declared, or one declared as a number. */
type NumericKey<K extends string> = K extends keyof altSession.SessionData ? (NonNullable<altSession.SessionData[K]> extends number ? K : never) : K;

/*
 * `req.session` in the typings.
 *
 * Earlier versions of these typings declared `session: Session` on Express's `Request`
 * (`declare global { namespace Express { interface Request { session: ... } } }`).
 * @types/express-session declares the same property with its own type, and TypeScript
 * requires every declaration of one property to have the same type: with both typings in
 * one program (installed side by side, @types/express-session left from before a
 * migration, or brought in by a package whose typings import express-session, as
 * csrf-sync's and connect-redis's do) the compile failed with TS2717 unless `skipLibCheck`.
 *
 * Only one middleware can own `req.session` at run time, and TypeScript cannot tell which
 * one an app mounts; so alt-session's declaration now steps aside for any other instead of
 * clashing with it. It is made on a base type of Node's `IncomingMessage` (which Express's
 * `Request` extends), and only while nothing declares `session` on Express's `Request`:
 *
 * - alt-session alone (the usual case): `req.session` is `altSession.Session` in Express
 *   routes, as before, with no extra work; on a plain `http` server's requests too (and,
 *   as a side effect, on every `IncomingMessage`, an HTTP client's responses included);
 * - `alt-session/express-session`'s typings in the program: `req.session` and
 *   `req.sessionID` are express-session's shape (that entry point registers them in
 *   `altSession.RequestTypes`);
 * - @types/express-session (or @types/cookie-session...) in the program: `req.session` is
 *   theirs, and nothing clashes, whatever `skipLibCheck` says. This is the one change for
 *   the per-key API: with `skipLibCheck`, such a program compiled before and `req.session`
 *   was whichever declaration TypeScript read first (usually alt-session's). Its routes
 *   now name the session's type (`const session = req.session as unknown as
 *   altSession.Session`), or the app leaves @types/express-session out of the program
 *   (`compilerOptions.types`), or it makes the old declaration itself, in its own code,
 *   and keeps `skipLibCheck` (these typings then step aside for it too).
 */

/** The properties alt-session gives a request in the typings; see above. */
type RequestProperties = 'session' extends keyof Express.Request
  ? Record<never, never>
  : altSession.RequestTypes extends { expressSession: infer Properties }
    ? Properties
    : { session: altSession.Session };

declare module 'node:http' {
  interface IncomingMessage extends RequestProperties {}
}

declare global {
  namespace Express {
    /** Declared here too so that `keyof Express.Request` names something without @types/express. */
    interface Request {}
  }
}

/** The factory's type, for the named export above. */
type AltSession = typeof altSession;

export = altSession;
