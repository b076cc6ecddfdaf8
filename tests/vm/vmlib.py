"""tests/vm/vmlib.py — boot an image with rootfs/boot-vm and watch its serial console.

Shared by tests/vm/vm_test.py and tests/bench/boot_bench.py; python3 stdlib only.
"""

import json
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BOOT_VM = os.path.join(REPO, "rootfs", "boot-vm")

READY_MARK = "ballpoint: ready"
POWER_DOWN_MARK = "reboot: Power down"      # the kernel's last words on RB_POWER_OFF
RESTART_MARK = "reboot: Restarting system"  # a reset (e.g. Ctrl-Alt-Del with C_A_D on)
PANIC_MARK = "Kernel panic"


class VmError(AssertionError):
    pass


def parse_event(line):
    """The JSON object in a console line (from its first '{'), or None."""
    i = line.find("{")
    if i < 0:
        return None
    try:
        obj = json.loads(line[i:])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def free_port():
    """A random TCP port on 127.0.0.1 that is free right now."""
    for _ in range(100):
        port = random.randint(20000, 60999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise VmError("no free port found")


class Vm:
    """One QEMU started through boot-vm. Use as a context manager: QEMU (our child, by
    its PID) is killed on exit whatever happened."""

    def __init__(self, image, boot_vm=BOOT_VM, cmdline_extra="", log_path=None,
                 monitor=True, echo=False, qemu_args=()):
        self.image = os.path.abspath(image)
        self.boot_vm = boot_vm
        self.cmdline_extra = cmdline_extra
        self.log_path = log_path
        self.want_monitor = monitor
        self.echo = echo
        self.qemu_args = list(qemu_args)
        self.lines = []            # console lines, '\r' stripped
        self.events = []           # (line index, JSON object)
        self.cond = threading.Condition()
        self.proc = None
        self.port = None
        self.t_start = None
        self.line_times = []       # monotonic arrival time per line
        self._tmp = tempfile.mkdtemp(prefix="bpvm-")
        self.monitor_path = os.path.join(self._tmp, "mon.sock") if monitor else None
        self._log = None
        self._reader = None

    # -- lifecycle

    def start(self, attempts=3):
        for attempt in range(attempts):
            self.port = free_port()
            # A cache disk of its own (sparse, made by boot-vm): QEMU locks the file, and a
            # test should not see what another left there.
            cmd = [self.boot_vm, self.image, "--api-port", str(self.port),
                   "--disk", os.path.join(self._tmp, "cache.img")]
            if self.cmdline_extra:
                cmd += ["--cmdline-extra", self.cmdline_extra]
            if self.monitor_path:
                cmd += ["--monitor", self.monitor_path]
            if os.environ.get("BALLPOINT_VM_VERBOSE"):
                cmd += ["--verbose"]   # every kernel message, with timestamps
            if self.qemu_args:
                cmd += ["--"] + self.qemu_args
            if self.log_path:
                os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
                self._log = open(self.log_path, "w")
                self._log.write("# " + " ".join(cmd) + "\n")
            with self.cond:
                self.lines, self.events, self.line_times = [], [], []
            self.t_start = time.monotonic()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
            # A port taken between free_port() and QEMU's bind: QEMU exits at once.
            try:
                self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                return self
            self._reader.join(5)
            if "hostfwd" in self.text() or "host forwarding" in self.text():
                continue
            raise VmError(f"QEMU exited at once with {self.proc.returncode}:\n{self.tail()}")
        raise VmError("could not start QEMU with a free port")

    def _read(self):
        buf = b""
        out = self.proc.stdout
        while True:
            chunk = out.read1(65536) if hasattr(out, "read1") else out.read(4096)
            if not chunk:
                break
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                self._add(raw)
        if buf:
            self._add(buf)
        with self.cond:
            self.cond.notify_all()

    def _add(self, raw):
        line = raw.decode("utf-8", "replace").replace("\r", "")
        if self._log:
            self._log.write(line + "\n")
            self._log.flush()
        if self.echo:
            print(line, flush=True)
        ev = parse_event(line)
        with self.cond:
            self.lines.append(line)
            self.line_times.append(time.monotonic())
            if ev is not None:
                self.events.append((len(self.lines) - 1, ev))
            self.cond.notify_all()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()   # our own child: QEMU (boot-vm execs it)
            self.proc.wait()
        if self._reader:
            self._reader.join(5)
        if self._log:
            self._log.close()
            self._log = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        return False

    # -- waiting on the console

    def text(self):
        with self.cond:
            return "\n".join(self.lines)

    def tail(self, n=60):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def wait_for(self, pred, timeout, what):
        """Waits until pred(self) is truthy; fails early if QEMU exits first."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred(self)
                if r:
                    return r
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise VmError(f"QEMU exited ({self.proc.returncode}) before {what}"
                                  f"\n--- console tail ---\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise VmError(f"timed out after {timeout}s waiting for {what}"
                                  f"\n--- console tail ---\n{self.tail()}")
                self.cond.wait(min(left, 0.5))

    def wait_line(self, needle, timeout, what=None):
        """Index and arrival time of the first console line containing needle."""
        def pred(vm):
            for i, line in enumerate(vm.lines):
                if needle in line:
                    return (i, vm.line_times[i])
            return None
        return self.wait_for(pred, timeout, what or repr(needle))

    def wait_ready(self, timeout=180):
        i, t = self.wait_line(READY_MARK, timeout, f"{READY_MARK!r} on the console")
        self.check_no_panic()
        return t - self.t_start

    def wait_exit(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise VmError(f"QEMU still running {timeout}s later\n--- console tail ---\n"
                          f"{self.tail()}")
        self._reader.join(10)
        return rc

    def find_events(self, pred):
        with self.cond:
            return [ev for _, ev in self.events if pred(ev)]

    def event_with(self, key, timeout, what=None, pred=lambda ev: True):
        def p(vm):
            for _, ev in vm.events:
                if key in ev and pred(ev):
                    return ev
            return None
        return self.wait_for(p, timeout, what or f"a log line with {key!r}")

    def check_no_panic(self):
        if PANIC_MARK in self.text():
            raise VmError(f"kernel panic on the console\n--- console tail ---\n{self.tail()}")

    # -- the QEMU monitor (HMP on a unix socket)

    def monitor(self, command, timeout=10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                s.connect(self.monitor_path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        out = b""
        try:
            out = _read_until(s, b"(qemu) ", deadline)   # banner and first prompt
            s.sendall(command.encode() + b"\n")
            out = _read_until(s, b"(qemu) ", deadline)
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass   # `quit` closes the socket without a prompt
        finally:
            s.close()
        return re.sub(rb"\x1b\[[0-9;]*[A-Za-z]", b"", out).decode("utf-8", "replace")

    # -- the API through hostfwd

    def http(self, path, token=None, timeout=10, retry_for=30):
        """(status, parsed JSON or raw text) of GET path; retries while the guest side of
        the forward is not answering yet."""
        url = f"http://127.0.0.1:{self.port}{path}"
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        deadline = time.monotonic() + retry_for
        while True:
            req = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    return r.status, _body(r.read())
            except urllib.error.HTTPError as e:
                return e.code, _body(e.read())
            except (urllib.error.URLError, ConnectionError, OSError) as e:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise VmError(f"GET {url}: {e}\n--- console tail ---\n{self.tail()}")
                time.sleep(0.5)


def _read_until(s, marker, deadline):
    out = b""
    while marker not in out:
        if time.monotonic() > deadline:
            raise socket.timeout()
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    return out


def _body(data):
    text = data.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_token(image):
    with open(os.path.join(image, "token")) as f:
        return f.read().strip()


def read_config(image):
    with open(os.path.join(image, "config.json")) as f:
        return json.load(f)
