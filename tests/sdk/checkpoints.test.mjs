// tests/sdk/checkpoints.test.mjs — checkpoints with the official SDK (API.md §2.10;
// checklist 61-64): create with a comment and read its NDJSON stream, list (with and
// without a history filter), get, restore (a file written after the checkpoint is gone,
// exec works again), and the errors for an unknown id.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { useBallpoint } from './harness.mjs';

const baseImage = process.env.BALLPOINT_BASE_IMAGE;
const bp = useBallpoint({ args: baseImage ? ['--set', `base_image=${baseImage}`] : [] });
const skip = baseImage ? false : 'BALLPOINT_BASE_IMAGE is not set (CTest sets it to the busybox image it builds)';

let sprite;
before(async () => {
  if (skip) return;
  await bp.ready;
  await bp.client().createSprite('cp');
  sprite = bp.client().sprite('cp');
});

async function messages(stream) {
  const all = [];
  await stream.processAll((m) => all.push(m));
  return all;
}

test('createCheckpoint streams progress and ends with "Checkpoint vN created" (61)', { skip }, async () => {
  await sprite.execFile('sh', ['-c', 'echo one > /state && sync']);
  const msgs = await messages(await sprite.createCheckpoint('before migration'));
  assert.ok(msgs.length >= 2, JSON.stringify(msgs));
  for (const m of msgs) {
    assert.ok(['info', 'complete'].includes(m.type), JSON.stringify(m));
    assert.ok(!Number.isNaN(Date.parse(m.time)), m.time);
  }
  const last = msgs.at(-1);
  assert.equal(last.type, 'complete');
  assert.match(last.data, /^Checkpoint v\d+ created$/);
});

test('listCheckpoints returns the new checkpoint with its comment; a history filter is a list too (62)', { skip }, async () => {
  const list = await sprite.listCheckpoints();
  assert.ok(Array.isArray(list));
  assert.equal(list[0].id, 'Current');
  const mine = list.find((c) => c.comment === 'before migration');
  assert.ok(mine, JSON.stringify(list));
  assert.match(mine.id, /^v\d+$/);
  assert.ok(mine.createTime instanceof Date && !Number.isNaN(mine.createTime.getTime()));
  assert.equal(mine.isAuto, false);
  assert.equal(mine.health, '');
  assert.ok(Array.isArray(await sprite.listCheckpoints('v0')));
});

test('getCheckpoint returns the object; an unknown id is "Checkpoint not found" (63)', { skip }, async () => {
  const list = await sprite.listCheckpoints();
  const mine = list.find((c) => c.comment === 'before migration');
  const got = await sprite.getCheckpoint(mine.id);
  assert.equal(got.id, mine.id);
  assert.equal(got.comment, 'before migration');
  await assert.rejects(sprite.getCheckpoint('v4242'), /Checkpoint not found: v4242/);
});

test('restoreCheckpoint streams to "Restore from vN complete"; later files are gone and exec works (64)', { skip }, async () => {
  const id = (await sprite.listCheckpoints()).find((c) => c.comment === 'before migration').id;
  await sprite.execFile('sh', ['-c', 'echo two > /state && echo new > /later && sync']);
  const msgs = await messages(await sprite.restoreCheckpoint(id));
  assert.equal(msgs[0].data, `Restoring from checkpoint ${id}...`);
  assert.equal(msgs.at(-1).type, 'complete');
  assert.equal(msgs.at(-1).data, `Restore from ${id} complete`);
  assert.equal((await sprite.exec('cat /state')).stdout, 'one\n');
  await assert.rejects(sprite.exec('cat /later'), (err) => err.exitCode === 1);
  // The state the restore left is a checkpoint of its own, with the file in it.
  const list = await sprite.listCheckpoints();
  assert.equal(list[0].sourceId, id);
  assert.ok(list.some((c) => c.comment === `before restoring ${id}`), JSON.stringify(list));
});

test('restoreCheckpoint of an unknown id fails before any streaming', { skip }, async () => {
  await assert.rejects(sprite.restoreCheckpoint('v4242'), /status 404/);
  assert.equal((await sprite.exec('echo alive')).stdout, 'alive\n');
});
