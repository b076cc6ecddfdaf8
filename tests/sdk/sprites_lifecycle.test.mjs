// tests/sdk/sprites_lifecycle.test.mjs — creating and deleting sprites with the official SDK
// (API.md §3.2-3.6; checklist 77, 78, 80). The runtime gets the busybox base image that
// CTest builds (BALLPOINT_BASE_IMAGE); without it this file skips.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { useBallpoint } from './harness.mjs';
import { APIError } from './sdk.mjs';

const baseImage = process.env.BALLPOINT_BASE_IMAGE;
const bp = useBallpoint({ args: baseImage ? ['--set', `base_image=${baseImage}`] : [] });
const skip = baseImage ? false : 'BALLPOINT_BASE_IMAGE is not set (CTest sets it to the busybox image it builds)';

test('createSprite returns the sprite; get and list show it; delete removes it', { skip }, async () => {
  const client = bp.client();
  const name = `test-sprite-${Date.now()}`;
  const sprite = await client.createSprite(name);
  assert.equal(sprite.name, name);
  assert.ok(sprite.id, 'the sprite has an id');

  const got = await client.getSprite(name);
  assert.equal(got.name, name);
  assert.equal(got.id, sprite.id);
  assert.equal(got.status, 'running');

  const list = await client.listSprites();
  assert.deepEqual(list.sprites.map((s) => s.name), [name]);
  assert.equal(list.hasMore, false);

  await client.deleteSprite(name);
  await assert.rejects(client.getSprite(name), (err) => err instanceof APIError && err.statusCode === 404);
  assert.deepEqual((await client.listSprites()).sprites, []);
});

test('a second createSprite of the same name is refused with 409', { skip }, async () => {
  const client = bp.client();
  await client.createSprite('dup');
  await assert.rejects(client.createSprite('dup'), (err) => {
    assert.ok(err instanceof APIError, `expected APIError, got ${err}`);
    assert.equal(err.statusCode, 409);
    return true;
  });
  await client.deleteSprite('dup');
});

test('an invalid name is refused with 400 and creates nothing', { skip }, async () => {
  const client = bp.client();
  await assert.rejects(client.createSprite('Not_Valid'), (err) => err instanceof APIError && err.statusCode === 400);
  assert.deepEqual((await client.listSprites()).sprites, []);
});

test('updateSprite changes labels and url_settings, kept across reads', { skip }, async () => {
  const client = bp.client();
  await client.createSprite('upd');
  const updated = await client.updateSprite('upd', { urlSettings: { auth: 'public' }, labels: ['web', 'demo'] });
  assert.equal(updated.urlSettings?.auth ?? updated.url_settings?.auth, 'public');
  assert.deepEqual(updated.labels, ['web', 'demo']);
  const got = await client.getSprite('upd');
  assert.deepEqual(got.labels, ['web', 'demo']);
  await assert.rejects(client.updateSprite('upd', { urlSettings: { auth: 'everyone' } }),
    (err) => err instanceof APIError && err.statusCode === 400);
  await client.deleteSprite('upd');
});
