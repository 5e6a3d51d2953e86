'use strict';

// A command run to its end with its output collected, bounded in time: for
// tests that check how a whole process behaves (does it exit by itself, what
// it printed).

const { spawn } = require('node:child_process');

const running = new Set();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Runs `command args` in `cwd` with `env` over the current environment.
 * Resolves { code, signal, stdout, stderr, ms, timedOut } once it exits (never
 * rejects on exit status); past `timeoutMs` it is killed (`timedOut: true`).
 * Rejects only when it cannot be started.
 */
function runProcess(command, args, { cwd, env = {}, timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      stderr += `\n[killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - start, timedOut });
    });
  });
}

module.exports = { runProcess };
