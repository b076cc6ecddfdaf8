#!/usr/bin/env python3
"""Storage benchmarks (issue: storage). Prints figures, each with its baseline measured
in the same run:

  fio on ext4 over a volume (volume_driver: file:// store, FUSE + loop + ext4) against the
  same fio on a plain file of the host's filesystem:
    - sequential write, 1 GiB, direct, 1 MiB blocks
    - sequential read, 1 GiB, direct, 1 MiB blocks (cache warm, then cold from the store)
    - 4k random write with fsync after each write
  write amplification in strict mode: object-store bytes uploaded per byte fio wrote, for
  the 4k-fsync workload
  with --s3-env FILE (tests/peers/ceph-rgw's env) or --ceph DIR (starts the peer there):
  the time to read 1 GiB with a cold cache from Ceph RGW

usage: storage_bench.py --driver build/tests/integration/volume_driver [--size-mib 1024]
                        [--fsync-seconds 15] [--s3-env FILE | --ceph DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def fio(directory, *args):
    r = subprocess.run(["fio", "--output-format=json", "--directory=" + directory, "--name=bench",
                        "--ioengine=psync", "--group_reporting", *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"fio failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]


def mib_s(job, kind):
    return job[kind]["bw_bytes"] / (1 << 20)


class Served:
    def __init__(self, driver, url, state, volume, mnt, env, *extra):
        self.proc = subprocess.Popen([driver, "serve", url, state, volume, mnt, "--create", "--size", str(16 << 30),
                                      *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            sys.exit(f"volume_driver did not start: {line}")
        self.root = f"/proc/{self.proc.pid}/root{mnt}"

    def stop(self):
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait()
        return json.loads(out.strip().splitlines()[-1])


def drop_caches():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def suite(directory, size, secs):
    """(seq write MiB/s, seq read MiB/s, 4k fsync write IOPS)."""
    w = fio(directory, "--rw=write", "--bs=1m", f"--size={size}m", "--direct=1", "--filename=seq")
    drop_caches()
    r = fio(directory, "--rw=read", "--bs=1m", f"--size={size}m", "--direct=1", "--filename=seq")
    f = fio(directory, "--rw=randwrite", "--bs=4k", "--size=64m", "--fsync=1", f"--runtime={secs}", "--time_based",
            "--filename=rand")
    return mib_s(w, "write"), mib_s(r, "read"), f["write"]["iops"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--fsync-seconds", type=int, default=15)
    ap.add_argument("--s3-env")
    ap.add_argument("--ceph")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bp-bench-", dir="/var/tmp")
    env = dict(os.environ)
    try:
        plain = os.path.join(tmp, "plain")
        os.mkdir(plain)
        base = suite(plain, a.size_mib, a.fsync_seconds)

        url = "file://" + os.path.join(tmp, "objects")
        s = Served(a.driver, url, os.path.join(tmp, "state"), "bench", os.path.join(tmp, "mnt"), env)
        vol = suite(s.root, a.size_mib, a.fsync_seconds)
        s.stop()
        # Cold: a fresh state directory, so the map and every block come from the store.
        s = Served(a.driver, url, os.path.join(tmp, "state-cold"), "bench", os.path.join(tmp, "mnt"), env)
        cold = mib_s(fio(s.root, "--rw=read", "--bs=1m", f"--size={a.size_mib}m", "--direct=1", "--filename=seq"),
                     "read")
        s.stop()

        print(f"{'workload':<34}{'plain file':>14}{'volume':>14}{'ratio':>8}")
        for name, p, v, unit in (("seq write 1 MiB direct", base[0], vol[0], "MiB/s"),
                                 ("seq read 1 MiB direct", base[1], vol[1], "MiB/s"),
                                 ("4k randwrite + fsync", base[2], vol[2], "IOPS")):
            print(f"{name + ' (' + unit + ')':<34}{p:>14.1f}{v:>14.1f}{v / p:>8.2f}")
        print(f"{'seq read, cold cache, file://':<34}{base[1]:>14.1f}{cold:>14.1f}{cold / base[1]:>8.2f}")

        # Write amplification: strict mode, 4k writes each followed by fsync.
        s = Served(a.driver, "file://" + os.path.join(tmp, "objects-wa"), os.path.join(tmp, "state-wa"), "wa",
                   os.path.join(tmp, "mnt"), env, "--durability", "strict")
        job = fio(s.root, "--rw=randwrite", "--bs=4k", "--size=64m", "--fsync=1", f"--runtime={a.fsync_seconds}",
                  "--time_based", "--filename=wa")
        st = s.stop()
        written = job["write"]["io_bytes"]
        print(f"strict 4k+fsync: fio wrote {written} B, uploaded {st['bytes_uploaded']} B "
              f"in {st['segments']} segments: {st['bytes_uploaded'] / written:.2f} B uploaded per B written "
              f"(includes ext4's own journal and metadata writes)")

        if a.ceph:
            subprocess.run([os.path.join(os.path.dirname(__file__), "..", "peers", "ceph-rgw"), "start", a.ceph],
                           check=True)
            a.s3_env = os.path.join(a.ceph, "env")
        if a.s3_env:
            s3 = {}
            with open(a.s3_env) as f:
                for line in f:
                    if "=" in line:
                        k, v = line.strip().split("=", 1)
                        s3[k] = v
            env.update({k: s3[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")})
            url = f"s3+http://{s3['S3_ENDPOINT']}/{s3['S3_BUCKET']}/bench-{os.getpid()}"
            s = Served(a.driver, url, os.path.join(tmp, "state-s3"), "bench", os.path.join(tmp, "mnt"), env)
            fio(s.root, "--rw=write", "--bs=1m", f"--size={a.size_mib}m", "--direct=1", "--filename=seq")
            s.stop()
            s = Served(a.driver, url, os.path.join(tmp, "state-s3-cold"), "bench", os.path.join(tmp, "mnt"), env)
            t0 = time.monotonic()
            with open(os.path.join(s.root, "seq"), "rb", buffering=0) as f:
                while f.read(1 << 20):
                    pass
            took = time.monotonic() - t0
            s.stop()
            print(f"read {a.size_mib} MiB, cold cache, from Ceph RGW: {took:.2f} s "
                  f"({a.size_mib / took:.1f} MiB/s; plain file {base[1]:.1f} MiB/s, ratio {a.size_mib / took / base[1]:.2f})")
        if a.ceph:
            subprocess.run([os.path.join(os.path.dirname(__file__), "..", "peers", "ceph-rgw"), "stop", a.ceph])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
