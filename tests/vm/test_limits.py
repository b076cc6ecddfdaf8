#!/usr/bin/python3
"""tests/vm/test_limits.py — the inner container's cgroup limits under the VM's kernel.

Usage:
  test_limits.py image --out DIR --driver PATH --probe PATH   # build the test image
  test_limits.py run --image DIR [--boot-vm PATH] [--log-dir DIR] [--echo]

The dev host's controllers sit on cgroup v1, so pids.max, memory.max and cpu.max can only
be seen working here. `image` builds a test image (rootfs/build-vm-image --init-script):
its /init is a busybox sh script (INIT_HEAD below) that mounts cgroup2 with pids, memory and
cpu enabled, runs tests/integration/container_driver (a stand-in for ballpoint's PID 1)
on the busybox base image and prints the driver's answers and cgroup files on the
console as `@@ ...` lines, then powers off. `run` boots it and checks:

  pids    {"pids_max":64}: a fork bomb gets EAGAIN inside; with the cgroup full an exec
          is refused with EAGAIN, not hung; pids.events counts max; once the sleeps are
          killed the container's init reaps them and exec works again
  memory  {"memory_max":32 MiB,"memory_swap_max":0}: a hog is OOM-killed in the
          container's cgroup (exit 137), memory.events oom_kill >= 1, the container's
          init and the driver survive and keep answering
  cpu     {"cpu_max":"10000 100000"}: a 2 s busy loop is throttled: cpu.stat
          nr_throttled > 0, throttled_usec > 0, and it got ~10% of a CPU (<= 20%)

and that no limit is reported `unsupported`. Exit 0 = pass, 1 = fail, as CTest expects.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from vmlib import REPO, Vm, VmError  # noqa: E402
import vmlib  # noqa: E402

RUN_TIMEOUT_S = 240          # boot + scenario + power-off; ~10 s on an idle machine
DRIVER_PATH = "/opt/ballpoint/container_driver"
ROOTFS = "/images/busybox"   # the container's root directory inside the VM
PIDS_MAX = 64
MEMORY_MAX = 32 * 1024 * 1024
CPU_MAX = "10000 100000"     # 10 ms per 100 ms period: a tenth of a CPU
CPU_LOOP_S = 2
EAGAIN = 11
HOG = "x=a; i=0; while [ $i -lt 27 ]; do x=$x$x; i=$((i+1)); done"

# Stage 1 gives / a mount of its own: pivot_root(2) fails with EINVAL while the
# caller's root is the initramfs (rootfs has no parent mount), and setns(CLONE_NEWNS)
# puts entered processes on whatever is mounted over the namespace's root, so a plain
# chroot into a bind mount would not do either. A bind mount of / moved over / (as
# switch_root does with a new root) satisfies both.
INIT_HEAD = r"""#!/bin/busybox sh
# /init of the limits test image; written by tests/vm/test_limits.py (see there).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
if [ "$1" != stage2 ]; then
  mkdir -p /newroot && mount --bind / /newroot && cd /newroot && mount --move . / &&
    exec chroot . /init stage2
  echo "@@ fatal cannot give / a mount of its own"
  poweroff -f
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=755 tmpfs /run
dmesg -n 1   # kernel messages (the OOM report) would interleave with ours; dumped below
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "@@ controllers $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "+pids +memory +cpu" > /sys/fs/cgroup/cgroup.subtree_control ||
  echo "@@ fatal cannot enable pids memory cpu in cgroup.subtree_control"

mkfifo /run/to-driver /run/from-driver
DRIVER_PATH < /run/to-driver > /run/from-driver 2> /run/driver.log &
driver=$!
trap '' PIPE   # a dead driver must not kill PID 1 (a panic): writes to it fail instead
exec 3> /run/to-driver 4< /run/from-driver

ask() {  # JSON: one command to the driver; its answer in $ans
  echo "$1" >&3
  IFS= read -r ans <&4 || { ans=; echo "@@ fatal the driver is gone (after $1)"; }
}
send() {  # TAG JSON: ask, and put the answer on the console
  ask "$2"
  echo "@@ answer $1 $ans"
}
show() {  # TAG FILE...: files as the VM (ballpoint's PID 1) sees them
  tag=$1; shift
  for f; do
    while IFS= read -r l; do echo "@@ file $tag ${f##*/} $l"; done < "$f"
  done
}
field() {  # NAME: a string or number field of $ans
  echo "$ans" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}
