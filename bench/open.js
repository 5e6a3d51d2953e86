'use strict';

// What the engine's `open()` costs (a request's session from its Cookie
// header: parse, signature check, the id handed to JavaScript), in a loop:
// a returning anonymous visitor, a signed-in one, and an anonymous one whose
// browser also sends a site's usual analytics and consent cookies.
//
//   node bench/open.js
//
// Prints ns per call, per round; a development measurement (not in npm run bench).

const native = require('../lib/native');

const ROUNDS = 4;
const CALLS = 300000;
const engine = native.Engine.memory(JSON.stringify({ session: { secret: 'alt-session benchmark secret' } }), false);
const cookieOf = (bound) => engine.openFresh(bound, false, undefined, false).setCookie.split(';')[0];
const others =
  '_ga=GA1.1.1234567890.1733400000; _ga_ABCDEF1234=GS1.1.1733400000.1.1.1733400100.0.0.0; _gid=GA1.2.987654321.1733400000; ' +
  'OptanonConsent=isGpcEnabled=0&datestamp=Sat+Dec+05+2026+19%3A00%3A00+GMT%2B0000&version=202409.1.0&groups=C0001%3A1%2CC0002%3A1; ' +
  '_fbp=fb.1.1733400000000.123456789; theme=dark; lang=en-GB';
const headers = {
  anonymous: cookieOf(false),
  'signed in': cookieOf(true),
  'anonymous beside 7 other cookies': `${others}; ${cookieOf(false)}`,
};

for (let round = 1; round <= ROUNDS; round++) {
  const line = Object.entries(headers).map(([name, header]) => `${name} ${nsPerCall(header).toFixed(0)} ns`);
  console.log(`round ${round}: ${line.join(', ')}`);
}

function nsPerCall(header) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) engine.open(header, undefined, undefined, false);
  return Number(process.hrtime.bigint() - started) / CALLS;
}
