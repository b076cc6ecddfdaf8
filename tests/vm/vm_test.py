#!/usr/bin/python3
"""tests/vm/vm_test.py — ballpoint-init as PID 1 of a QEMU (TCG) VM, checked from outside.

Usage: vm_test.py CASE --image DIR [--boot-vm PATH] [--log-dir DIR] [--echo]
Cases: boot_api, cgroups, modules, ctrl_alt_del, bad_config (or "all").
Exit 0 = pass, 1 = fail (the console tail is printed), as CTest expects.
The image comes from rootfs/build-vm-image (the vm_image CTest fixture).
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import vmlib  # noqa: E402
from vmlib import Vm, VmError  # noqa: E402

# TCG is slow and CI machines are slower: generous bounds, never fixed sleeps.
READY_TIMEOUT_S = 180
SHUTDOWN_TIMEOUT_S = 60
BAD_CONFIG_TIMEOUT_S = 180
REQUIRED_CONTROLLERS = {"memory", "pids", "cpu", "io"}


def norm(name):
    return name.replace("-", "_")


def expect(cond, msg, vm=None):
    if not cond:
        raise VmError(msg + (f"\n--- console tail ---\n{vm.tail()}" if vm else ""))


def case_boot_api(vm, image):
    """Boot reaches `ballpoint: ready`; the API answers through hostfwd, with auth."""
    secs = vm.wait_ready(READY_TIMEOUT_S)
    print(f"ready after {secs:.1f}s (host wall clock from QEMU start)")
    token = vmlib.read_token(image)
    status, body = vm.http("/v1/sprites", token=token)
    expect(status == 200, f"GET /v1/sprites with the token: {status} {body!r}", vm)
    expect(isinstance(body, dict) and "sprites" in body,
           f"GET /v1/sprites: no \"sprites\" key in {body!r}", vm)
    print(f"GET /v1/sprites -> 200 {body}")
    status, body = vm.http("/v1/sprites", token="not-the-token-" + token[:8])
    expect(status == 401, f"GET /v1/sprites with a wrong token: {status} {body!r}", vm)
    expect(isinstance(body, dict) and "error" in body,
           f"401 body is not JSON with \"error\": {body!r}", vm)
    status, body = vm.http("/v1/sprites", token=None)
    expect(status == 401, f"GET /v1/sprites without a token: {status} {body!r}", vm)
    print("wrong and missing token -> 401")
    vm.check_no_panic()


def case_cgroups(vm, image):
    """PID 1's cgroup boot step reports memory, pids, cpu and io enabled."""
    vm.wait_ready(READY_TIMEOUT_S)
    evs = vm.find_events(lambda ev: "controllers" in ev)
    expect(evs, "no log line with a \"controllers\" field", vm)
    # Prefer the cgroup step's own line if several carry the field.
    cg = [ev for ev in evs if "cgroup" in str(ev.get("step", ""))] or evs
    ev = cg[0]
    got = set(str(ev["controllers"]).split())
    print(f"cgroup step: {ev}")
    missing = REQUIRED_CONTROLLERS - got
    expect(not missing, f"controllers {sorted(got)} lack {sorted(missing)}", vm)
    expect(ev.get("ok", True) is True, f"cgroup step not ok: {ev}", vm)


def case_modules(vm, image):
    """Every module named in config.json is reported loaded (ok:true)."""
    vm.wait_ready(READY_TIMEOUT_S)
    wanted = [norm(m) for m in vmlib.read_config(image).get("modules", [])]
    expect(wanted, "config.json names no modules: nothing to check")
    failures = []
    for name in wanted:
        evs = vm.find_events(lambda ev: norm(str(ev.get("module", ""))) == name)
        if not evs:
            failures.append(f"{name}: no log line with \"module\":\"{name}\"")
        elif not any(ev.get("ok") is True for ev in evs):
            failures.append(f"{name}: {evs[-1]}")
        else:
            print(f"module {name}: ok")
    expect(not failures, "modules not loaded:\n  " + "\n  ".join(failures), vm)


