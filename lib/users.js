'use strict';

/**
 * Every session of a user: the steps of `mw.sessions()`, `mw.revoke()` and
 * a signed-in session's lease renewal, each a short sequence of store
 * operations (src/store/mod.rs says what each one does in the store).
 *
 * A user's index (`prefix:user:<id>`) lists the ids of the sessions that
 * signed in as that user, each for a lease that the session cannot outlive;
 * entries of sessions that ended go lazily, a bounded number per call.
 */

/**
 * The live sessions of `user`, most recently seen first:
 * `[{ id, createdAt, lastSeenAt, meta }]` (times in unix milliseconds).
 */
function listSessions(store, user, decode, done) {
  store.indexList(user, (err, ids) => {
    if (err) return done(err);
    eachAtOnce(
      ids,
      (id, then) => store.describe(id, then),
      (failed, described) => {
        const sessions = [];
        const ended = [];
        ids.forEach((id, i) => {
          const fields = described[i];
          if (fields === undefined) return; // its describe failed
          if (fields[0] === user) sessions.push(entry(id, fields, decode));
          // Ended, or signed in as someone else since. (A session that exists
          // but is not bound yet is signing in: its entry stays.)
          else if (fields[0] !== null || fields[4] === null) ended.push(id);
        });
        if (ended.length > 0) store.indexRemove(user, ended, noop);
        if (failed) return done(failed);
        sessions.sort((a, b) => b.lastSeenAt - a.lastSeenAt);
        done(null, sessions);
      }
    );
  });
}

function entry(id, [, meta, signedInAt, lastSeenAt], decode) {
  return { id, createdAt: Number(signedInAt), lastSeenAt: Number(lastSeenAt), meta: decode(meta) };
}

/**
 * Ends every session of `user` but `except`; results in how many ended.
 * A session ends by deletion, so a request in flight for it can write
 * nothing back (writes go only to sessions that exist) and its next request
 * starts fresh. The index lists `maxSessionsPerUser` ids at a time: an
 * index that grew larger (before the cap, or while ending sessions failed)
 * is gone through in rounds.
 */
function revokeSessions(store, user, except, done) {
  let total = 0;
  const round = () =>
    store.indexList(user, (err, ids) => {
      if (err) return done(err);
      const doomed = ids.filter((id) => id !== except);
      endSessions(store, user, doomed, (failed, ended) => {
        if (failed) return done(failed); // the index keeps them: a retry finds them
        total += ended;
        // A full list may have left entries out: another round.
        if (ids.length < store.maxSessionsPerUser || doomed.length === 0) return done(null, total);
        round();
      });
    });
  round();
}

/**
 * Ends the sessions `ids` of `user`, then takes them out of its index;
 * results in how many of them still lived.
 */
function endSessions(store, user, ids, done) {
  if (ids.length === 0) return done(null, 0);
  eachAtOnce(
    ids,
    (id, then) => store.destroy(id, then),
    (failed, existed) => {
      if (failed) return done(failed);
      const ended = existed.reduce((sum, one) => sum + one, 0);
      store.indexRemove(user, ids, (removeErr) => done(removeErr, ended));
    }
  );
}

/**
 * After `id` signed in as `user`: the user's sessions beyond
 * `maxSessionsPerUser` end, least recently active first. A failure leaves
 * them for the next sign-in to end; the sign-in itself stands.
 */
function endOverflow(store, user, id, done) {
  store.indexOverflow(user, (err, ids) => {
    if (err) return done();
    endSessions(
      store,
      user,
      ids.filter((other) => other !== id),
      () => done()
    );
  });
}

/**
 * Runs `call(item, then)` for every item at once (they share a batch);
 * `done(err, results)` once all have answered: `err` the first failure,
 * `results[i]` the result of item i (undefined where it failed).
 */
function eachAtOnce(items, call, done) {
  const results = new Array(items.length);
  let waiting = items.length;
  let failed = null;
  if (waiting === 0) return done(null, results);
  items.forEach((item, i) => {
    call(item, (err, result) => {
      if (err) failed = failed || err;
      else results[i] = result;
      if (--waiting === 0) done(failed, results);
    });
  });
}

/**
 * Moves a signed-in session's lease on: its index entry first, then the
 * session (which may never outlive the entry). An entry that is gone (the
 * session was revoked) is not put back. Runs in the background: a failure
 * leaves the current lease, and a later request tries again.
 */
function renewLease(store, user, id) {
  store.indexAdd(user, id, true, (err, held) => {
    if (!err && held === 1) store.extend(id, noop);
  });
}

function noop() {}

module.exports = { listSessions, revokeSessions, renewLease, endOverflow };
