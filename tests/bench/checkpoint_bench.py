#!/usr/bin/env python3
"""Checkpoint benchmarks (issue 7), through the host-mode runtime's API. Prints p50s,
each next to a baseline measured in the same run:

  create      POST /v1/sprites (a clone of the base volume's map, mount, container start)
              vs POST .../restart (the container alone, no disk work)
  checkpoint  POST .../checkpoint to its "complete" line, with SMALL MiB written and again
              with LARGE MiB written (the ratio shows it is O(1) in what the disk holds),
              vs an HTTP exec of `sync` (a round trip that flushes the disk)
  restore     POST .../checkpoints/ID/restore to "complete" (the container runs again),
              vs POST .../restart
  with --s3-env FILE (tests/peers/ceph-rgw's env): the time for a runtime on an empty
  state directory and the same Ceph RGW store to bring a sprite back (ready, sprite
  running, an exec answering), and to read its 256 MiB file, vs the same runtime
  restarted on its warm state directory

The disk is filled with dd from /dev/zero: what a checkpoint costs depends on the map,
not on the bytes, and zeros keep the run short.

usage: checkpoint_bench.py --init build/init/ballpoint-init --base build/base-busybox
                           [--small-mib 1024] [--large-mib 10240] [--runs 20] [--s3-env FILE]
                           [--set KEY=VALUE ...]
"""
import argparse
import os
import random
import statistics
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))


