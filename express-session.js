'use strict';

/**
 * alt-session/express-session: express-session's middleware, on alt-session's
 * engine. Change one require:
 *
 *   const session = require('alt-session/express-session');
 *   app.use(session({ secret: 'keyboard cat', redis: { url: 'redis://127.0.0.1:6379' } }));
 *
 * lib/express-session.js is the middleware; README.md, "Coming from express-session".
 */

module.exports = require('./lib/express-session');
