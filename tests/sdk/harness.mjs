// tests/sdk/harness.mjs — starts a ballpoint runtime in host mode for one test file.
//
//   const bp = await startBallpoint();   // { url, token, client(), stop(), ... }
//   ...
//   await bp.stop();                      // SIGTERM; fails unless it exits 0 in time
//
// or, inside a node:test file, `const bp = useBallpoint();` registers before/after
// hooks that do the same around the whole file.
//
// The binary is $BALLPOINT_INIT (CTest passes $<TARGET_FILE:ballpoint-init>). It is
// run as `BIN --host --state DIR --listen 127.0.0.1:PORT` and is ready once it has
// written DIR/endpoint.json = {"url": ..., "token": ...}. Its output goes to a log
// file beside the state dir; failures quote the end of that log. The temporary
// directory is removed after a clean stop, and kept (path printed) otherwise or
// when BALLPOINT_SDK_KEEP=1.
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, open, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before } from 'node:test';

import { SpritesClient } from './sdk.mjs';

const kReadyTimeoutMs = 20_000;
const kStopTimeoutMs = 15_000;
const kPollMs = 50;
const kPortAttempts = 3;

// Children still running when this process exits are killed, so a crashed or
// timed-out test file never leaves a server behind.
const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort() {
  const srv = createServer();
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

async function logTail(path, bytes = 4096) {
  try {
    const text = await readFile(path, 'utf8');
    return text.length > bytes ? '…' + text.slice(-bytes) : text;
  } catch {
    return '';
  }
}

// Resolves to the promise's value, or to undefined after ms; never keeps the
// process alive once the promise has settled.
async function within(promise, ms) {
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(resolve, ms); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describeExit({ code, signal, error }) {
  if (error) return `could not run: ${error.message}`;
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}

async function readEndpoint(path) {
  let text;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const ep = JSON.parse(text);
    if (typeof ep.url === 'string' && typeof ep.token === 'string') return ep;
  } catch {
    // Not complete yet (a writer that does not rename into place): poll again.
  }
  return undefined;
}

async function launch({ bin, dir, port, extraArgs, env }) {
  const stateDir = join(dir, 'state');
  const logPath = join(dir, 'server.log');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const log = await open(logPath, 'a');
  const args = ['--host', '--state', stateDir, '--listen', `127.0.0.1:${port}`, ...extraArgs];
  const child = spawn(bin, args, {
    stdio: ['ignore', log.fd, log.fd],
    env: { ...process.env, ...env },
  });
  // The child must not keep this process alive by itself: if the stopping hook
  // never runs, the process exits and the 'exit' handler above kills the child.
  child.unref();
  live.add(child);
  // Settles once: with the exit status, or with the error when spawning failed
  // (then Node emits 'error' and no 'exit'). Listen before any await.
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => resolve({ error }));
  }).finally(() => live.delete(child));
  await log.close(); // the child holds its own copy
  return { child, exited, stateDir, logPath, cmdline: [bin, ...args].join(' ') };
}

/**
 * Start `ballpoint-init --host` on a free loopback port and wait until it is ready.
 * Options: bin (default $BALLPOINT_INIT), readyTimeoutMs, stopTimeoutMs,
 * args (extra command-line arguments), env (extra environment).
 */
