'use strict';

// The example app: alt-session's express-session entry point with Passport
// (passport-local) and connect-flash, as an Express app would use them.
// A visit counter, a sign-in form (any user name, any password: a demo), and
// a "your devices" page listing every session signed in as you, where you can
// sign out all the others.
//
//   npm start                                   # in-memory sessions, no Redis needed
//   REDIS_URL=redis://127.0.0.1:6379 npm start  # sessions in Redis
//
// Environment: PORT (default 3000), SESSION_SECRET (default: a random one per
// start, so sessions do not survive a restart), REDIS_URL (default: in memory).
//
// For operators: GET /healthz (a round trip to the session store), GET
// /metrics (OpenTelemetry's metrics in Prometheus's text format), and the
// middleware's events, logged here; DEBUG=alt-session logs them too.

const crypto = require('node:crypto');
const express = require('express');
const { metrics } = require('@opentelemetry/api');
const { MeterProvider } = require('@opentelemetry/sdk-metrics');
const { PrometheusExporter } = require('@opentelemetry/exporter-prometheus');
const passport = require('passport');
const { Strategy: LocalStrategy } = require('passport-local');
const flash = require('connect-flash');
const UAParser = require('ua-parser-js');
const session = require('../express-session');

const port = Number(process.env.PORT || 3000);

let secret = process.env.SESSION_SECRET;
if (!secret) {
  secret = crypto.randomBytes(32).toString('base64url');
  console.warn('SESSION_SECRET is not set: using a random secret, so sessions end when the app restarts.');
}

// Metrics first: OpenTelemetry's API hands out a no-op meter until a provider is registered.
const prometheus = new PrometheusExporter({ preventServerStart: true });
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [prometheus] }));

const options = {
  secret,
  resave: false,
  saveUninitialized: false,
  // Lax: the browser sends the cookie with no cross-site POST, so another
  // site cannot submit the sign-out forms below for you.
  cookie: { sameSite: 'lax' },
  // Which user a session belongs to: what mw.sessions() and mw.revoke() go by.
  userOf: (s) => s.passport && s.passport.user,
};
const sessions = process.env.REDIS_URL ? session({ ...options, redis: { url: process.env.REDIS_URL } }) : session.mock(options);
const backend = process.env.REDIS_URL ? 'Redis' : 'memory';
for (const event of ['connect', 'disconnect', 'failover']) sessions.on(event, (detail) => console.log(`sessions: ${event}`, detail));
sessions.on('error', (err) => console.error(`sessions: ${err.code}: ${err.message}`));

// A demo: any non-empty user name signs in, whatever the password. The user
// stored in the session (serializeUser) is the name itself.
passport.use(
  new LocalStrategy((username, password, done) => {
    const name = username.trim();
    if (name.length === 0 || name.length > 64) return done(null, false, { message: 'Give a user name of 1 to 64 characters.' });
    done(null, { name });
  })
);
passport.serializeUser((user, done) => done(null, user.name));
passport.deserializeUser((name, done) => done(null, { name }));

const app = express();
app.disable('x-powered-by');

// Before the sessions: a health check and the icon request start no session.
// The health check asks the session store for a round trip (503 when it does not answer).
app.get('/healthz', (req, res) =>
  sessions.ping().then(
    (ms) => res.json({ status: 'ok', sessions: backend, roundTripMs: Math.round(ms * 100) / 100 }),
    (err) => res.status(503).json({ status: 'unavailable', sessions: backend, error: err.code })
  )
);
// What a Prometheus server scrapes (in production, keep it off the public network).
app.get('/metrics', (req, res) => prometheus.getMetricsRequestHandler(req, res));
app.get('/favicon.ico', (req, res) => res.status(204).end());

app.use(express.urlencoded({ extended: false, limit: '2kb' }));
app.use(sessions);
app.use(passport.session());
app.use(flash());

