'use strict';

// Loads the native engine that `npm install` builds from source
// (scripts/build.js). Kept apart from index.js so the shim reads as an adapter.
try {
  module.exports = require('./alt-session.node');
} catch (err) {
  err.message =
    'alt-session: the native engine is missing or cannot load; run `npm install` ' +
    '(or `npm run build`) in the package folder. Cause: ' + err.message;
  throw err;
}
