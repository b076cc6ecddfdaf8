#!/usr/bin/env python3
"""Container start, bounce and exec-into latency, each next to a baseline measured in the same run.

  start      Container::start (cgroup, clone3 into six namespaces, pivot_root, /dev, masks)
             vs `unshare --pid --mount --uts --ipc --net --cgroup --fork --mount-proc true`
  bounce     Container::bounce with nothing running inside (SIGTERM path)
  exec       enter + run + reap `true` inside the container
             vs `nsenter --target INIT --mount --uts --ipc --net --pid --cgroup true`
             and plain fork+exec of `true` on the host
Timings are printed, never asserted. Needs root; uses tests/integration/container_driver.
  python3 tests/bench/container_bench.py --driver build/tests/integration/container_driver --execs 1000
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Driver:
    def __init__(self, path):
        self.p = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)

    def call(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        r = json.loads(self.p.stdout.readline())
        if not r.get("ok"):
            sys.exit(f"container_bench: {cmd['op']} failed: {r}")
        return r

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def row(name, xs_ms, base_ms=None):
    p50, p99 = pct(xs_ms, 50), pct(xs_ms, 99)
    ratio = f"{p50 / pct(base_ms, 50):6.2f}x" if base_ms else "      "
    print(f"  {name:<44} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms  n={len(xs_ms):<5} {ratio}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--execs", type=int, default=1000)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("container_bench: needs root; skipped")
        return 0
    tmp = tempfile.mkdtemp(prefix="bp-bench-")
    image = os.path.join(tmp, "root")
    subprocess.run([os.path.join(ROOT, "rootfs", "build-base-image"), "busybox", image], check=True)
    d = Driver(a.driver)
    try:
        starts, stops, bounces = [], [], []
        for _ in range(a.starts):
            starts.append(d.call(op="start", name="bench", rootfs=image)["ms"])
            stops.append(d.call(op="stop", grace_ms=2000)["ms"])
        init = d.call(op="start", name="bench", rootfs=image)["init_pid"]
        for _ in range(a.starts):
            bounces.append(d.call(op="bounce", grace_ms=2000)["ms"])
        init = d.call(op="procs")["procs"][0]
        unshare = [u / 1000 for u in d.call(op="time_host", n=a.starts, argv=[
            "unshare", "--pid", "--mount", "--uts", "--ipc", "--net", "--cgroup", "--fork", "--mount-proc", "true"])["us"]]
        execs = [d.call(op="exec", argv=["true"])["us"] / 1000 for _ in range(a.execs)]
        nsenter = [u / 1000 for u in d.call(op="time_host", n=a.execs, argv=[
            "nsenter", "--target", str(init), "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "true"])["us"]]
        fork_exec = [u / 1000 for u in d.call(op="time_host", n=a.execs, argv=["true"])["us"]]
        d.call(op="stop", grace_ms=2000)
    finally:
        d.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("container benchmark (ratio = p50 / p50 of the baseline above it)")
    row("baseline: unshare (6 namespaces) + true", unshare)
    row("container start", starts, unshare)
    row("container stop (nothing running)", stops)
    row("container bounce (stop + start)", bounces, unshare)
    row("baseline: fork+exec true", fork_exec)
    row("baseline: nsenter (6 namespaces) true", nsenter)
    row("exec-into true (enter + run + reap)", execs, nsenter)
    print(f"  exec-into vs fork+exec: {pct(execs, 50) / pct(fork_exec, 50):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