def case_ctrl_alt_del(vm, image):
    """Ctrl-Alt-Del (as Firecracker sends it) makes PID 1 shut down and power off."""
    vm.wait_ready(READY_TIMEOUT_S)
    n_before = len(vm.lines)
    t0 = time.monotonic()
    vm.monitor("sendkey ctrl-alt-delete")
    rc = vm.wait_exit(SHUTDOWN_TIMEOUT_S)
    secs = time.monotonic() - t0
    print(f"QEMU exited {rc} {secs:.1f}s after Ctrl-Alt-Del")
    after = "\n".join(vm.lines[n_before:])
    expect(rc == 0, f"QEMU exit status {rc}", vm)
    vm.check_no_panic()
    expect(vmlib.RESTART_MARK not in after,
           "the kernel restarted instead of signalling PID 1 "
           "(PID 1 must call reboot(RB_DISABLE_CAD) so Ctrl-Alt-Del becomes SIGINT)", vm)
    expect(vmlib.POWER_DOWN_MARK in after, f"no {vmlib.POWER_DOWN_MARK!r} line", vm)
    shutdown = [ev for i, ev in vm.events
                if i >= n_before and ("shutdown" in str(ev.get("comp", "")) or
                                      "shutdown" in str(ev.get("msg", "")).lower())]
    expect(shutdown, "no shutdown log lines from PID 1 after Ctrl-Alt-Del", vm)
    for ev in shutdown:
        print(f"shutdown: {ev}")


def case_bad_config(vm, image):
    """A bad value on the kernel command line: clear error naming the key, clean power-off."""
    rc = vm.wait_exit(BAD_CONFIG_TIMEOUT_S)
    print(f"QEMU exited {rc}")
    expect(rc == 0, f"QEMU exit status {rc}", vm)
    vm.check_no_panic()
    text = vm.text()
    expect(vmlib.RESTART_MARK not in text, "the VM reset instead of powering off", vm)
    expect(vmlib.POWER_DOWN_MARK in text, f"no {vmlib.POWER_DOWN_MARK!r} line", vm)
    errs = vm.find_events(lambda ev: str(ev.get("level")) in ("error", "fatal")
                          and "api.listen" in str(ev))
    expect(errs, "no error/fatal log line naming api.listen", vm)
    print(f"error line: {errs[0]}")


CASES = {
    "boot_api": (case_boot_api, ""),
    "cgroups": (case_cgroups, ""),
    "modules": (case_modules, ""),
    "ctrl_alt_del": (case_ctrl_alt_del, ""),
    "bad_config": (case_bad_config, "ballpoint.api.listen=not-an-address"),
}


def run_case(name, args):
    fn, cmdline = CASES[name]
    log_path = os.path.join(args.log_dir, f"{name}.log") if args.log_dir else None
    print(f"=== vm {name} (console log: {log_path or 'not kept'})", flush=True)
    vm = Vm(args.image, boot_vm=args.boot_vm, cmdline_extra=cmdline, log_path=log_path,
            echo=args.echo)
    try:
        vm.start()
        fn(vm, args.image)
    except VmError as e:
        print(f"FAIL vm {name}: {e}", flush=True)
        return False
    finally:
        vm.kill()
    print(f"PASS vm {name}", flush=True)
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("case", choices=sorted(CASES) + ["all"])
    p.add_argument("--image", required=True, help="directory made by rootfs/build-vm-image")
    p.add_argument("--boot-vm", default=vmlib.BOOT_VM)
    p.add_argument("--log-dir", help="keep each case's console log here")
    p.add_argument("--echo", action="store_true", help="copy the console to stdout")
    args = p.parse_args()
    for f in ("vmlinuz", "token", "config.json"):
        if not os.path.exists(os.path.join(args.image, f)):
            print(f"FAIL: {args.image}/{f} missing: not a ballpoint image "
                  f"(rootfs/build-vm-image {args.image} --init ...)")
            return 1
    names = sorted(CASES) if args.case == "all" else [args.case]
    ok = [run_case(n, args) for n in names]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
