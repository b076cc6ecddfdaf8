// tests/sdk/sessions.test.mjs — sessions outlive their sockets (API.md 2.2-2.4;
// checklist 32-39): detach, list, attach with scrollback by path and by ?id=, several
// clients at once, run-after-disconnect, ended-while-detached, a streamed kill.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { useBallpoint } from './harness.mjs';
import { openSocket, sleep, until, upgradeStatus } from './raw.mjs';

const baseImage = process.env.BALLPOINT_BASE_IMAGE;
const bp = useBallpoint({ args: baseImage ? ['--set', `base_image=${baseImage}`] : [] });
const skip = baseImage ? false : 'BALLPOINT_BASE_IMAGE is not set (CTest sets it to the busybox image it builds)';
let sprite;

before(async () => {
  if (skip) return;
  await bp.ready;
  await bp.client().createSprite('ss');
  sprite = bp.client().sprite('ss');
});

const listed = async (id) => (await sprite.listSessions()).find((s) => String(s.id) === String(id));

// A new exec over a bare socket, once its session_info has arrived.
async function started(query) {
  const s = openSocket(bp, 'ss', `/exec?${query}`);
  await s.opened;
  const info = await until(() => s.sessionInfo(), 'session_info');
  return { s, id: info.session_id };
}

test('a detached terminal runs on; the list shows it; attach replays its scrollback and takes input', { skip }, async () => {
  const { s, id } = await started('cmd=sh&tty=true&rows=24&cols=80');
  s.send(Buffer.from('echo first-$((6*7))\n'));
  await until(() => s.output().includes('first-42'), 'the first output');
  await s.close();  // detach: a terminal keeps running (API.md 2.2)
  await sleep(300);

  const entry = await listed(id);
  assert.ok(entry, 'the detached session is listed');
  assert.equal(entry.tty, true);
  assert.ok(!Number.isNaN(entry.created.getTime()));

  const cmd = sprite.attachSession(String(id));
  let out = '';
  const messages = [];
  cmd.stdout.on('data', (c) => { out += c; });
  cmd.on('message', (m) => messages.push(m));
  const exited = new Promise((resolve) => cmd.on('exit', resolve));
  await until(() => out.includes('first-42'), 'the scrollback');
  assert.equal(messages[0]?.type, 'session_info');
  assert.equal(messages[0].is_owner, false);
  assert.equal(messages[0].tty, true);
  assert.equal(String(messages[0].session_id), String(id));

  // A second client at the same time: both see what either types.
  const other = openSocket(bp, 'ss', `/exec/${id}`);
  await other.opened;
  await until(() => other.output().includes('first-42'), 'the scrollback on the second client');
  cmd.stdin.write('echo second-$((7*7))\n');
  await until(() => out.includes('second-49'), 'live output');
  await until(() => other.output().includes('second-49'), 'live output on the second client');
  other.send(Buffer.from('exit 3\n'));
  assert.notEqual(await exited, 0);  // JS takes a TTY's exit from the close code
  assert.equal(await other.closed, 4003);
  assert.deepEqual(other.texts().at(-1).json, { type: 'exit', exit_code: 3 });
  await until(async () => !(await listed(id)), 'the session to leave the list');
});

test('the legacy ?id= attach behaves like /exec/{id}', { skip }, async () => {
  const { s, id } = await started('cmd=sh&cmd=-c&cmd=echo%20legacy;%20sleep%20100&detachable=true');
  await until(() => s.output(1).includes('legacy'), 'output');
  await s.close();
  const again = openSocket(bp, 'ss', `/exec?id=${id}&stdin=true`);
  await again.opened;
  const info = await until(() => again.sessionInfo(), 'session_info');
  assert.equal(again.frames[0].json.type, 'session_info');
  assert.equal(info.is_owner, false);
  assert.equal(info.tty, false);
  await until(() => again.output(1) === 'legacy\n', 'the scrollback, re-framed as stdout');
  const events = [];
  for await (const ev of await sprite.killSession(String(id), 'SIGKILL', '5s')) events.push(ev);
  assert.equal(events.at(-1).type, 'complete');
  assert.equal(await again.closed, 1000);
  assert.deepEqual([...again.frames.at(-1).bin], [3, 137]);
});

