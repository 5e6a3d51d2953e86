'use strict';

// A small Express app on alt-session: a visit counter, a log-in form, and a
// "your sessions" page (every device signed in as you; sign out the others).
//
//   npm start                                   # in-memory sessions, no Redis needed
//   REDIS_URL=redis://127.0.0.1:6379 npm start  # sessions in Redis
//
// Environment: PORT (default 3000), SESSION_SECRET (default: a random one per
// start, so sessions do not survive a restart), REDIS_URL (default: in memory).

const crypto = require('node:crypto');
const express = require('express');
const altSession = require('..');

const port = Number(process.env.PORT || 3000);

let secret = process.env.SESSION_SECRET;
if (!secret) {
  secret = crypto.randomBytes(32).toString('base64url');
  console.warn('SESSION_SECRET is not set: using a random secret, so sessions end when the app restarts.');
}

const sessions = process.env.REDIS_URL ? altSession({ redis: { url: process.env.REDIS_URL }, session: { secret } }) : altSession.mock({ session: { secret } });

const app = express();
app.use(express.urlencoded({ extended: false, limit: '1kb' }));
app.use(sessions);

// Express 4 does not catch rejected promises: send them to the error handler.
const route = (handler) => (req, res, next) => handler(req, res, next).catch(next);

app.get(
  '/',
  route(async (req, res) => {
    // req.session.userId came with the request's one session command.
    const count = await req.session.incr('visits');
    res.type('html').send(page(count, req.session.userId));
  })
);

app.post(
  '/login',
  route(async (req, res) => {
    const username = String((req.body && req.body.username) || '').trim();
    if (!username || username.length > 64) {
      return res.status(400).type('html').send('<p>Give a user name of 1 to 64 characters. <a href="/">Back</a></p>');
    }
    // A new session id (against fixation), bound to the user; the meta is
    // what the "your sessions" page shows of this device.
    await req.session.login(username, { meta: { device: String(req.get('user-agent') || 'unknown').slice(0, 200) } });
    res.redirect(303, '/');
  })
);

app.post(
  '/logout',
  route(async (req, res) => {
    // Deletes the session and clears the cookie; the next visit starts afresh.
    await req.session.logout();
    res.redirect(303, '/');
  })
);

app.get(
  '/sessions',
  route(async (req, res) => {
    if (req.session.userId === null) return res.redirect(303, '/');
    const list = await sessions.sessions(req.session.userId);
    res.type('html').send(sessionsPage(req.session, list));
  })
);

app.post(
  '/sessions/sign-out-others',
  route(async (req, res) => {
    if (req.session.userId !== null) await sessions.revoke(req.session.userId, { except: req.session.id });
    res.redirect(303, '/sessions');
  })
);

// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
  console.error(err);
  const status = err.code === 'ERR_SESSION_CONNECTION' || err.code === 'ERR_SESSION_TIMEOUT' ? 503 : 500;
  res
    .status(status)
    .type('text')
    .send(`Session error: ${err.code || 'unknown'}`);
});

function page(count, userId) {
  const who =
    userId !== null
      ? `<p>Logged in as <strong id="user">${escapeHtml(userId)}</strong>. <a href="/sessions">Your sessions</a></p>
<form method="post" action="/logout"><button>Log out</button></form>`
      : `<p>Not logged in.</p>
<form method="post" action="/login">
  <label>User name <input name="username" maxlength="64" required></label>
  <button>Log in</button>
</form>`;
  return layout(`<p>Visits in this session: <strong id="visits">${count}</strong></p>
${who}
<p><small>Sessions in ${process.env.REDIS_URL ? 'Redis' : 'memory'}.</small></p>`);
}

function sessionsPage(current, list) {
  const rows = list.map(
    (s) => `<tr class="session${s.id === current.id ? ' current' : ''}">
  <td>${escapeHtml(s.meta && s.meta.device)}</td>
  <td>${new Date(s.createdAt).toISOString()}</td>
  <td>${new Date(s.lastSeenAt).toISOString()}</td>
  <td>${s.id === current.id ? 'this device' : ''}</td>
</tr>`
  );
  return layout(`<h2>Your sessions, ${escapeHtml(current.userId)}</h2>
<table>
<tr><th>Device</th><th>Signed in</th><th>Last seen</th><th></th></tr>
${rows.join('\n')}
</table>
<form method="post" action="/sessions/sign-out-others"><button>Sign out all other sessions</button></form>
<p><a href="/">Home</a></p>`);
}

function layout(body) {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>alt-session example</title></head>
<body>
<h1>alt-session example</h1>
${body}
</body></html>
`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

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
