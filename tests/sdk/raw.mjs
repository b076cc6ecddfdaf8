// tests/sdk/raw.mjs — a bare WebSocket client for what the SDK does not expose (detach
// by closing, the legacy ?id= attach, the control envelopes) and a raw upgrade request
// for statuses answered before any upgrade.
import { request } from 'node:http';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls pred every 20 ms until it holds; throws after ms with what.
export async function until(pred, what, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Opens ws(s)://.../v1/sprites/SPRITE + path with the bearer token. Collects text
 * frames (parsed when JSON) and binary frames (Buffers) in arrival order.
 */
export function openSocket(bp, sprite, path) {
  const url = `${bp.url.replace(/^http/, 'ws')}/v1/sprites/${sprite}${path}`;
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${bp.token}` } });
  ws.binaryType = 'arraybuffer';
  const frames = [];
  ws.addEventListener('message', (e) => {
    if (typeof e.data === 'string') {
      let value = e.data;
      try { value = JSON.parse(e.data); } catch { /* keep the text */ }
      frames.push({ text: e.data, json: typeof value === 'object' ? value : undefined });
    } else {
      frames.push({ bin: Buffer.from(e.data) });
    }
  });
  const opened = new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve);
    ws.addEventListener('error', () => reject(new Error(`WebSocket ${path} failed`)));
  });
  const closed = new Promise((resolve) => ws.addEventListener('close', (e) => resolve(e.code)));
  return {
    ws,
    frames,
    opened,
    closed,
    texts: () => frames.filter((f) => f.text !== undefined),
    // Output bytes of one stream (1 stdout, 2 stderr) of a non-TTY exec, or of a TTY (0).
    output(stream = 0) {
      const bins = frames.filter((f) => f.bin && f.bin.length > 0);
      const parts = stream ? bins.filter((f) => f.bin[0] === stream).map((f) => f.bin.subarray(1)) : bins.map((f) => f.bin);
      return Buffer.concat(parts).toString();
    },
    sessionInfo: () => frames.find((f) => f.json?.type === 'session_info')?.json,
    send(data) { ws.send(data); },
    close() { ws.close(); return closed; },
  };
}

// The status of a WebSocket upgrade request that the server refuses.
export function upgradeStatus(bp, path) {
  return new Promise((resolve, reject) => {
    const req = request(`${bp.url}${path}`, {
      headers: {
        Authorization: `Bearer ${bp.token}`,
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    req.on('response', (res) => { res.resume(); resolve(res.statusCode); });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(101); });
    req.on('error', reject);
    req.end();
  });
}
