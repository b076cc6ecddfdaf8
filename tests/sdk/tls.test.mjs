// tests/sdk/tls.test.mjs — the API over TLS (api.tls_cert and api.tls_key): the SDK's
// HTTPS calls, WSS exec, attach and the control channel all work; plain HTTP on the
// TLS port does not. tests/sdk/run makes the certificate and has Node trust it.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { useBallpoint } from './harness.mjs';

const baseImage = process.env.BALLPOINT_BASE_IMAGE;
const cert = process.env.BALLPOINT_TEST_TLS_CERT;
const key = process.env.BALLPOINT_TEST_TLS_KEY;
const bp = useBallpoint({
  args: baseImage && cert ? ['--set', `base_image=${baseImage}`, '--set', `api.tls_cert=${cert}`, '--set', `api.tls_key=${key}`] : [],
});
const skip = !baseImage ? 'BALLPOINT_BASE_IMAGE is not set' : !cert ? 'no test certificate (openssl missing)' : false;

before(async () => {
  if (skip) return;
  await bp.ready;
});

test('endpoint.json names an https URL and the SDK manages sprites over it', { skip }, async () => {
  assert.match(bp.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const client = bp.client();
  const s = await client.createSprite('tls');
  assert.equal(s.name, 'tls');
  assert.deepEqual((await client.listSprites()).sprites.map((x) => x.name), ['tls']);
});

test('exec, a TTY, 2 MB of output and the control channel over WSS', { skip }, async () => {
  const sprite = bp.client().sprite('tls');
  assert.deepEqual(await sprite.exec('echo over tls'), { stdout: 'over tls\n', stderr: '', exitCode: 0 });
  const big = await sprite.execFile('sh', ['-c', 'head -c 2000000 /dev/zero | tr "\\0" y'], { maxBuffer: 8 << 20 });
  assert.equal(big.stdout.length, 2000000);
  const tty = await sprite.execFile('stty', ['size'], { tty: true, rows: 33, cols: 99 });
  assert.match(tty.stdout, /^33 99/);
  const control = bp.client({ controlMode: true }).sprite('tls');
  assert.equal((await control.execFile('echo', ['ctl'])).stdout, 'ctl\n');
});

test('plain HTTP to the TLS port gets no answer, and the server goes on', { skip }, async () => {
  const plain = bp.url.replace('https://', 'http://');
  await assert.rejects(fetch(`${plain}/v1/sprites`, { headers: { Authorization: `Bearer ${bp.token}` } }));
  assert.equal((await bp.client().listSprites()).sprites.length, 1);
});
