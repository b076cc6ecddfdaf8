#!/usr/bin/python3
"""tests/vm/test_durable.py — a sprite's disk outlives its machine (issue 7).

Usage:
  test_durable.py --image DIR --cli PATH --s3-env FILE [--boot-vm PATH] [--log-dir DIR]

Boots the sprite image (tests/vm/test_sprite.py image) with its disk in Ceph RGW on the
host (tests/peers/ceph-rgw, reached from the guest at 10.0.2.2) in strict mode. A writer
in the sprite writes files, each followed by sync and an "ack NAME MD5" line. After
some acks, QEMU is killed (a hard power-off mid-write). A fresh VM with an empty cache
disk then boots on the same store: it waits for the dead machine's lease to run out
(lease_ttl_ms=5000), restores the map from the replica, and every acknowledged file
reads back with its checksum. Exit 0 = pass.
"""

import argparse
import os
import re
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import vmlib  # noqa: E402
from test_sprite import BASE_IMAGE, Cli  # noqa: E402
from vmlib import Vm, VmError  # noqa: E402

READY_TIMEOUT_S = 240
WRITER = ("mkdir -p /w; i=0; while :; do dd if=/dev/urandom of=/w/f$i bs=4k count=16 2>/dev/null; sync; "
          "echo ack f$i $(md5sum < /w/f$i | cut -d' ' -f1); i=$((i+1)); done")


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                env[k] = v.strip("'\"")
    return env


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", required=True)
    p.add_argument("--cli", required=True)
    p.add_argument("--s3-env", required=True)
    p.add_argument("--boot-vm", default=vmlib.BOOT_VM)
    p.add_argument("--log-dir")
    p.add_argument("--acks", type=int, default=6)
    args = p.parse_args()
    if not os.path.exists(args.s3_env):
        print(f"SKIP vm durable: no Ceph RGW ({args.s3_env} missing)")
        return 0
    s3 = read_env(args.s3_env)
    port = s3["S3_ENDPOINT"].rsplit(":", 1)[1]
    store = f"s3+http://10.0.2.2:{port}/{s3['S3_BUCKET']}/vm-{os.urandom(4).hex()}"
    cmdline = (f"ballpoint.base_image={BASE_IMAGE} ballpoint.storage.object_store={store} "
               f"ballpoint.storage.s3_access_key={s3['AWS_ACCESS_KEY_ID']} "
               f"ballpoint.storage.s3_secret_key={s3['AWS_SECRET_ACCESS_KEY']} "
               f"ballpoint.storage.durability=strict ballpoint.storage.lease_ttl_ms=5000")
    token = vmlib.read_token(args.image)
    log = lambda name: os.path.join(args.log_dir, name) if args.log_dir else None
    failures = []
    acked = {}
    t0 = time.monotonic()

    first = Vm(args.image, boot_vm=args.boot_vm, cmdline_extra=cmdline, log_path=log("durable-1.log"))
    try:
        first.start()
        first.wait_ready(READY_TIMEOUT_S)
        cli = Cli(args.cli, first, token)
        writer = cli.popen("sh", "-c", WRITER)
        got = threading.Event()

        def pump():
            for line in writer.stdout:
                m = re.match(r"ack (\S+) ([0-9a-f]{32})$", line.strip())
                if m:
                    acked[m.group(1)] = m.group(2)
                    if len(acked) >= args.acks:
                        got.set()

        threading.Thread(target=pump, daemon=True).start()
        if not got.wait(180):
            raise VmError(f"only {len(acked)} acks in 180 s\n--- console tail ---\n{first.tail()}")
        time.sleep(0.3)  # mid-write: the next file is being written
    except VmError as e:
        failures.append(str(e))
    finally:
        first.kill()  # QEMU killed: no shutdown, no flush, no lease release
        try:
            writer.kill()
        except Exception:
            pass
    print(f"first VM killed after {len(acked)} acknowledged files", flush=True)

    second = Vm(args.image, boot_vm=args.boot_vm, cmdline_extra=cmdline, log_path=log("durable-2.log"))
    try:
        if not failures:
            second.start()  # a new, empty cache disk
            second.wait_ready(READY_TIMEOUT_S)
            second.wait_line("container started", READY_TIMEOUT_S, "the sprite back on the second VM")
            cli = Cli(args.cli, second, token)
            rc, out, err, _ = cli.exec("sh", "-c", "cd /w && md5sum f*", timeout=120)
            have = {}
            for line in out.splitlines():
                digest, name = line.split()
                have[name] = digest
            lost = [n for n, d in acked.items() if have.get(n) != d]
            if rc != 0 or lost:
                failures.append(f"acknowledged files lost or changed: {lost} (rc {rc}, {err.strip()})")
            restored = second.find_events(lambda ev: ev.get("msg") == "map restored from the object store")
            if not restored:
                failures.append("the second VM did not restore the map from the replica")
            waited = second.find_events(lambda ev: ev.get("msg") == "step failed; retrying" and "in use by" in ev.get("err", ""))
            print(f"second VM: {len(have)} files, lease waits {len(waited)}", flush=True)
    except VmError as e:
        failures.append(str(e))
    finally:
        second.kill()
    total = time.monotonic() - t0
    if failures:
        for f in failures:
            print(f"FAIL vm durable: {f}", flush=True)
        return 1
    print(f"PASS vm durable ({len(acked)} acknowledged files survived a hard power-off; {total:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
