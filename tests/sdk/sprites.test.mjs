// tests/sdk/sprites.test.mjs — control-plane sprite calls of the official SDK
// (API.md §3): list, get. One ballpoint host-mode server serves this file.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { useBallpoint } from './harness.mjs';
import { APIError } from './sdk.mjs';

const bp = useBallpoint();

test('listSprites on a fresh runtime returns an empty list', async () => {
  const list = await bp.client().listSprites();
  assert.deepEqual(list.sprites, []);
  assert.equal(list.hasMore, false);
});

test('listAllSprites on a fresh runtime returns no sprites', async () => {
  assert.deepEqual(await bp.client().listAllSprites(), []);
});

test('getSprite of an unknown name rejects with a 404 APIError', async () => {
  await assert.rejects(bp.client().getSprite('nope'), (err) => {
    assert.ok(err instanceof APIError, `expected APIError, got ${err}`);
    assert.equal(err.statusCode, 404);
    return true;
  });
});