test('attach to an unknown session is a 404 before any upgrade', { skip }, async () => {
  assert.equal(await upgradeStatus(bp, '/v1/sprites/ss/exec/987654'), 404);
  assert.equal(await upgradeStatus(bp, '/v1/sprites/ss/exec?id=987654'), 404);
  assert.equal(await upgradeStatus(bp, '/v1/sprites/ss/exec/not-a-number'), 404);
  await assert.rejects(new Promise((resolve, reject) => {
    const cmd = sprite.attachSession('987654');
    cmd.on('exit', resolve);
    cmd.on('error', reject);
  }).then((code) => { if (code !== 0) throw new Error(`exit ${code}`); }));
});

test('a non-TTY exec runs on ~10 s after its client left, then ends; max_run_after_disconnect=0 runs on', { skip, timeout: 60000 }, async () => {
  const dflt = await started('cmd=sleep&cmd=1000');
  const forever = await started('cmd=sleep&cmd=1001&max_run_after_disconnect=0');
  const left = Date.now();
  await Promise.all([dflt.s.close(), forever.s.close()]);
  await sleep(4000);
  assert.ok(await listed(dflt.id), 'still running 4 s after the client left');
  await until(async () => !(await listed(dflt.id)), 'the default run-after-disconnect to end it', 25000);
  const after = (Date.now() - left) / 1000;
  assert.ok(after >= 9, `ended after ${after} s, not ~10 s`);
  assert.ok(await listed(forever.id), 'max_run_after_disconnect=0 keeps it');
  for await (const ev of await sprite.killSession(String(forever.id), 'SIGKILL', '5s')) void ev;
});

test('a session that ended while detached replays its output and exit code', { skip }, async () => {
  const { s, id } = await started(`cmd=sh&cmd=-c&cmd=${encodeURIComponent('echo bye; echo err >&2; sleep 1; exit 7')}`);
  await s.close();
  await until(async () => !(await listed(id)), 'the session to end');
  const late = openSocket(bp, 'ss', `/exec/${id}`);
  await late.opened;
  assert.equal(await late.closed, 1000);
  assert.equal(late.sessionInfo().is_owner, false);
  assert.equal(late.output(1), 'bye\n');
  assert.equal(late.output(2), 'err\n');
  assert.deepEqual([...late.frames.at(-1).bin], [3, 7]);
  // Killing it now: it has exited (410), which the SDK reports as an error.
  await assert.rejects(sprite.killSession(String(id)), (err) => err.statusCode === 410 || /410/.test(String(err)));
});

test('kill streams its steps: a process that ignores SIGTERM is killed after the timeout', { skip }, async () => {
  const { s, id } = await started(`cmd=sh&cmd=-c&cmd=${encodeURIComponent('trap "" TERM; echo ready; while :; do sleep 1; done')}`);
  await until(() => s.output(1).includes('ready'), 'the trap to be set');
  const events = [];
  for await (const ev of await sprite.killSession(String(id), 'SIGTERM', '1s')) events.push(ev);
  assert.deepEqual(events.map((e) => e.type), ['signal', 'timeout', 'killed', 'exited', 'complete']);
  assert.equal(events[2].signal, 'SIGKILL');
  assert.equal(events[3].exitCode, 137);
  assert.equal(await s.closed, 1000);
  assert.deepEqual([...s.frames.at(-1).bin], [3, 137]);
});

test('HTTP execs are listed as sessions and can be killed', { skip }, async () => {
  const running = sprite.execFileHTTP('sleep', ['1002']).catch((e) => e);
  const entry = await until(async () => (await sprite.listSessions()).find((x) => x.command === 'sleep 1002'), 'the HTTP exec in the list');
  assert.equal(entry.tty, false);
  const events = [];
  for await (const ev of await sprite.killSession(String(entry.id), 'SIGTERM', '5s')) events.push(ev);
  assert.equal(events.find((e) => e.type === 'exited')?.exitCode, 143);
  const r = await running;
  assert.equal(r.exitCode ?? r.result?.exitCode, 143);
});
