"""The storage stack end to end (object store, volume, FUSE + loop, ext4), driven by
volume_driver outside the runtime: a filesystem stress with verification, a mixed 2 GiB
workload read back from the object store alone, a lost cache, strict mode surviving a
kill -9 on a fresh state directory. Runs on file:// and, when BP_S3_ENV names a Ceph RGW
env file (tests/peers/ceph-rgw), on S3."""
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness

DRIVER = os.environ.get("BALLPOINT_VOLUME_DRIVER", "")
SIZE = 8 << 30  # the ext4 on the volume; smaller than the default to keep mkfs quick


def s3_env():
    path = os.environ.get("BP_S3_ENV", "")
    if not path:
        return None
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v
    return env


class Served:
    """volume_driver serve: the volume's ext4 mounted at self.mnt until stop() or kill()."""

    def __init__(self, t, state, *extra, create=True):
        self.mnt = os.path.join(t.tmp, "mnt")
        args = [DRIVER, "serve", t.url, state, t.volume, self.mnt, "--size", str(SIZE), *extra]
        if create:
            args.append("--create")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=t.env, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.proc.kill()
            raise AssertionError(f"volume_driver did not come up: {line} {self.proc.stderr.read()}")
        # The mount lives in the driver's mount namespace: reach it through its root.
        self.root = f"/proc/{self.proc.pid}/root{self.mnt}"

    def path(self, name):
        return os.path.join(self.root, name)

    def stop(self):
        out, err = self.proc.communicate(timeout=300)
        code = self.proc.returncode
        if code != 0:
            raise AssertionError(f"volume_driver exited {code}: {out} {err}")
        return json.loads(out.strip().splitlines()[-1])

    def kill(self):
        self.proc.kill()
        self.proc.communicate()


