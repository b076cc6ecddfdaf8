// tests/sdk/control.test.mjs — the multiplexed /control channel (API.md 2.6;
// checklist 42-46): envelopes, one op at a time, reuse, args shapes, release, and the
// SDK's control mode.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { before, test } from 'node:test';

import { useBallpoint } from './harness.mjs';
import { openSocket, until } from './raw.mjs';
import { ExecError } from './sdk.mjs';

const baseImage = process.env.BALLPOINT_BASE_IMAGE;
const bp = useBallpoint({ args: baseImage ? ['--set', `base_image=${baseImage}`] : [] });
const skip = baseImage ? false : 'BALLPOINT_BASE_IMAGE is not set (CTest sets it to the busybox image it builds)';

before(async () => {
  if (skip) return;
  await bp.ready;
  await bp.client().createSprite('cc');
});

const envelopes = (s) => s.texts().filter((f) => f.text.startsWith('control:')).map((f) => JSON.parse(f.text.slice(8)));
const start = (s, id, args) => s.send(`control:${JSON.stringify({ type: 'op.start', id, op: 'exec', args })}`);
const completed = (s, id) => until(() => envelopes(s).find((e) => e.type === 'op.complete' && e.id === id), `op.complete of ${id}`);

async function control() {
  const s = openSocket(bp, 'cc', '/control');
  await s.opened;
  return s;
}

test('an exec op: its frames, the exit frame, then op.complete with the exit code', { skip }, async () => {
  const s = await control();
  start(s, '7', { cmd: ['sh', '-c', 'echo out; exit 3'], stdin: 'true' });
  s.send(Buffer.from([0x04]));  // JS sends the stdin EOF right behind op.start
  const done = await completed(s, '7');
  assert.deepEqual(done.args, { ok: true, exitCode: 3 });
  assert.equal(s.output(1), 'out\n');
  const exitFrame = s.frames.filter((f) => f.bin && f.bin[0] === 3);
  assert.deepEqual(exitFrame.map((f) => [...f.bin]), [[3, 3]]);
  // The exit frame comes before op.complete.
  const iExit = s.frames.findIndex((f) => f.bin && f.bin[0] === 3);
  const iDone = s.frames.findIndex((f) => f.text?.includes('op.complete'));
  assert.ok(iExit < iDone);
  s.close();
});

test('a second op.start while one runs is op.busy; the first still completes; the socket is reused', { skip }, async () => {
  const s = await control();
  start(s, 'a', { cmd: ['sh', '-c', 'sleep 1; echo first'] });
  start(s, 'b', { cmd: ['echo', 'second'] });
  const busy = await until(() => envelopes(s).find((e) => e.type === 'op.error'), 'op.error');
  assert.equal(busy.id, 'b');
  assert.equal(busy.args.code, 'op.busy');
  assert.deepEqual((await completed(s, 'a')).args, { ok: true, exitCode: 0 });
  assert.equal(s.output(1), 'first\n');
  // Idle again: a bare release is accepted silently, stray data is dropped, and a
  // second exec runs on the same socket.
  s.send(JSON.stringify({ type: 'release' }));
  s.send(Buffer.from([0x00, 0x41]));
  start(s, 'c', { cmd: ['echo', 'again'] });
  assert.deepEqual((await completed(s, 'c')).args, { ok: true, exitCode: 0 });
  assert.equal(s.output(1), 'first\nagain\n');
  assert.equal(envelopes(s).filter((e) => e.type === 'op.error').length, 1);
  s.close();
});

test('args as booleans and numbers, or as a query string; stdin with its prefix', { skip }, async () => {
  const s = await control();
  start(s, 't', { cmd: ['stty', 'size'], tty: true, rows: 30, cols: 100, stdin: false });
  await completed(s, 't');
  assert.match(s.output(), /^30 100\r?\n/);
  assert.deepEqual(s.texts().find((f) => f.json?.type === 'exit')?.json, { type: 'exit', exit_code: 0 });
  s.close();

  const q = await control();
  start(q, 'q', 'cmd=echo&cmd=a+b');
  await completed(q, 'q');
  assert.equal(q.output(1), 'a b\n');
  start(q, 'i', { cmd: ['cat'], stdin: true });
  q.send(Buffer.concat([Buffer.from([0x00]), Buffer.from('piped')]));
  q.send(Buffer.from([0x04]));
  await completed(q, 'i');
  assert.equal(q.output(1), 'a b\npiped');
  start(q, 'x', { cmd: { nested: true } });
  const bad = await until(() => envelopes(q).find((e) => e.type === 'op.error'), 'op.error');
  assert.equal(bad.args.code, 'op.invalid');
  q.close();
});

test('a TTY op takes resize and signal as binary JSON, as the JS SDK sends them', { skip }, async () => {
  const s = await control();
  start(s, 'r', { cmd: ['sh'], tty: 'true', rows: '24', cols: '80', stdin: 'true' });
  await until(() => s.sessionInfo(), 'session_info');
  s.send(Buffer.from(JSON.stringify({ type: 'resize', cols: 120, rows: 40 })));
  s.send(Buffer.from('stty size\n'));
  await until(() => s.output().includes('40 120'), 'the new size');
  s.send(Buffer.from(JSON.stringify({ type: 'signal', signal: 'KILL' })));
  assert.equal((await completed(s, 'r')).args.exitCode, 137);
  s.close();
});

test('the SDK in control mode runs exec over the control socket, with exit codes', { skip }, async () => {
  const client = bp.client({ controlMode: true });
  await client.createSprite('cm');
  const sprite = client.sprite('cm');
  const r = await sprite.execFile('sh', ['-c', 'echo ok']);
  assert.deepEqual([r.stdout, r.stderr, r.exitCode], ['ok\n', '', 0]);
  await assert.rejects(sprite.execFile('sh', ['-c', 'exit 5']), (err) => err instanceof ExecError && err.exitCode === 5);
  // The SDK falls back to /exec silently on any failure: the log says which was used.
  const log = await readFile(bp.logPath, 'utf8');
  const ops = log.split('\n').filter((l) => /"msg":"control op started","sprite":"cm","op":"exec"/.test(l));
  assert.ok(ops.length >= 2, `control ops on sprite cm: ${ops.length}`);
});
