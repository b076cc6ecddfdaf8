// tests/sdk/auth.test.mjs — bearer-token authentication as the official SDK sees it
// (API.md §1.2): a wrong or empty token gets 401 {"error":"unauthorized",...}.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { useBallpoint } from './harness.mjs';
import { APIError } from './sdk.mjs';

const bp = useBallpoint();

function isUnauthorized(err) {
  assert.ok(err instanceof APIError, `expected APIError, got ${err}`);
  assert.equal(err.statusCode, 401);
  assert.equal(err.errorCode, 'unauthorized');
  return true;
}

test('the token from endpoint.json is accepted', async () => {
  await bp.client().listSprites();
});

test('a wrong token is refused with 401', async () => {
  await assert.rejects(bp.client({ token: `${bp.token}x` }).listSprites(), isUnauthorized);
});

test('an empty token is refused with 401', async () => {
  await assert.rejects(bp.client({ token: '' }).listSprites(), isUnauthorized);
});

test('the token is checked before the sprite is looked up', async () => {
  await assert.rejects(bp.client({ token: 'wrong' }).getSprite('nope'), isUnauthorized);
});