// Express 4 does not catch rejected promises: send them to the error handler.
const route = (handler) => (req, res, next) => Promise.resolve(handler(req, res, next)).catch(next);
const short = (id) => `${String(id).slice(0, 8)}…`;
const ENDED = 'You were signed out: this session was ended from another device, or expired.';

app.get('/', (req, res) => {
  req.session.views = (req.session.views || 0) + 1;
  res.type('html').send(homePage(req));
});

app.post('/login', (req, res, next) => {
  // passport-local turns an empty password away ("Missing credentials"); this demo takes any.
  if (req.body && !req.body.password) req.body.password = '-';
  const before = req.sessionID;
  passport.authenticate('local', (err, user, info) => {
    if (err) return next(err);
    if (!user) {
      req.flash('error', (info && info.message === 'Missing credentials' ? 'Give a user name.' : info && info.message) || 'Sign-in failed.');
      return res.redirect(303, '/');
    }
    signIn(req, user, true, (loginErr) => {
      if (loginErr) return next(loginErr);
      req.flash('idChanged', { from: short(before), to: short(req.sessionID) });
      res.redirect(303, '/');
    });
  })(req, res, next);
});

/**
 * Passport's req.login(): regenerate() (a new session id), then the user.
 * keepSessionInfo carries the session's data (the visit count) to the new id.
 * Two sign-ins at once from one browser (a double click) each get a new id;
 * one whose new session another request ended meanwhile (ERR_SESSION_CONFLICT)
 * tries once more.
 */
function signIn(req, user, retry, done) {
  req.login(user, { keepSessionInfo: true }, (err) => {
    if (err && retry && err.code === 'ERR_SESSION_CONFLICT') return signIn(req, user, false, done);
    done(err);
  });
}

app.post('/logout', (req, res, next) => {
  if (!req.user) return res.redirect(303, '/');
  const before = req.sessionID;
  // Passport clears the user, then regenerate(): a new, empty session.
  req.logout((err) => {
    if (err) return next(err);
    req.flash('success', `Signed out. This browser now has a fresh session (${short(before)} became ${short(req.sessionID)}).`);
    res.redirect(303, '/');
  });
});

app.get(
  '/devices',
  route(async (req, res) => {
    if (!req.user) {
      req.flash('error', req.sessionEnded ? ENDED : 'Sign in to see your devices.');
      return res.redirect(303, '/');
    }
    const list = await sessions.sessions(req.user.name);
    // This device first, then the others as listed: most recently seen first.
    list.sort((x, y) => (y.id === req.sessionID) - (x.id === req.sessionID));
    res.type('html').send(devicesPage(req, list));
  })
);

// alt-session ends a user's sessions together (mw.revoke(user, { except })),
// with no call to end one chosen session: so one button for all the others.
app.post(
  '/devices/sign-out-others',
  route(async (req, res) => {
    if (!req.user) return res.redirect(303, '/');
    const ended = await sessions.revoke(req.user.name, { except: req.sessionID });
    req.flash('success', ended === 0 ? 'No other device was signed in.' : `Signed out ${ended} other ${ended === 1 ? 'device' : 'devices'}.`);
    res.redirect(303, '/devices');
  })
);

app.use((req, res) => {
  res
    .status(404)
    .type('html')
    .send(layout(req, 'Not found', html`<h1>Not found</h1><p>No page here. <a href="/">Home</a></p>`));
});

// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
  console.error(err);
  // A save that failed when the response ended comes here after the page was sent.
  if (res.headersSent) return next(err);
  const unavailable = err.code === 'ERR_SESSION_CONNECTION' || err.code === 'ERR_SESSION_TIMEOUT';
  const conflict = err.code === 'ERR_SESSION_CONFLICT';
  const status = unavailable ? 503 : conflict ? 409 : 500;
  const text = unavailable
    ? 'The session store is not answering. Try again in a moment.'
    : conflict
      ? 'That request crossed another one from this browser (a double click?). Nothing is lost: go on.'
      : `Something went wrong (${err.code || 'unknown error'}).`;
  res
    .status(status)
    .type('html')
    .send(layout(req, 'Error', html`<h1>${status === 500 ? 'Error' : 'One moment'}</h1><p>${text}</p><p><a class="button" href="/">Home</a></p>`));
});

