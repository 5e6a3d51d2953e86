'use strict';

// Real HTTP for the end-to-end tests: a server on a free loopback port, one
// request at a time (no keep-alive, so servers close promptly), Set-Cookie
// parsing, a minimal cookie jar, and the signed `sid` cookie format
// (`cookie-signature`, as cookie-parser and Express use it).

const http = require('node:http');
const cookieSignature = require('cookie-signature');

/** Serves `handler` (an Express app or a `(req, res)` function) on 127.0.0.1. */
async function listen(handler) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { server, origin, close };
}

/**
 * One request; resolves `{ status, body, json, headers, setCookies }` (setCookies
 * is always an array; json is the parsed body, or undefined when it is not JSON).
 * Rejects when no response has come within `timeoutMs`.
 */
function request(origin, path, { cookie, method = 'GET', headers = {}, timeoutMs = 10000 } = {}) {
  const allHeaders = cookie === undefined ? headers : { ...headers, cookie };
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, origin), { method, agent: false, headers: allHeaders }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode,
          body,
          json: parseJson(body),
          headers: res.headers,
          setCookies: res.headers['set-cookie'] || [],
        })
      );
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no response to ${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `name=value; A=b; Flag` -> `{ name, value, attributes: { a: 'b', flag: true } }` (attribute names lower-cased). */
function parseSetCookie(line) {
  const [pair, ...parts] = line.split(/;\s*/);
  const eq = pair.indexOf('=');
  const attributes = {};
  for (const part of parts) {
    const i = part.indexOf('=');
    if (i < 0) attributes[part.toLowerCase()] = true;
    else attributes[part.slice(0, i).toLowerCase()] = part.slice(i + 1);
  }
  return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes };
}

/** The parsed Set-Cookie lines of a response that set cookie `name`. */
function cookiesNamed(setCookies, name = 'sid') {
  return setCookies.map(parseSetCookie).filter((c) => c.name === name);
}

/** `name=value` of the first Set-Cookie line for cookie `name`, as a `Cookie` header; undefined when none. */
function cookieHeader(setCookies, name = 'sid') {
  const [cookie] = cookiesNamed(setCookies, name);
  return cookie && `${cookie.name}=${cookie.value}`;
}

/** Whether a parsed Set-Cookie deletes its cookie (expiry in the past). */
function isClearing(cookie) {
  const { expires, 'max-age': maxAge } = cookie.attributes;
  return (expires !== undefined && Date.parse(expires) <= Date.now()) || maxAge === '0';
}

/**
 * The id inside a `sid` cookie value as sent on the wire (`s%3A<id>.<sig>`),
 * verified with `secret`; `false` when the signature does not verify.
 */
function unsignSid(wireValue, secret) {
  const decoded = decodeURIComponent(wireValue);
  if (!decoded.startsWith('s:')) return false;
  return cookieSignature.unsign(decoded.slice(2), secret);
}

/** A `Cookie` header carrying `id` signed with `secret`, as Express would set it. */
function signedSidCookie(id, secret, name = 'sid') {
  return `${name}=${encodeURIComponent(`s:${cookieSignature.sign(id, secret)}`)}`;
}

/** A browser's cookie store, reduced to what the tests need: name -> wire value. */
class CookieJar {
  constructor() {
    this.cookies = new Map();
  }

  store(setCookies) {
    for (const cookie of setCookies.map(parseSetCookie)) {
      if (isClearing(cookie)) this.cookies.delete(cookie.name);
      else this.cookies.set(cookie.name, cookie.value);
    }
  }

  get(name) {
    return this.cookies.get(name);
  }

  /** The `Cookie` request header, or undefined when the jar is empty. */
  header() {
    if (this.cookies.size === 0) return undefined;
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

module.exports = {
  listen,
  request,
  parseSetCookie,
  cookiesNamed,
  cookieHeader,
  isClearing,
  unsignSid,
  signedSidCookie,
  CookieJar,
};