export async function startBallpoint(options = {}) {
  const bin = options.bin ?? process.env.BALLPOINT_INIT;
  if (!bin) {
    throw new Error('BALLPOINT_INIT is not set: point it at the ballpoint-init binary ' +
      '(build/init/ballpoint-init), or run the suite through tests/sdk/run or ctest');
  }
  const readyTimeoutMs = options.readyTimeoutMs ?? kReadyTimeoutMs;
  const stopTimeoutMs = options.stopTimeoutMs ?? kStopTimeoutMs;
  const keep = process.env.BALLPOINT_SDK_KEEP === '1';
  const dir = await mkdtemp(join(tmpdir(), 'ballpoint-sdk-'));

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const proc = await launch({
      bin, dir, port, extraArgs: options.args ?? [], env: options.env ?? {},
    });
    const endpointPath = join(proc.stateDir, 'endpoint.json');
    const deadline = Date.now() + readyTimeoutMs;
    let exit;
    let ep;
    proc.exited.then((e) => { exit = e; });
    while (!exit && Date.now() < deadline) {
      ep = await readEndpoint(endpointPath);
      if (ep) break;
      await sleep(kPollMs);
    }
    if (ep && !exit) {
      return makeHandle({ proc, ep, dir, keep, stopTimeoutMs });
    }

    const tail = await logTail(proc.logPath);
    if (exit) {
      // Somebody took the port between freePort() and the bind: try another one.
      if (attempt < kPortAttempts && /EADDRINUSE|address already in use/i.test(tail)) continue;
      throw new Error(`${proc.cmdline}\nexited before it was ready (${describeExit(exit)}); ` +
        `logs in ${dir}:\n${tail}`);
    }
    proc.child.kill('SIGKILL');
    await proc.exited;
    throw new Error(`${proc.cmdline}\ndid not write ${endpointPath} within ${readyTimeoutMs} ms; ` +
      `logs in ${dir}:\n${tail}`);
  }
}

function makeHandle({ proc, ep, dir, keep, stopTimeoutMs }) {
  let stopping;
  const stop = async () => {
    stopping ??= (async () => {
      const before = await within(proc.exited, 0);
      if (before) {
        throw new Error(`ballpoint-init died during the tests (${describeExit(before)}); ` +
          `logs in ${dir}:\n${await logTail(proc.logPath)}`);
      }
      proc.child.kill('SIGTERM');
      const exit = await within(proc.exited, stopTimeoutMs);
      if (!exit) {
        proc.child.kill('SIGKILL');
        await proc.exited;
        throw new Error(`ballpoint-init did not exit within ${stopTimeoutMs} ms of SIGTERM ` +
          `(killed); logs in ${dir}:\n${await logTail(proc.logPath)}`);
      }
      if (exit.code !== 0) {
        throw new Error(`ballpoint-init stopped uncleanly after SIGTERM (${describeExit(exit)}); ` +
          `logs in ${dir}:\n${await logTail(proc.logPath)}`);
      }
      if (keep) {
        process.stderr.write(`ballpoint-sdk: kept ${dir}\n`);
      } else {
        await rm(dir, { recursive: true, force: true });
      }
    })();
    return stopping;
  };
  return {
    url: ep.url,
    token: ep.token,
    pid: proc.child.pid,
    dir,
    stateDir: proc.stateDir,
    logPath: proc.logPath,
    /** A client of this server; pass { token } to use another token. */
    client({ token = ep.token, ...options } = {}) {
      return new SpritesClient(token, { baseURL: ep.url, ...options });
    },
    stop,
  };
}

/**
 * Registers node:test before/after hooks that start one server for the calling
 * test file and stop it (asserting a clean exit) when the file is done.
 * Returns a handle whose fields are valid inside tests.
 */
export function useBallpoint(options = {}) {
  let server;
  let starting;
  let markReady;
  // Resolves once the server is up: a test file's own before hooks await it.
  const ready = new Promise((resolve) => { markReady = resolve; });
  const need = () => {
    if (!server) throw new Error('ballpoint is not running (use the handle inside tests)');
    return server;
  };
  before(async () => {
    starting = startBallpoint(options);
    server = await starting;
    markReady();
  });
  // When a name filter leaves no test in the file, node runs this hook without
  // waiting for the async before hook (seen on 24.21), so wait for the start here.
  after(async () => {
    const started = await starting?.catch(() => undefined);
    await started?.stop();
  });
  return {
    ready,
    get url() { return need().url; },
    get pid() { return need().pid; },
    get token() { return need().token; },
    get stateDir() { return need().stateDir; },
    get logPath() { return need().logPath; },
    client(opts) { return need().client(opts); },
  };
}
