'use strict';

// The example app (examples/app.js, `npm start`) in a real browser: Debian's
// Chromium driven by playwright-core, the app a child process on a free port.
// Signing in through the Passport form changes the session id (the cookie and
// the page say so); the devices page names this browser; a second browser
// context signed in as the same user is signed out by the first, and its next
// page says so; a double-submitted sign-in is no error; sign-out is a POST;
// at 390 px wide no page scrolls sideways. In memory, and on Redis.
//
// Skipped, with the reason, only when Chromium is not installed (.ci/run
// installs it: apt-get install chromium).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { useRedis } = require('./helpers/fixtures');
const { SKIP, launchChromium, startExample } = require('./helpers/chromium');

/** Every browser step is bounded: a stuck page fails the test, never hangs it. */
const STEP_MS = 10000;
const IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

const redis = useRedis();

/** The session cookie's value: the app sets one cookie. */
async function sessionCookie(context, origin) {
  const cookies = await context.cookies(origin);
  assert.equal(cookies.length, 1, `one cookie: ${cookies.map((c) => c.name)}`);
  assert.equal(cookies[0].httpOnly, true);
  return cookies[0].value;
}

/** The id in a session cookie's value (`s:<id>.<signature>`, URI-encoded). */
function sessionId(value) {
  const id = decodeURIComponent(value).slice(2).split('.')[0];
  assert.ok(id.length >= 32, value);
  return id;
}

/** Signs in through the form on the home page; resolves once the next page is shown. */
async function signIn(page, origin, name) {
  if (page.url() !== `${origin}/`) await page.goto(origin, { timeout: STEP_MS });
  await page.fill('#username', name, { timeout: STEP_MS });
  await page.fill('#password', 'anything', { timeout: STEP_MS });
  await Promise.all([page.waitForURL(`${origin}/`, { timeout: STEP_MS, waitUntil: 'load' }), page.click('button:has-text("Sign in")', { timeout: STEP_MS })]);
}

/** The devices page's list: `[{ name, current }]`. */
function devices(page) {
  return page.$$eval('#devices .device', (items) =>
    items.map((li) => ({ name: li.querySelector('.device-name').textContent.trim(), current: li.classList.contains('current') }))
  );
}

const text = (page, selector) => page.textContent(selector, { timeout: STEP_MS }).then((t) => t.trim());
const scrollWidth = (page) => page.evaluate(() => document.documentElement.scrollWidth);

