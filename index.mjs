// The ES module entry: `import altSession from 'alt-session'` and
// `import { altSession, mock } from 'alt-session'`. The package itself is
// CommonJS (index.js); this only re-exports it, so both share one engine.
import altSession from './index.js';

export default altSession;
export { altSession };
export const { mock } = altSession;