def p50(xs):
    return statistics.median(xs) * 1000


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--small-mib", type=int, default=1024)
    ap.add_argument("--large-mib", type=int, default=10240)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--s3-env")
    ap.add_argument("--gap-ms", type=int, default=0,
                    help="pause before each checkpoint (lets the previous one's view mount in the background)")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE for the runtime (e.g. storage.checkpoint_mounts=0)")
    a = ap.parse_args()
    os.environ["BALLPOINT_INIT"] = os.path.abspath(a.init)
    import harness
    from test_host_storage import exec_out

    def ok(rt, method, path, body=None, want=200):
        status, resp, _ = rt.request(method, path, body=body)
        if status != want:
            sys.exit(f"{method} {path}: {status} {resp}\n{rt.console()[-2000:]}")
        return resp

    def sh(rt, sprite, script, timeout_s=3600):
        out, code = exec_out(rt, sprite, script, timeout_s=timeout_s)
        if code != 0:
            sys.exit(f"{script}: exit {code}: {out}")
        return out

    def stream_ok(resp):
        text = resp if isinstance(resp, str) else str(resp)
        if '"type":"complete"' not in text.replace(" ", ""):
            sys.exit(f"the stream did not complete: {text[-500:]}")

    extra = ["--set", f"base_image={os.path.abspath(a.base)}", "--set",
             f"storage.volume_size={max(16 << 30, (a.large_mib + 2048) << 20)}"]
    for kv in a.set:
        extra += ["--set", kv]
    rt = harness.Runtime(extra=extra)
    try:
        rt.wait_ready(timeout_s=120)
        ok(rt, "POST", "/v1/sprites", b'{"name":"bench"}', 201)
        creates, restarts = [], []
        for i in range(a.runs):
            creates.append(timed(lambda: ok(rt, "POST", "/v1/sprites", f'{{"name":"c{i}"}}'.encode(), 201)))
            ok(rt, "DELETE", f"/v1/sprites/c{i}", want=204)
            restarts.append(timed(lambda: ok(rt, "POST", "/v1/sprites/bench/restart")))
        print(f"create p50 {p50(creates):.1f} ms vs container restart {p50(restarts):.1f} ms "
              f"({p50(creates) / p50(restarts):.2f}x)", flush=True)

        ids = []

        def checkpoints(label):
            cps, syncs = [], []
            for i in range(a.runs):
                sh(rt, "bench", f"echo {label}-{i} > /marker && sync")
                syncs.append(timed(lambda: sh(rt, "bench", "sync")))
                time.sleep(a.gap_ms / 1000)
                t0 = time.monotonic()
                resp = ok(rt, "POST", "/v1/sprites/bench/checkpoint", b"{}")
                cps.append(time.monotonic() - t0)
                stream_ok(resp)
                ids.append(str(resp).split("Checkpoint ")[-1].split(" created")[0])
            return cps, syncs

        def fill(mib, tag):
            # In pieces: an HTTP exec that prints nothing for long trips the client's timeout.
            for k in range(0, mib, 256):
                sh(rt, "bench", f"dd if=/dev/zero of=/fill-{tag}-{k} bs=1M count={min(256, mib - k)} 2>/dev/null && sync")

        t = timed(lambda: fill(a.small_mib, "a"))
        print(f"wrote {a.small_mib} MiB in {t:.1f} s", flush=True)
        small, sync_small = checkpoints("small")
        print(f"checkpoint with {a.small_mib} MiB written: p50 {p50(small):.1f} ms vs exec sync "
              f"{p50(sync_small):.1f} ms ({p50(small) / p50(sync_small):.2f}x)", flush=True)
        more = a.large_mib - a.small_mib
        t = timed(lambda: fill(more, "b"))
        print(f"wrote {more} MiB more in {t:.1f} s", flush=True)
        large, sync_large = checkpoints("large")
        print(f"checkpoint with {a.large_mib} MiB written: p50 {p50(large):.1f} ms vs exec sync "
              f"{p50(sync_large):.1f} ms ({p50(large) / p50(sync_large):.2f}x); "
              f"{a.large_mib} MiB / {a.small_mib} MiB: {p50(large) / p50(small):.2f}x", flush=True)

        restores, restarts = [], []
        rng = random.Random(1)
        for _ in range(max(3, a.runs // 2)):
            cid = rng.choice(ids)
            t0 = time.monotonic()
            stream_ok(ok(rt, "POST", f"/v1/sprites/bench/checkpoints/{cid}/restore"))
            sh(rt, "bench", "true")
            restores.append(time.monotonic() - t0)
            restarts.append(timed(lambda: (ok(rt, "POST", "/v1/sprites/bench/restart"), sh(rt, "bench", "true"))))
        print(f"restore (to the container answering again) p50 {p50(restores):.1f} ms vs container restart "
              f"{p50(restarts):.1f} ms ({p50(restores) / p50(restarts):.2f}x)", flush=True)
        rt.stop()
    finally:
        rt.kill()

    if not a.s3_env:
        return
    from test_host_storage import use_ceph_keys, s3_env

    class Keys:  # use_ceph_keys registers a cleanup on a test; here nothing restores them
        def addCleanup(self, fn):
            pass

    os.environ["BP_S3_ENV"] = os.path.abspath(a.s3_env)
    url = use_ceph_keys(Keys(), s3_env(), "bench")
    store = extra + ["--object-store", url]
    rt = harness.Runtime(extra=store)
    try:
        rt.wait_ready(timeout_s=120)
        ok(rt, "POST", "/v1/sprites", b'{"name":"far"}', 201)
        sh(rt, "far", "dd if=/dev/urandom of=/data bs=1M count=256 2>/dev/null && md5sum /data > /data.md5 && sync")
        ok(rt, "POST", "/v1/sprites/far/checkpoint", b"{}")
        state = rt.state
        rt.stop()
    finally:
        rt.kill()

    def bring_back(state_dir):
        t0 = time.monotonic()
        r = harness.Runtime(extra=store, state=state_dir)
        try:
            r.wait_ready(timeout_s=300)
            while ok(r, "GET", "/v1/sprites/far")["status"] != "running":
                time.sleep(0.01)
            sh(r, "far", "true")
            up = time.monotonic() - t0
            sh(r, "far", "md5sum -c /data.md5 >/dev/null")
            read = time.monotonic() - t0 - up
            r.stop()
            return up, read
        finally:
            r.kill()

    warm = bring_back(state)
    cold = bring_back(None)
    print(f"sprite back on an empty machine from Ceph RGW: running in {cold[0]:.2f} s, its 256 MiB read in "
          f"{cold[1]:.2f} s more; on its warm state dir: {warm[0]:.2f} s and {warm[1]:.2f} s "
          f"({cold[0] / warm[0]:.2f}x to running)", flush=True)


if __name__ == "__main__":
    main()