// ---------------------------------------------------------------- the pages

function homePage(req) {
  const signedIn = Boolean(req.user);
  const account = signedIn
    ? html`<p class="muted">Signed in as</p>
<p class="big"><strong id="user">${req.user.name}</strong></p>
<div class="actions">
  <a class="button" href="/devices">Your devices</a>
  <form method="post" action="/logout" data-once><button class="secondary">Sign out</button></form>
</div>`
    : html`<p id="signed-out">Not signed in.</p>
<form method="post" action="/login" class="signin" data-once>
  <label for="username">User name</label>
  <input id="username" name="username" maxlength="64" required autocomplete="username" autocapitalize="none" spellcheck="false" placeholder="ann">
  <label for="password">Password <span class="tag">demo: anything works</span></label>
  <input id="password" name="password" type="password" autocomplete="current-password">
  <button>Sign in</button>
</form>`;
  return layout(
    req,
    'Home',
    html`<h1>Your session</h1>
<p class="lead">Watch the session id: it changes each time you sign in or out, while the visit count comes along.</p>
<div class="grid">
  <section class="card stat">
    <p class="muted">Page views</p>
    <p class="big" id="views">${req.session.views}</p>
  </section>
  <section class="card stat">
    <p class="muted">Session id</p>
    <p class="big"><code id="session-id" title="the first 8 characters">${short(req.sessionID)}</code></p>
  </section>
</div>
<section class="card">${account}</section>`
  );
}

function devicesPage(req, list) {
  const now = Date.now();
  const items = list.map((s) => {
    const current = s.id === req.sessionID;
    return html`<li class="device${current ? ' current' : ''}">
  <div class="device-head">
    <span class="device-name">${deviceName(deviceOf(s))}</span>
    ${current ? html`<span class="badge">This device</span>` : ''}
  </div>
  <p class="muted">Signed in ${when(s.createdAt, now)} · last seen ${when(s.lastSeenAt, now)} · <code>${short(s.id)}</code></p>
</li>`;
  });
  const others = list.filter((s) => s.id !== req.sessionID).length;
  return layout(
    req,
    'Your devices',
    html`<h1>Your devices</h1>
<p class="lead">Every browser signed in as <strong>${req.user.name}</strong>: this one first, then the most recently active. Try it: sign in with the same name in a private window.</p>
<ul class="devices" id="devices">${items}</ul>
${
  others > 0
    ? html`<form method="post" action="/devices/sign-out-others" class="card danger" data-once>
  <p>Signing out deletes those sessions on the server: each of those browsers finds itself signed out at its next page.</p>
  <button class="danger">Sign out all other devices</button>
</form>`
    : html`<p class="muted">No other device is signed in.</p>`
}`
  );
}

/**
 * The browser a listed session signed in from: the entry point records the
 * request's User-Agent at sign-in, and mw.sessions() gives it in `meta`.
 */
function deviceOf(s) {
  return s.meta && typeof s.meta.userAgent === 'string' ? s.meta.userAgent : '';
}

/** "Chrome 131 on Linux", "Safari on iPhone": ua-parser-js's names, shortened. */
function deviceName(ua) {
  if (!ua) return 'Unknown device';
  const { browser, os, device } = new UAParser(ua).getResult();
  const name = browser.name ? browser.name.replace(/^Mobile /, '') : '';
  // Safari's version is the system's; Chrome's and Firefox's say more.
  const version = browser.major && name !== 'Safari' ? ` ${browser.major}` : '';
  const place = device.vendor === 'Apple' && device.model ? device.model : os.name;
  if (!name) return place ? `A browser on ${place}` : ua.slice(0, 60);
  return place ? `${name}${version} on ${place}` : `${name}${version}`;
}

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
const UNITS = [
  ['year', 365 * 86400],
  ['month', 30 * 86400],
  ['week', 7 * 86400],
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
];