"""

INIT_TAIL = r"""
echo '{"op":"quit"}' >&3
exec 3>&-
wait $driver
echo "@@ driver-exit $?"
show log /run/driver.log
dmesg | grep -E 'oom-kill|Killed process|Memory cgroup' | while IFS= read -r l; do
  echo "@@ kmsg $l"
done
echo "@@ done"
poweroff -f
"""


def sh_send(tag, cmd):
    return f"send {tag} {shlex.quote(json.dumps(cmd, separators=(',', ':')))}"


def cat(*files):
    """exec of cat on files of the container's own cgroup (its cgroup namespace's root)."""
    return {"op": "exec", "argv": ["cat"] + [f"/sys/fs/cgroup/{f}" for f in files]}


def start(name, limits):
    return {"op": "start", "name": name, "rootfs": ROOTFS, "limits": limits}


def scenario():
    """The shell lines between INIT_HEAD and INIT_TAIL: one container per limit."""
    bomb = ("i=0; while [ $i -lt 200 ]; do sleep 30 </dev/null >/dev/null 2>&1 & "
            "i=$((i+1)); done; wait")
    return "\n".join([
        "# (a) pids.max",
        sh_send("pids.start", start("pids", {"pids_max": PIDS_MAX})),
        'cg=$(field cgroup); init=$(field init_pid)',
        sh_send("pids.bomb", {"op": "exec", "argv": ["sh", "-c", bomb]}),
        # The bomb's shell exits at the first failed fork and frees its own slot: fill it.
        sh_send("pids.fill", {"op": "spawn", "argv": ["sleep", "30"]}),
        'show pids.full "$cg/pids.current" "$cg/pids.max" "$cg/pids.events"',
        sh_send("pids.refused", {"op": "exec", "argv": ["true"]}),
        # Kill all but the container's init; it reaps the orphans, the driver (their
        # parent through CLONE_PARENT) reaps the spawned sleep when it next answers.
        'for p in $(cat "$cg/cgroup.procs"); do [ "$p" = "$init" ] || kill -KILL "$p"; done',
        'i=0; while [ "$(cat "$cg/pids.current")" != 1 ] && [ $i -lt 200 ]; do',
        '  ask \'{"op":"procs"}\'; sleep 0.05; i=$((i+1)); done',
        'show pids.freed "$cg/pids.current"',
        sh_send("pids.after", cat("pids.events", "pids.max")),
        sh_send("pids.probe", {"op": "exec", "argv": ["/probe", "orphans", "20"]}),
        sh_send("pids.stop", {"op": "stop", "grace_ms": 1000}),
        "",
        "# (b) memory.max",
        sh_send("mem.start", start("mem", {"memory_max": MEMORY_MAX, "memory_swap_max": 0})),
        'cg=$(field cgroup)',
        # Doubles a string to 2^27 bytes (~384 MiB at the peak): killed near 32 MiB if the
        # limit holds, done (exit 0) in a 1 GiB VM if it does not.
        sh_send("mem.hog", {"op": "exec", "argv": ["sh", "-c", HOG]}),
        'show mem.host "$cg/memory.events" "$cg/memory.max" "$cg/memory.swap.max" '
        '"$cg/memory.peak"',
        sh_send("mem.procs", {"op": "procs"}),
        sh_send("mem.after", cat("memory.events")),
        sh_send("mem.stop", {"op": "stop", "grace_ms": 1000}),
        "",
        "# (c) cpu.max",
        sh_send("cpu.start", start("cpu", {"cpu_max": CPU_MAX})),
        'cg=$(field cgroup)',
        'show cpu.before "$cg/cpu.stat"',
        sh_send("cpu.loop", {"op": "exec", "argv": ["timeout", str(CPU_LOOP_S), "sh", "-c",
                                                    "while :; do :; done"]}),
        'show cpu.host "$cg/cpu.stat" "$cg/cpu.max"',
        sh_send("cpu.after", cat("cpu.stat", "cpu.max")),
        sh_send("cpu.stop", {"op": "stop", "grace_ms": 1000}),
    ]) + "\n"


def init_script():
    return INIT_HEAD.replace("DRIVER_PATH", DRIVER_PATH) + scenario() + INIT_TAIL


# ---------------------------------------------------------------- image

def cmd_image(args):
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    root = os.path.join(out, "busybox")
    subprocess.run([os.path.join(REPO, "rootfs", "build-base-image"), "busybox", root],
                   check=True)
    shutil.copy(args.probe, os.path.join(root, "probe"))
    script = os.path.join(out, "init.sh")
    with open(script, "w") as f:
        f.write(init_script())
    cmd = [sys.executable, os.path.join(REPO, "rootfs", "build-vm-image"),
           os.path.join(out, "image"), "--init-script", script,
           "--add-bin", f"{args.driver}={DRIVER_PATH}", "--add-tree", f"{root}={ROOTFS}"]
    if args.quiet:
        cmd.append("--quiet")
    return subprocess.run(cmd).returncode


# ---------------------------------------------------------------- run

class Console:
    """The `@@` lines of one boot."""

    def __init__(self, lines):
        self.answers, self.files, self.other = {}, {}, []
        for line in lines:
            i = line.find("@@ ")
            if i < 0:
                continue
            kind, _, rest = line[i + 3:].partition(" ")
            if kind == "answer":
                tag, _, js = rest.partition(" ")
                try:
                    self.answers[tag] = json.loads(js)
                except ValueError:
                    self.answers[tag] = {"unparsed": js}
            elif kind == "file":
                tag, name, value = (rest.split(" ", 2) + ["", ""])[:3]
                self.files.setdefault(tag, {}).setdefault(name, []).append(value)
            else:
                self.other.append((kind, rest))

    def answer(self, tag):
        if tag not in self.answers:
            raise VmError(f"no answer for {tag} on the console")
        return self.answers[tag]

    def keyed(self, tag, name):
        """{key: int} of a flat-keyed cgroup file ("oom_kill 1")."""
        return keyed_text("\n".join(self.files.get(tag, {}).get(name, [])))

    def value(self, tag, name):
        lines = self.files.get(tag, {}).get(name)
        if not lines:
            raise VmError(f"no {name} in {tag} on the console")
        return lines[0].strip()

    def of(self, kind):
        return [rest for k, rest in self.other if k == kind]


def keyed_text(text):
    """{key: int} of the "key N" lines of text (other lines are skipped)."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


