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

test('listSprites pages by prefix, max_results and continuation token; listAllSprites walks them all', { skip }, async () => {
  const client = bp.client();
  const names = ['pg-a', 'pg-b', 'pg-c', 'pg-d', 'pg-e'];
  for (const n of names) await client.createSprite(n);
  try {
    const first = await client.listSprites({ prefix: 'pg-', maxResults: 2 });
    assert.deepEqual(first.sprites.map((s) => s.name), ['pg-a', 'pg-b']);
    assert.equal(first.hasMore, true);
    assert.ok(first.nextContinuationToken);
    const second = await client.listSprites({ prefix: 'pg-', maxResults: 2, continuationToken: first.nextContinuationToken });
    assert.deepEqual(second.sprites.map((s) => s.name), ['pg-c', 'pg-d']);
    const third = await client.listSprites({ prefix: 'pg-', maxResults: 2, continuationToken: second.nextContinuationToken });
    assert.deepEqual(third.sprites.map((s) => s.name), ['pg-e']);
    assert.equal(third.hasMore, false);
    assert.deepEqual((await client.listAllSprites('pg-')).map((s) => s.name), names);
    // Go asks for 100: clamped to 50, not refused.
    const res = await fetch(`${bp.url}/v1/sprites?max_results=100&prefix=pg-b`, { headers: { Authorization: `Bearer ${bp.token}` } });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual(body.sprites.map((s) => s.name), ['pg-b']);
    assert.equal(body.org.running, names.length);  // the counters cover the organization
    assert.equal(body.running, names.length);
  } finally {
    for (const n of names) await client.deleteSprite(n);
  }
});

test('watchSprites streams each sprite, then changes as they happen', { skip }, async () => {
  const client = bp.client();
  await client.createSprite('wa-1');
  const stream = await client.watchSprites({ prefix: 'wa-' });
  const seen = [];
  const reading = (async () => {
    for await (const ev of stream) {
      seen.push(ev);
      if (ev.name === 'wa-2' && ev.status === 'deleted') break;
    }
  })();
  const until = async (pred) => { for (let i = 0; i < 500 && !pred(); i++) await new Promise((r) => setTimeout(r, 20)); };
  await until(() => seen.some((e) => e.name === 'wa-1'));
  await client.createSprite('wa-2');
  await until(() => seen.some((e) => e.name === 'wa-2'));
  await client.deleteSprite('wa-2');
  await reading;
  assert.deepEqual(seen.map((e) => [e.name, e.status]), [['wa-1', 'running'], ['wa-2', 'running'], ['wa-2', 'deleted']]);
  assert.equal(seen[0].runningVersion, '0.1.0');
  assert.ok(seen[0].timestamp instanceof Date);
  assert.equal(seen[1].organization.running, 2);
  await client.deleteSprite('wa-1');
});

test('the organization: real counts; tokens are not minted here (501)', { skip }, async () => {
  const client = bp.client();
  await client.createSprite('org-1');
  try {
    const headers = { Authorization: `Bearer ${bp.token}` };
    const org = await (await fetch(`${bp.url}/v1/organization`, { headers })).json();
    assert.equal(org.organization.slug, 'local');
    assert.deepEqual(org.organization.active_sprites, ['org-1']);
    assert.ok(org.organization.max_sprites >= 1);
    // A sprite's config reports what it runs on: here no limits, so the machine.
    const sprite = await (await fetch(`${bp.url}/v1/sprites/org-1`, { headers })).json();
    assert.equal(sprite.config.region, 'local');
    assert.ok(sprite.config.ram_mb > 0 && sprite.config.cpus >= 1, JSON.stringify(sprite.config));
    const tok = await fetch(`${bp.url}/v1/organizations/local/tokens`, { method: 'POST', headers, body: '{}' });
    assert.equal(tok.status, 501);
    assert.equal((await tok.json()).error, 'not_supported');
    assert.equal((await fetch(`${bp.url}/v1/organization`)).status, 401);
  } finally {
    await client.deleteSprite('org-1');
  }
});