/** A `<time>` that reads "2 minutes ago" (the exact time on hover). */
function when(ms, now) {
  if (!Number.isFinite(ms) || ms <= 0) return 'at an unknown time';
  const seconds = Math.round((ms - now) / 1000);
  let text = 'just now';
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) {
      text = relative.format(Math.trunc(seconds / size), unit);
      break;
    }
  }
  if (text === 'just now' && Math.abs(seconds) >= 45) text = relative.format(Math.trunc(seconds / 60) || -1, 'minute');
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}" title="${iso.replace('T', ' ').slice(0, 19)} UTC">${text}</time>`;
}

function flashes(req) {
  // An error page for a request that has no session (the store did not answer) has no messages.
  const all = req.session && req.flash ? req.flash() : {};
  const out = [];
  if (req.sessionEnded) out.push(html`<p class="flash error" id="ended" role="status">${ENDED}</p>`);
  for (const { from, to } of all.idChanged || []) {
    out.push(
      html`<p class="flash success" id="id-changed" role="status">Signed in. Your session id changed from <code>${from}</code> to <code>${to}</code>: that is what protects against session fixation.</p>`
    );
  }
  for (const type of ['success', 'error']) {
    for (const text of all[type] || []) {
      // The sign-out of a revoked session says the same as the banner above.
      if (req.sessionEnded && text === ENDED) continue;
      out.push(html`<p class="flash ${type}" role="status">${text}</p>`);
    }
  }
  return out;
}