def check(failures, cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def short(ans):
    s = json.dumps(ans)
    return s if len(s) < 400 else s[:400] + "..."


def check_starts(c, failures):
    for tag in ("pids.start", "mem.start", "cpu.start"):
        a = c.answer(tag)
        check(failures, a.get("ok") is True and a.get("unsupported") == [],
              f"{tag}: ok, unsupported={a.get('unsupported')} ({a.get('error', '')})")


def check_pids(c, failures):
    bomb = c.answer("pids.bomb")
    err = bomb.get("stderr", "")
    check(failures, bomb.get("ok") is True and "can't fork" in err
          and "Resource temporarily unavailable" in err,
          f"pids: fork bomb got EAGAIN inside: code={bomb.get('code')} "
          f"stderr={err.strip()[:100]!r}")
    full = {n: c.value("pids.full", n) for n in ("pids.current", "pids.max")}
    ev = c.keyed("pids.full", "pids.events")
    # Within one of the limit: an exec takes a slot for its short-lived intermediate
    # process too (it is cloned into the container's cgroup), and gives it back.
    check(failures, full["pids.max"] == str(PIDS_MAX) and full["pids.current"].isdigit()
          and int(full["pids.current"]) >= PIDS_MAX - 1 and ev.get("max", 0) >= 1,
          f"pids: host side pids.current={full['pids.current']} pids.max={full['pids.max']} "
          f"pids.events max={ev.get('max')}")
    ref = c.answer("pids.refused")
    check(failures, ref.get("ok") is False and ref.get("errno") == EAGAIN,
          f"pids: exec into the full cgroup refused with EAGAIN, driver answering: "
          f"{ref.get('error')!r} errno={ref.get('errno')} in {ref.get('ms', 0):.0f} ms")
    freed = c.value("pids.freed", "pids.current")
    check(failures, freed == "1", f"pids: sleeps killed and reaped, pids.current={freed}")
    after = c.answer("pids.after")
    out = after.get("stdout", "").splitlines() or [""]
    inside = keyed_text(after.get("stdout", ""))
    check(failures, after.get("code") == 0 and inside.get("max", 0) >= 1
          and out[-1] == str(PIDS_MAX),
          f"pids: exec works again; inside: pids.events max={inside.get('max')} "
          f"pids.max={out[-1]}")
    probe = c.answer("pids.probe")
    check(failures, probe.get("code") == 0 and "orphaned 20" in probe.get("stdout", ""),
          f"pids: probe orphans 20 under the limit: {probe.get('stdout', '').strip()!r} "
          f"code={probe.get('code')}")
    stop = c.answer("pids.stop")
    check(failures, stop.get("ok") is True, f"pids: stop {short(stop)}")


def check_memory(c, failures):
    hog = c.answer("mem.hog")
    check(failures, hog.get("ok") is True and hog.get("code") == 137,
          f"memory: hog exit code={hog.get('code')} (137 = SIGKILL) after "
          f"{hog.get('us', 0) / 1e6:.2f} s")
    ev = c.keyed("mem.host", "memory.events")
    mx, swap, peak = (c.value("mem.host", n) for n in ("memory.max", "memory.swap.max",
                                                        "memory.peak"))
    check(failures, ev.get("oom_kill", 0) >= 1 and ev.get("max", 0) >= 1,
          f"memory: host side memory.events oom_kill={ev.get('oom_kill')} "
          f"oom={ev.get('oom')} max={ev.get('max')}")
    check(failures, mx == str(MEMORY_MAX) and swap == "0" and peak.isdigit()
          and int(peak) <= MEMORY_MAX,
          f"memory: memory.max={mx} memory.swap.max={swap} memory.peak={peak}")
    init = c.answer("mem.start").get("init_pid")
    procs = c.answer("mem.procs")
    check(failures, procs.get("ok") is True and init in procs.get("procs", []),
          f"memory: the container's init {init} survived: cgroup.procs={procs.get('procs')}")
    after = c.answer("mem.after")
    inside = keyed_text(after.get("stdout", ""))
    check(failures, after.get("code") == 0 and inside.get("oom_kill", 0) >= 1,
          f"memory: exec works after the OOM kill; inside: oom_kill={inside.get('oom_kill')}")
    kills = [k for k in c.of("kmsg") if "Killed process" in k]
    check(failures, bool(kills) and all("(sh)" in k for k in kills),
          f"memory: kernel killed {len(kills)} process(es), all the hog: "
          f"{kills[0][:160] if kills else ''}")
    stop = c.answer("mem.stop")
    check(failures, stop.get("ok") is True, f"memory: stop {short(stop)}")


def check_cpu(c, failures):
    loop = c.answer("cpu.loop")
    wall_us = loop.get("us", 0)
    check(failures, loop.get("ok") is True and wall_us >= CPU_LOOP_S * 1e6 * 0.9,
          f"cpu: busy loop ran {wall_us / 1e6:.2f} s (timeout {CPU_LOOP_S} s), "
          f"code={loop.get('code')}")
    before, after = c.keyed("cpu.before", "cpu.stat"), c.keyed("cpu.host", "cpu.stat")
    used = after.get("usage_usec", 0) - before.get("usage_usec", 0)
    share = used / wall_us if wall_us else 1
    check(failures, after.get("nr_throttled", 0) > 0 and after.get("throttled_usec", 0) > 0,
          f"cpu: host side nr_periods={after.get('nr_periods')} "
          f"nr_throttled={after.get('nr_throttled')} throttled_usec={after.get('throttled_usec')}")
    # 10% quota; a period's quota can overrun a little, and the loop's start and end
    # fall into partial periods: 0.2 still tells a throttled loop from a free one (~1.0).
    check(failures, share <= 0.2, f"cpu: the loop used {used / 1e6:.3f} s of CPU in "
          f"{wall_us / 1e6:.2f} s: {share:.1%} of a CPU (quota {CPU_MAX})")
    mx = c.value("cpu.host", "cpu.max")
    inside = c.answer("cpu.after")
    stat_in = keyed_text(inside.get("stdout", ""))
    check(failures, mx == CPU_MAX and inside.get("code") == 0 and CPU_MAX in inside.get("stdout", "")
          and stat_in.get("nr_throttled", 0) > 0,
          f"cpu: cpu.max={mx!r}; inside: nr_throttled={stat_in.get('nr_throttled')}")
    stop = c.answer("cpu.stop")
    check(failures, stop.get("ok") is True, f"cpu: stop {short(stop)}")


def cmd_run(args):
    log_path = os.path.join(args.log_dir, "limits.log") if args.log_dir else None
    print(f"=== vm limits (console log: {log_path or 'not kept'})", flush=True)
    vm = Vm(args.image, boot_vm=args.boot_vm, log_path=log_path, monitor=False, echo=args.echo)
    t0 = time.monotonic()
    try:
        vm.start()
        rc = vm.wait_exit(RUN_TIMEOUT_S)
        secs = time.monotonic() - t0
        vm.check_no_panic()
        text = vm.text()
        c = Console(vm.lines)
        print(f"QEMU exited {rc} after {secs:.1f} s", flush=True)
        for f in c.of("fatal"):
            raise VmError(f"fatal: {f}\n--- console tail ---\n{vm.tail()}")
        if not c.of("done"):
            raise VmError(f"the scenario did not finish\n--- console tail ---\n{vm.tail()}")
        if rc != 0 or vmlib.POWER_DOWN_MARK not in text:
            raise VmError(f"no clean power-off (exit {rc})\n--- console tail ---\n{vm.tail()}")
        print(f"controllers: {' '.join(c.of('controllers'))}")
        failures = []
        check(failures, {"pids", "memory", "cpu"} <= set(" ".join(c.of("controllers")).split()),
              "cgroup2 offers pids, memory and cpu")
        check(failures, c.of("driver-exit") == ["0"],
              f"the driver exited {' '.join(c.of('driver-exit')) or '?'} after quit")
        for fn in (check_starts, check_pids, check_memory, check_cpu):
            try:
                fn(c, failures)
            except (VmError, KeyError, TypeError, ValueError) as e:
                check(failures, False, f"{fn.__name__}: {e}")
        warn = [l for l in c.of("log") if '"level":"warn"' in l or '"level":"error"' in l]
        check(failures, not warn, f"driver log: {len(warn)} warning/error line(s) "
                                  f"{warn[:3] if warn else ''}")
        if failures:
            print("--- answers ---")
            for tag, a in c.answers.items():
                print(f"{tag}: {short(a)}")
            raise VmError(f"{len(failures)} check(s) failed")
    except VmError as e:
        print(f"FAIL vm limits: {e}", flush=True)
        return 1
    finally:
        vm.kill()
    print(f"PASS vm limits ({time.monotonic() - t0:.1f} s)", flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("image", help="build the test image (busybox base image, VM image)")
    pi.add_argument("--out", required=True, help="directory for busybox/, init.sh, image/")
    pi.add_argument("--driver", required=True, help="tests/integration/container_driver")
    pi.add_argument("--probe", required=True, help="tests/probe/probe (static)")
    pi.add_argument("--quiet", action="store_true")
    pr = sub.add_parser("run", help="boot the test image and check the console")
    pr.add_argument("--image", required=True, help="OUT/image of the image step")
    pr.add_argument("--boot-vm", default=vmlib.BOOT_VM)
    pr.add_argument("--log-dir", help="keep the console log here (limits.log)")
    pr.add_argument("--echo", action="store_true", help="copy the console to stdout")
    args = p.parse_args()
    return cmd_image(args) if args.cmd == "image" else cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