describe('the example app in a real browser (Chromium)', () => {
  let browser;
  before(async () => {
    if (SKIP) return;
    browser = await launchChromium();
  });
  after(async () => {
    if (browser) await browser.close();
  });

  for (const storeName of ['memory', 'Redis']) {
    test(`${storeName}: signing in changes the session id; the devices page lists both devices; "sign out all other devices" signs the other out`, {
      skip: SKIP,
    }, async () => {
      const example = await startExample(storeName === 'Redis' ? { REDIS_URL: redis.server.url } : {});
      const contexts = [];
      const newPage = async (options) => {
        const context = await browser.newContext(options);
        contexts.push(context);
        return { context, page: await context.newPage() };
      };
      try {
        const health = await fetch(`${example.origin}/healthz`);
        assert.equal(health.status, 200);
        const status = await health.json();
        assert.equal(status.status, 'ok');
        assert.equal(status.sessions, storeName);
        assert.ok(status.roundTripMs >= 0, JSON.stringify(status));

        // Device A (this Chromium, on Linux): a first visit, then the sign-in.
        const a = await newPage();
        await a.page.goto(example.origin, { timeout: STEP_MS });
        assert.equal(await text(a.page, '#views'), '1');
        assert.match(await text(a.page, 'footer'), new RegExp(`^Sessions in ${storeName},`), 'the store the app runs on');
        assert.ok(await a.page.isVisible('#signed-out'));
        const before = await sessionCookie(a.context, example.origin);
        const shortBefore = await text(a.page, '#session-id');
        assert.match(shortBefore, /^.{8}…$/);

        await signIn(a.page, example.origin, 'ann');
        assert.equal(await text(a.page, '#user'), 'ann');
        const afterLogin = await sessionCookie(a.context, example.origin);
        assert.notEqual(afterLogin, before, 'a new cookie at sign-in');
        const shortAfter = await text(a.page, '#session-id');
        assert.notEqual(shortAfter, shortBefore, 'a new session id at sign-in');
        const changed = await text(a.page, '#id-changed');
        assert.ok(changed.includes(`from ${shortBefore} to ${shortAfter}`), changed);
        assert.ok(changed.includes('session fixation'), changed);
        assert.equal(await text(a.page, '#views'), '2', 'the visit count came along to the new id');
        await a.page.reload({ timeout: STEP_MS });
        assert.equal(await a.page.isVisible('#id-changed'), false, 'the flash shows once');

        await a.page.click('text=Your devices', { timeout: STEP_MS });
        let list = await devices(a.page);
        assert.equal(list.length, 1, JSON.stringify(list));
        assert.match(list[0].name, /^\S.* on Linux$/);
        assert.equal(list[0].current, true);
        assert.equal(await text(a.page, '.device.current .badge'), 'This device');
        assert.match(await text(a.page, '.device.current time'), /^(just now|\d+ seconds? ago)$/);

        // Device B (an iPhone's user agent) signs in as the same user.
        const b = await newPage({ userAgent: IPHONE });
        await signIn(b.page, example.origin, 'ann');
        assert.equal(await text(b.page, '#user'), 'ann');

        await a.page.reload({ timeout: STEP_MS });
        list = await devices(a.page);
        assert.equal(list.length, 2, JSON.stringify(list));
        assert.match(list.find((d) => d.current).name, /^\S.* on Linux$/, 'this device');
        assert.equal(list.find((d) => !d.current).name, 'Safari on iPhone', 'the other');

        await a.page.click('text=Sign out all other devices', { timeout: STEP_MS });
        assert.equal(await text(a.page, '.flash.success'), 'Signed out 1 other device.');
        list = await devices(a.page);
        assert.equal(list.length, 1, JSON.stringify(list));
        assert.equal(list[0].current, true);

        // B's next page: signed out, and told why.
        await b.page.reload({ timeout: STEP_MS });
        assert.equal(await text(b.page, '#ended'), 'You were signed out: this session was ended from another device, or expired.');
        assert.ok(await b.page.isVisible('#signed-out'));
        await b.page.reload({ timeout: STEP_MS });
        assert.equal(await b.page.isVisible('#ended'), false, 'said once');

        await a.page.goto(example.origin, { timeout: STEP_MS });
        assert.equal(await text(a.page, '#user'), 'ann', 'device A is still signed in');

        // Sign-out is a POST: the user is gone and the id changes again.
        const beforeLogout = await text(a.page, '#session-id');
        await Promise.all([a.page.waitForURL(`${example.origin}/`, { timeout: STEP_MS }), a.page.click('button:has-text("Sign out")', { timeout: STEP_MS })]);
        assert.ok(await a.page.isVisible('#signed-out'));
        assert.notEqual(await text(a.page, '#session-id'), beforeLogout);
        assert.match(await text(a.page, '.flash.success'), /^Signed out\./);
        assert.equal((await fetch(`${example.origin}/logout`)).status, 404, 'no sign-out by GET');

        // What Prometheus scrapes: the operations of all this, and no session id.
        const scraped = await fetch(`${example.origin}/metrics`);
        assert.equal(scraped.status, 200);
        const exposition = await scraped.text();
        assert.match(exposition, /^alt_session_operations_total\{op="load",outcome="ok",.*\} [1-9]\d*$/m);
        assert.match(exposition, /^alt_session_operation_duration_count\{op="load",.*\} [1-9]\d*$/m);
        if (storeName === 'Redis') assert.match(exposition, /^alt_session_connection_count\{alt_session_connection_state="connected",.*\} 1$/m);
        for (const cookie of [before, afterLogin]) assert.ok(!exposition.includes(sessionId(cookie)), 'a session id in the metrics');
      } finally {
        for (const context of contexts) await context.close();
        await example.stop();
      }
    });
  }

  test('memory: a double-submitted sign-in is no error; the form disables its button once sent', { skip: SKIP }, async () => {
    const example = await startExample({});
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(example.origin, { timeout: STEP_MS });
      // Two POSTs at once with the same cookie, as a double click sends them.
      const statuses = await page.evaluate(() => {
        const post = () => fetch('/login', { method: 'POST', body: new URLSearchParams({ username: 'cy', password: 'x' }) }).then((r) => r.status);
        return Promise.all([post(), post(), post()]);
      });
      for (const status of statuses) assert.equal(status, 200, `statuses ${statuses}`);
      await page.reload({ timeout: STEP_MS });
      assert.equal(await text(page, '#user'), 'cy');

      await page.click('button:has-text("Sign out")', { timeout: STEP_MS });
      await page.waitForSelector('#signed-out', { timeout: STEP_MS });
      await page.fill('#username', 'cy', { timeout: STEP_MS });
      const disabled = await page.$eval('form.signin', (form) => {
        form.requestSubmit();
        return form.querySelector('button').disabled;
      });
      assert.equal(disabled, true);
      await page.waitForSelector('#user', { timeout: STEP_MS });
    } finally {
      await context.close();
      await example.stop();
    }
  });

  test('memory: at 390 px wide (a phone) no page scrolls sideways, even with a 64-character user name', { skip: SKIP }, async () => {
    const example = await startExample({});
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      userAgent: IPHONE,
    });
    try {
      const page = await context.newPage();
      await page.goto(example.origin, { timeout: STEP_MS });
      assert.ok((await scrollWidth(page)) <= 390, 'home, signed out');
      await signIn(page, example.origin, 'w'.repeat(64));
      assert.ok((await scrollWidth(page)) <= 390, 'home, signed in, with the flash');
      await page.goto(`${example.origin}/devices`, { timeout: STEP_MS });
      assert.deepEqual(await devices(page), [{ name: 'Safari on iPhone', current: true }]);
      assert.ok((await scrollWidth(page)) <= 390, 'devices');
      await page.goto(`${example.origin}/nowhere`, { timeout: STEP_MS });
      assert.ok((await scrollWidth(page)) <= 390, 'not found');
    } finally {
      await context.close();
      await example.stop();
    }
  });
});
