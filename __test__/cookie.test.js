'use strict';

// The engine's cookie signing must agree byte for byte with the
// `cookie-signature` package (cookie-parser, Express's signed cookies), both ways:
// live sessions of the original must verify, and ours must verify in Express.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const signature = require('cookie-signature');
const { signCookie, unsignCookie } = require('../binding');
const { Store } = require('../lib/store');

const samples = [
  'plain',
  '',
  'q1Vt+0x/3mVj6mKk2b0c3Ww9Zq0yP3lQq7v2c8rj1u0=AbC123xy',
  'ünïcødé ✓',
  'with.dots.in.it',
  ...Array.from({ length: 50 }, () => crypto.randomBytes(24).toString('base64')),
];
const secrets = ['keyboard cat', 'ß€crét', crypto.randomBytes(40).toString('hex')];

test('sign agrees with cookie-signature', () => {
  for (const secret of secrets) {
    for (const value of samples) {
      assert.equal(signCookie(value, secret), signature.sign(value, secret));
    }
  }
});

test('unsign accepts what cookie-signature signs, and rejects what it rejects', () => {
  for (const secret of secrets) {
    for (const value of samples) {
      const signed = signature.sign(value, secret);
      assert.equal(unsignCookie(signed, [secret]), value);
      assert.equal(unsignCookie(signed, ['other', secret]), value, 'any listed secret verifies');
      assert.equal(unsignCookie(signed, ['other']), null);
      const tampered = signed.slice(0, -1) + (signed.endsWith('A') ? 'B' : 'A');
      assert.equal(unsignCookie(tampered, [secret]), null);
      assert.equal(signature.unsign(tampered, secret), false);
    }
  }
});

function engine(session) {
  return new Store('memory', JSON.stringify({ session }));
}

test('a cookie signed by cookie-signature opens the session it names', () => {
  const id = crypto.randomBytes(32).toString('base64url');
  const header = `other=1; sid=${encodeURIComponent(`s:${signature.sign(id, 'k')}`)}`;
  const opened = engine({ secret: 'k' }).open(header, undefined, undefined, false);
  assert.deepEqual(opened, { id, isNew: false, mayCreate: false, setCookie: null, bound: false });
});

test("an id of 0.0.1's shape (it stored nothing at issue) may be created by a write; ours may not", () => {
  const legacy = `${crypto.createHash('sha256').update('x').digest('base64')}AbC123xy`;
  assert.equal(legacy.length, 52);
  const header = `sid=${encodeURIComponent(`s:${signature.sign(legacy, 'k')}`)}`;
  const opened = engine({ secret: 'k' }).open(header, undefined, undefined, false);
  assert.deepEqual([opened.id, opened.isNew, opened.mayCreate, opened.setCookie], [legacy, false, true, undefined]);
  const fresh = engine({ secret: 'k' }).open(undefined, undefined, undefined, false);
  assert.equal(fresh.mayCreate, true, 'a new id may be created');
});

test('a new session cookie verifies with cookie-signature', () => {
  const opened = engine({ secret: 'k' }).open(undefined, undefined, undefined, false);
  assert.equal(opened.isNew, true);
  const value = decodeURIComponent(/^sid=([^;]*)/.exec(opened.setCookie)[1]);
  assert.ok(value.startsWith('s:'));
  assert.equal(signature.unsign(value.slice(2), 'k'), opened.id);
});

test("a signed-in session's id opens as bound: its length says so (33 random bytes, 44 characters)", () => {
  const e = engine({ secret: 'k' });
  const open = (id) => e.open(`sid=${encodeURIComponent(`s:${signature.sign(id, 'k')}`)}`, undefined, undefined, false);
  const bound = crypto.randomBytes(33).toString('base64url');
  assert.deepEqual(open(bound), { id: bound, isNew: false, mayCreate: false, setCookie: null, bound: true });
  const fresh = e.openFresh(true, false, undefined, false);
  assert.equal(open(fresh.id).bound, true, 'the id login() issues');
  assert.equal(open(crypto.randomBytes(32).toString('base64url')).bound, false);
});

test('cookies of a retired secret verify and are re-signed with the current one', () => {
  const id = crypto.randomBytes(32).toString('base64url');
  const header = `sid=${encodeURIComponent(`s:${signature.sign(id, 'old')}`)}`;
  const opened = engine({ secret: ['new', 'old'] }).open(header, undefined, undefined, false);
  assert.equal(opened.id, id);
  assert.equal(opened.isNew, false);
  const value = decodeURIComponent(/^sid=([^;]*)/.exec(opened.setCookie)[1]);
  assert.equal(signature.unsign(value.slice(2), 'new'), id);
});

test('without session.secret the id comes from cookie-parser and is still shape-checked', () => {
  const e = engine({});
  const id = crypto.randomBytes(32).toString('base64url');
  assert.deepEqual(e.open(undefined, id, 'k', false), { id, isNew: false, mayCreate: false, setCookie: null, bound: false });
  const injected = e.open(undefined, 'evil:key{x}', 'k', false);
  assert.equal(injected.isNew, true);
  assert.notEqual(injected.id, 'evil:key{x}');
  assert.throws(() => e.open(undefined, undefined, undefined, false), { code: 'ERR_SESSION_SECRET' });
});