class Stack:
    """Common set-up: a temporary dir, the store URL and a fresh volume name."""

    def setUp(self):
        harness.require_root(self)
        if not DRIVER:
            self.skipTest("BALLPOINT_VOLUME_DRIVER not set")
        self.tmp = tempfile.mkdtemp(prefix="bp-storage-")
        self.env = dict(os.environ)
        self.volume = "test-" + os.urandom(4).hex()
        s3 = self.s3()
        if s3:
            self.env.update({k: s3[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")})
            self.url = f"s3+http://{s3['S3_ENDPOINT']}/{s3['S3_BUCKET']}/storage-test"
        else:
            self.url = "file://" + os.path.join(self.tmp, "objects")

    def s3(self):
        return None

    def tearDown(self):
        shutil.rmtree(getattr(self, "tmp", "/nonexistent"), ignore_errors=True)

    def state(self, name="state"):
        return os.path.join(self.tmp, name)

    def fsck(self, state):
        r = subprocess.run([DRIVER, "fsck", self.url, state, self.volume], env=self.env, capture_output=True,
                           text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def fio(self, mnt_root, *args):
        r = subprocess.run(["fio", "--output-format=json", "--directory=" + mnt_root, *args],
                           capture_output=True, text=True, timeout=1800)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        return r.stdout

    def test_fsx_random_ops_verified(self):
        """fsx-style: random writes, truncates, punched holes and reads on one file,
        checked against a model after every read, across remounts."""
        rng = random.Random(1234)
        model = bytearray()
        served = Served(self, self.state())
        try:
            for round_ in range(3):
                path = served.path("fsx.dat")
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    for op in range(1500):
                        kind = rng.random()
                        if kind < 0.45:  # write, sometimes past the end
                            off = rng.randrange(0, len(model) + 200000)
                            data = os.urandom(rng.randrange(1, 100000))
                            os.pwrite(fd, data, off)
                            if off > len(model):
                                model.extend(b"\0" * (off - len(model)))
                            model[off:off + len(data)] = data
                        elif kind < 0.55:  # truncate, up or down
                            n = rng.randrange(0, 3 << 20)
                            os.ftruncate(fd, n)
                            model = model[:n] + bytearray(max(0, n - len(model)))
                        elif kind < 0.65 and model:  # punch a hole
                            off = rng.randrange(0, len(model))
                            n = rng.randrange(1, 200000)
                            subprocess.run(["fallocate", "-p", "-o", str(off), "-l", str(n), path], check=True)
                            end = min(len(model), off + n)
                            model[off:end] = bytes(end - off)
                        elif kind < 0.7:
                            os.fsync(fd)
                        else:  # read and verify
                            if not model:
                                continue
                            off = rng.randrange(0, len(model))
                            n = rng.randrange(1, 300000)
                            got = os.pread(fd, n, off)
                            self.assertEqual(got, bytes(model[off:off + n]), f"round {round_} op {op}")
                    self.assertEqual(os.fstat(fd).st_size, len(model))
                finally:
                    os.close(fd)
                # Remount: the data comes back through the volume, not the page cache.
                served.stop()
                served = Served(self, self.state(), create=False)
                with open(served.path("fsx.dat"), "rb") as f:
                    self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(model).hexdigest())
        finally:
            served.stop()
        self.fsck(self.state())

    def test_mixed_2gib_from_the_object_store_alone(self):
        """2 GiB of mixed random reads and writes, verified; then read back and verified
        again with a fresh state directory (the map and data from the object store only)."""
        job = ["--name=mix", "--size=512M", "--numjobs=4", "--rw=randrw", "--bsrange=4k-1m", "--direct=1",
               "--ioengine=psync", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1", "--group_reporting",
               "--fsync=64", "--randseed=42", "--verify_state_save=0"]
        served = Served(self, self.state())
        try:
            self.fio(served.root, *job)
        finally:
            stats = served.stop()
        self.assertEqual(stats["journal_bytes"], 0, stats)
        self.fsck(self.state())
        served = Served(self, self.state("fresh"), create=False)
        try:
            self.fio(served.root, *job, "--verify_only")
        finally:
            served.stop()

    def test_cache_wiped(self):
        served = Served(self, self.state())
        data = os.urandom(20 << 20)
        try:
            with open(served.path("blob"), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        finally:
            served.stop()
        shutil.rmtree(os.path.join(self.state(), "cache"))
        served = Served(self, self.state(), create=False)
        try:
            with open(served.path("blob"), "rb") as f:
                self.assertEqual(f.read(), data)
        finally:
            served.stop()

    def test_strict_kill9_fresh_state(self):
        """strict: whatever fsync acknowledged is in the object store, so a fresh state
        directory (a new machine) finds it after the writer was killed mid-write."""
        served = Served(self, self.state(), "--durability", "strict", "--sync-ms", "3600000", "--lease-ttl-ms", "2000")
        acked = {}
        try:
            deadline = time.monotonic() + 6
            i = 0
            while time.monotonic() < deadline:
                data = os.urandom(random.randrange(1, 300000))
                with open(served.path(f"f{i}"), "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                dfd = os.open(served.root, os.O_RDONLY)
                os.fsync(dfd)  # the directory entry too
                os.close(dfd)
                acked[f"f{i}"] = hashlib.sha256(data).hexdigest()
                i += 1
        finally:
            served.kill()  # mid-write: no unmount, no final upload
        self.assertGreater(len(acked), 5)
        # Another machine: the dead writer's lease holds it off until it expires.
        r = subprocess.run([DRIVER, "fsck", self.url, self.state("fresh"), self.volume], env=self.env,
                           capture_output=True, text=True, timeout=600)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("in use by", r.stderr)
        time.sleep(2)
        self.fsck(self.state("fresh"))
        served = Served(self, self.state("fresh"), create=False)
        try:
            for name, digest in acked.items():
                with open(served.path(name), "rb") as f:
                    self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest, name)
        finally:
            served.stop()


class StackOnFileStore(Stack, unittest.TestCase):
    pass


class StackOnCephRgw(Stack, unittest.TestCase):
    def s3(self):
        env = s3_env()
        if env is None:
            self.skipTest("BP_S3_ENV not set (no Ceph RGW)")
        return env


if __name__ == "__main__":
    harness.main()
