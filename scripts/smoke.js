#!/usr/bin/env node
'use strict';

// A quick check of a binary on the machine it runs on, needing neither Rust
// nor Redis (the release workflow runs it on every platform it publishes):
// the package loads its engine, and two real HTTP requests keep a session in
// memory through the middleware.

const http = require('node:http');
const altSession = require('..');
const { platform } = require('../lib/platform');

function get(port, cookie) {
  return new Promise((resolve, reject) => {
    const headers = cookie ? { cookie } : {};
    http
      .get({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ body: JSON.parse(body), cookie: (res.headers['set-cookie'] || [''])[0].split(';')[0] }));
      })
      .on('error', reject);
  });
}

async function main() {
  const mw = altSession.mock({ session: { secret: 'smoke' } });
  const server = http.createServer((req, res) => {
    mw(req, res, async (err) => {
      if (err) return res.end(JSON.stringify({ error: err.message }));
      const visits = await req.session.incr('visits');
      res.end(JSON.stringify({ id: req.session.id, visits }));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const first = await get(port);
  const second = await get(port, first.cookie);
  server.close();
  await mw.close();
  if (first.body.visits !== 1 || second.body.visits !== 2 || second.body.id !== first.body.id) {
    throw new Error(`the session was not kept: ${JSON.stringify([first.body, second.body])}`);
  }
  console.log(`smoke: ${platform}, Node ${process.version}: the engine loads and keeps a session`);
}

main().catch((err) => {
  console.error(`smoke: ${err.stack || err}`);
  process.exit(1);
});
