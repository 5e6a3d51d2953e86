// The ES module entry of alt-session/express-session: `import session from
// 'alt-session/express-session'`. It re-exports the CommonJS module
// (express-session.js), so both share one engine.
import session from './express-session.js';

export default session;
export const { mock } = session;
