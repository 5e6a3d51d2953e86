'use strict';

// Support for test/express-session-suite.test.js, the port of expressjs/session's own test
// suite (test/session.js). Parts of this file are ported from expressjs/session's
// test/support/ (utils.js, sync-store.js, smart-store.js, gencert.sh):
// Copyright (c) 2010 Sencha Inc., 2011 TJ Holowaychuk, 2014-2015 Douglas Christopher Wilson;
// MIT licence, https://github.com/expressjs/session/blob/master/LICENSE
//
// What is ours here: the choice of the implementation under test (`implementation()`), and the
// throwaway TLS certificate made at test time (the original's gencert.sh writes it beforehand).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const util = require('node:util');
const { execFileSync } = require('node:child_process');

/**
 * The middleware under test, from `SUITE_IMPL`:
 * - `express-session`: the real express-session with its MemoryStore, to validate the port
 *   (every ported test must pass on it);
 * - anything else (the default): ours, `require('../../express-session').mock(options)`.
 *
 * `probe` says how a test looks into the store: `'store'` reads the store object as the
 * original does (express-session's MemoryStore: length, all, get, clear, a counted set);
 * `'http'` asks the middleware itself, with requests (ours has no store object).
 * `SUITE_PROBE=http` runs express-session with the `'http'` probe too, to validate it.
 */
function implementation(name = process.env.SUITE_IMPL) {
  if (name === 'express-session') {
    // The original runs with test/support/env.js: express-session's deprecations are silent.
    process.env.NO_DEPRECATION = 'express-session';
    const session = require('express-session');
    return {
      name: 'express-session',
      ours: false,
      session,
      create: (options) => session(options),
      createStore: () => new session.MemoryStore(),
      probe: process.env.SUITE_PROBE === 'http' ? 'http' : 'store',
    };
  }
  const session = require('../../express-session');
  return {
    name: 'alt-session/express-session (mock)',
    ours: true,
    session,
    // No `store` option: the memory store of session.mock() is the middleware's own.
    create: (options) => {
      const { store, ...rest } = options;
      return session.mock(rest);
    },
    createStore: () => ({ placeholder: 'alt-session has no store object' }),
    probe: 'http',
  };
}

// --- test/support/utils.js ---

function parseSetCookie(header) {
  const pairs = [];
  const pattern = /\s*([^=;]+)(?:=([^;]*);?|;|$)/g;

  for (const match of header.matchAll(pattern)) {
    pairs.push({ name: match[1], value: match[2] });
  }

  const cookie = pairs.shift();

  for (const pair of pairs) {
    cookie[pair.name.toLowerCase()] = pair.value || true;
  }

  return cookie;
}

function writePatch(res) {
  const _end = res.end;
  const _write = res.write;
  let ended = false;

  res.end = function end(...args) {
    ended = true;
    return _end.apply(this, args);
  };

  res.write = function write(...args) {
    if (ended) {
      throw new Error('write after end');
    }

    return _write.apply(this, args);
  };
}

// --- test/support/sync-store.js and smart-store.js: custom stores on a given `Store` base ---

function syncStoreClass(Store) {
  function SyncStore() {
    Store.call(this);
    this.sessions = Object.create(null);
  }

  util.inherits(SyncStore, Store);

  SyncStore.prototype.destroy = function destroy(sid, callback) {
    delete this.sessions[sid];
    callback();
  };

  SyncStore.prototype.get = function get(sid, callback) {
    callback(null, JSON.parse(this.sessions[sid]));
  };

  SyncStore.prototype.set = function set(sid, sess, callback) {
    this.sessions[sid] = JSON.stringify(sess);
    callback();
  };

  return SyncStore;
}

function smartStoreClass(Store) {
  function SmartStore() {
    Store.call(this);
    this.sessions = Object.create(null);
  }

  util.inherits(SmartStore, Store);

  SmartStore.prototype.destroy = function destroy(sid, callback) {
    delete this.sessions[sid];
    setImmediate(callback, null);
  };

  SmartStore.prototype.get = function get(sid, callback) {
    let sess = this.sessions[sid];

    if (!sess) {
      return;
    }

    // parse
    sess = JSON.parse(sess);

    if (sess.cookie) {
      // expand expires into Date object
      sess.cookie.expires = typeof sess.cookie.expires === 'string' ? new Date(sess.cookie.expires) : sess.cookie.expires;

      // destroy expired session
      if (sess.cookie.expires && sess.cookie.expires <= Date.now()) {
        delete this.sessions[sid];
        sess = null;
      }
    }

    setImmediate(callback, null, sess);
  };

  SmartStore.prototype.set = function set(sid, sess, callback) {
    this.sessions[sid] = JSON.stringify(sess);
    setImmediate(callback, null);
  };

  return SmartStore;
}

// --- test/support/gencert.sh, at test time ---

/**
 * A self-signed certificate for express-session.local in a new temporary folder:
 * `{ key, cert, remove() }` (key and cert as text).
 */
function makeCertificate() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'express-session-suite-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-nodes',
      '-newkey',
      'rsa:2048',
      '-keyout',
      'server.key',
      '-out',
      'server.crt',
      '-days',
      '2',
      '-subj',
      '/C=US/ST=Illinois/L=Chicago/O=node-express-session/CN=express-session.local',
      '-addext',
      'subjectAltName=DNS:express-session.local',
    ],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] }
  );
  return {
    key: fs.readFileSync(path.join(dir, 'server.key'), 'ascii'),
    cert: fs.readFileSync(path.join(dir, 'server.crt'), 'ascii'),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

module.exports = { implementation, parseSetCookie, writePatch, syncStoreClass, smartStoreClass, makeCertificate };