function layout(req, title, body) {
  const signedIn = Boolean(req.user);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · alt-session demo</title>
<link rel="icon" href="data:,">
<style>${CSS}</style>
</head>
<body>
<header class="top"><div class="wrap">
  <a class="brand" href="/">alt-session <span>demo</span></a>
  <nav>${html`<a href="/">Home</a>${signedIn ? html`<a href="/devices">Devices</a>` : ''}`}</nav>
</div></header>
<main class="wrap">
${html`${flashes(req)}`}
${body}
</main>
<footer class="wrap muted">Sessions in ${backend}, through <code>alt-session/express-session</code> with Passport and connect-flash.</footer>
<script>
  // A form sends once: a double click does not sign in twice.
  for (const form of document.querySelectorAll('form[data-once]')) {
    form.addEventListener('submit', () => {
      for (const button of form.querySelectorAll('button')) button.disabled = true;
    });
  }
</script>
</body>
</html>
`;
}

// ---------------------------------------------------------------- HTML

/** HTML already escaped: what html`` returns. */
class Html {
  constructor(text) {
    this.text = text;
  }
  toString() {
    return this.text;
  }
}

/** A template tag that escapes every value put in it, but the Html of another html``. */
function html(strings, ...values) {
  let out = strings[0];
  values.forEach((value, i) => {
    out += render(value) + strings[i + 1];
  });
  return new Html(out);
}

function render(value) {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(value);
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const CSS = `
:root { color-scheme: light dark; --bg: #f6f7f9; --fg: #1c2026; --muted: #5f6b7a; --card: #fff; --line: #dde2e8;
  --accent: #2457d6; --accent-fg: #fff; --ok-bg: #e6f4ea; --ok-fg: #185c2e; --err-bg: #fdecea; --err-fg: #8a1c14; --danger: #b3261e; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #111418; --fg: #e6e9ee; --muted: #9aa5b4; --card: #1b2027; --line: #2c333d; --accent: #7aa2ff; --accent-fg: #0b1020;
    --ok-bg: #14301f; --ok-fg: #a8e0b8; --err-bg: #3a1714; --err-fg: #f5b4ad; --danger: #ff8a80; }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg); line-height: 1.5;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.wrap { max-width: 44rem; margin: 0 auto; padding: 0 1rem; }
.top { background: var(--card); border-bottom: 1px solid var(--line); }
.top .wrap { display: flex; align-items: center; justify-content: space-between; gap: 1rem; min-height: 3.25rem; }
.brand { font-weight: 700; color: var(--fg); text-decoration: none; }
.brand span { color: var(--muted); font-weight: 400; }
nav { display: flex; gap: 1rem; }
a { color: var(--accent); }
nav a { text-decoration: none; }
main.wrap { padding-top: 1.5rem; padding-bottom: 1rem; }
h1 { font-size: 1.6rem; line-height: 1.2; margin: 0 0 .5rem; }
.lead { color: var(--muted); margin: 0 0 1.25rem; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 1rem 1.25rem; margin: 0 0 1rem; }
.card p { margin: 0 0 .25rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(9.5rem, 1fr)); gap: 1rem; margin: 0 0 1rem; }
.grid .card { margin: 0; }
.stat { padding: .9rem 1rem; }
.stat .muted { font-size: .9rem; }
.big { font-size: 1.75rem; font-weight: 650; margin: 0; overflow-wrap: anywhere; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
.big code { font-size: 1.35rem; white-space: nowrap; }
.flash { border-radius: 10px; padding: .75rem 1rem; margin: 0 0 1rem; overflow-wrap: anywhere; }
.flash.success { background: var(--ok-bg); color: var(--ok-fg); }
.flash.error { background: var(--err-bg); color: var(--err-fg); }
.signin { display: grid; gap: .4rem; max-width: 22rem; margin-top: .75rem; }
.signin button { margin-top: .6rem; justify-self: start; }
label { font-weight: 600; font-size: .95rem; }
.tag { font-weight: 400; font-size: .8rem; color: var(--muted); border: 1px solid var(--line); border-radius: 999px; padding: 0 .5rem; margin-left: .25rem; white-space: nowrap; }
input { font: inherit; width: 100%; padding: .55rem .7rem; border: 1px solid var(--line); border-radius: 8px; background: var(--bg); color: var(--fg); }
input:focus { outline: 2px solid var(--accent); outline-offset: 1px; }
button, .button { font: inherit; font-weight: 600; display: inline-block; padding: .55rem 1.1rem; border-radius: 8px; border: 1px solid var(--accent);
  background: var(--accent); color: var(--accent-fg); cursor: pointer; text-decoration: none; }
button.secondary { background: transparent; color: var(--accent); }
button.danger { background: var(--danger); border-color: var(--danger); color: #fff; }
button:disabled { opacity: .6; cursor: progress; }
.actions { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; margin-top: .75rem; }
.actions form { margin: 0; }
.devices { list-style: none; padding: 0; margin: 0 0 1rem; display: grid; gap: .75rem; }
.device { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: .85rem 1.1rem; }
.device.current { border-color: var(--accent); box-shadow: 0 0 0 1px var(--accent) inset; }
.device-head { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem; }
.device-name { font-weight: 650; font-size: 1.05rem; overflow-wrap: anywhere; }
.device .muted { margin: .2rem 0 0; font-size: .9rem; }
.badge { font-size: .75rem; font-weight: 700; text-transform: uppercase; letter-spacing: .04em; background: var(--accent); color: var(--accent-fg); border-radius: 999px; padding: .1rem .55rem; }
.card.danger p { margin-bottom: .75rem; }
footer.wrap { font-size: .85rem; padding-top: .5rem; padding-bottom: 2rem; }
footer code { white-space: nowrap; }
`;

// ---------------------------------------------------------------- serving

const server = app.listen(port, () => {
  console.log(`alt-session example listening on http://localhost:${server.address().port}`);
});

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: shutting down`);
  // Stop accepting connections and wait for requests in flight, then let the
  // session calls in flight finish and close the Redis connection.
  await new Promise((resolve) => {
    server.close(resolve);
    if (server.closeIdleConnections) server.closeIdleConnections();
  });
  await sessions.close();
  console.log('bye');
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    // A keep-alive client that never hangs up must not keep us from exiting.
    setTimeout(() => process.exit(1), 10000).unref();
    shutdown(signal).catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
  });
}
