#!/usr/bin/python3
"""tests/bench/boot_bench.py — boot-to-ready: ballpoint-init vs a busybox /init, same kernel.

Usage: boot_bench.py [--runs N] [--init PATH] [--image DIR] [--busybox-image DIR]
                     [--boot-vm PATH] [--log-dir DIR] [--json]

Boots the ballpoint image and the busybox-init baseline (rootfs/build-vm-image
--busybox-init) alternately under QEMU TCG, N times each, and prints per image the
median/min/max host wall-clock time from starting QEMU to the ready line
(`ballpoint: ready` / `busybox: ready`), the guest's own uptime at that line when it is
logged, the ratio of the medians, PID 1's RSS at ready (`rss_kb` on the ready line) and
the Ctrl-Alt-Del-to-QEMU-exit time. Asserts nothing beyond "it booted" (STYLE.md §7).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
import vmlib  # noqa: E402
from vmlib import Vm, VmError  # noqa: E402

BUILD = os.path.join(vmlib.REPO, "rootfs", "build-vm-image")
READY_TIMEOUT_S = 240


def build(outdir, extra):
    subprocess.run(["/usr/bin/python3", BUILD, outdir, "--quiet"] + extra, check=True)


def boot_busybox(image, boot_vm, log_path):
    with Vm(image, boot_vm=boot_vm, log_path=log_path, monitor=False) as vm:
        _, t = vm.wait_line("busybox: ready", READY_TIMEOUT_S)
        line = next(l for l in vm.lines if "busybox: ready" in l)
        uptime = None
        for tok in line.split():
            if tok.startswith("uptime_s="):
                uptime = float(tok.split("=", 1)[1])
        rc = vm.wait_exit(60)
        vm.check_no_panic()
        if rc != 0:
            raise VmError(f"busybox VM: QEMU exit {rc}")
        return {"ready_s": t - vm.t_start, "guest_uptime_s": uptime}


def boot_ballpoint(image, boot_vm, log_path):
    with Vm(image, boot_vm=boot_vm, log_path=log_path) as vm:
        ready_s = vm.wait_ready(READY_TIMEOUT_S)
        ready = [ev for ev in vm.find_events(lambda ev: True)
                 if vmlib.READY_MARK in json.dumps(ev)]
        ev = ready[0] if ready else {}
        rss = ev.get("rss_kb")
        if rss is None:
            rss_evs = vm.find_events(lambda e: "rss_kb" in e)
            rss = rss_evs[-1]["rss_kb"] if rss_evs else None
        uptime = None
        for key, scale in (("uptime_ms", 1e-3), ("uptime_us", 1e-6), ("uptime_s", 1.0)):
            if key in ev:
                uptime = float(ev[key]) * scale
        boot_ms = ev.get("boot_ms", ev.get("dur_ms"))
        # Idle a moment, then Ctrl-Alt-Del: the shutdown path is part of the lifecycle.
        time.sleep(2)
        t0 = time.monotonic()
        vm.monitor("sendkey ctrl-alt-delete")
        try:
            rc = vm.wait_exit(60)
            shutdown_s = time.monotonic() - t0
        except VmError:
            rc, shutdown_s = None, None
        return {"ready_s": ready_s, "guest_uptime_s": uptime, "rss_kb": rss,
                "init_boot_ms": boot_ms, "shutdown_s": shutdown_s, "qemu_rc": rc}


def summary(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals)}


def fmt(s, unit="s", digits=2):
    if s is None:
        return "n/a"
    return (f"median {s['median']:.{digits}f}{unit}  min {s['min']:.{digits}f}{unit}  "
            f"max {s['max']:.{digits}f}{unit}  (n={s['n']})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--init", help="ballpoint-init binary; (re)builds --image with it")
    p.add_argument("--image", help="ballpoint image dir (default: a temporary one, needs --init)")
    p.add_argument("--busybox-image", help="busybox-init image dir (built if needed)")
    p.add_argument("--boot-vm", default=vmlib.BOOT_VM)
    p.add_argument("--log-dir", help="keep console logs here")
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="bp-bench-")
    image = args.image or os.path.join(tmp, "ballpoint")
    bb_image = args.busybox_image or os.path.join(tmp, "busybox")
    if args.init:
        build(image, ["--init", args.init])
    elif not os.path.exists(os.path.join(image, "config.json")):
        print("boot_bench: no ballpoint image: pass --init PATH (or --image DIR)")
        return 1
    build(bb_image, ["--busybox-init"])

    results = {"busybox": [], "ballpoint": []}
    failures = []
    for i in range(args.runs):
        for kind, fn, img in (("busybox", boot_busybox, bb_image),
                              ("ballpoint", boot_ballpoint, image)):
            log = os.path.join(args.log_dir, f"{kind}-{i}.log") if args.log_dir else None
            try:
                r = fn(img, args.boot_vm, log)
            except VmError as e:
                failures.append(f"{kind} run {i}: {e}")
                print(f"{kind} run {i}: FAILED\n{e}", flush=True)
                continue
            results[kind].append(r)
            print(f"{kind} run {i}: ready {r['ready_s']:.2f}s"
                  + (f", guest uptime {r['guest_uptime_s']:.2f}s" if r.get("guest_uptime_s") else "")
                  + (f", init {r['init_boot_ms']} ms" if r.get("init_boot_ms") is not None else "")
                  + (f", rss {r['rss_kb']} kB" if r.get("rss_kb") is not None else "")
                  + (f", shutdown {r['shutdown_s']:.2f}s" if r.get("shutdown_s") else ""),
                  flush=True)

    bb = summary([r["ready_s"] for r in results["busybox"]])
    bp = summary([r["ready_s"] for r in results["ballpoint"]])
    figures = {
        "runs": args.runs,
        "busybox_ready_s": bb,
        "ballpoint_ready_s": bp,
        "busybox_guest_uptime_s": summary([r["guest_uptime_s"] for r in results["busybox"]]),
        "ballpoint_guest_uptime_s": summary([r["guest_uptime_s"] for r in results["ballpoint"]]),
        "ballpoint_rss_kb": summary([r["rss_kb"] for r in results["ballpoint"]]),
        "ballpoint_init_boot_ms": summary([r["init_boot_ms"] for r in results["ballpoint"]]),
        "ballpoint_shutdown_s": summary([r["shutdown_s"] for r in results["ballpoint"]]),
        "ratio": (bp["median"] / bb["median"]) if bb and bp else None,
    }
    print()
    print("boot to ready under QEMU TCG (host wall clock from QEMU start):")
    print(f"  busybox /init      {fmt(bb)}")
    print(f"  ballpoint-init     {fmt(bp)}")
    print(f"  ratio (medians)    {figures['ratio']:.2f}x" if figures["ratio"] else "  ratio n/a")
    print(f"  guest uptime at ready: busybox {fmt(figures['busybox_guest_uptime_s'])}")
    print(f"                         ballpoint {fmt(figures['ballpoint_guest_uptime_s'])}")
    print(f"  PID 1's own boot (boot_ms on its ready line) "
          f"{fmt(figures['ballpoint_init_boot_ms'], ' ms', 0)}")
    print(f"  PID 1 RSS at ready     {fmt(figures['ballpoint_rss_kb'], ' kB', 0)}")
    print(f"  Ctrl-Alt-Del to exit   {fmt(figures['ballpoint_shutdown_s'])}")
    if args.json:
        print(json.dumps(figures))
    if failures:
        print(f"\n{len(failures)} boot(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
