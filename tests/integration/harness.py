"""tests/integration/harness.py — start ballpoint-init in host mode and look at what it leaves behind."""
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

BIN = os.environ.get("BALLPOINT_INIT", "")
PROBE = os.environ.get("BALLPOINT_PROBE", "")


def require_root(test):
    if os.geteuid() != 0:
        raise unittest.SkipTest("host mode needs root (pid and mount namespaces)")
    if not BIN or not os.path.exists(BIN):
        raise unittest.SkipTest("BALLPOINT_INIT does not name the built binary")


def wait_until(pred, timeout_s, step_s=0.02):
    """Polls pred until it returns a true value or the time is up; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step_s)


def children_of(pid):
    try:
        out = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        return out
    except FileNotFoundError:
        return []


def proc_stat(pid):
    """(state, ppid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[1])


def zombies_of(ppid):
    out = []
    for pid in children_of(ppid):
        st = proc_stat(pid)
        if st and st[0] == "Z":
            out.append(pid)
    return out


def cgroup2_root():
    with open("/proc/self/mountinfo") as f:
        roots = [l.split(" - ")[0].split()[4] for l in f if " - cgroup2 " in l]
    return roots[0] if roots else None


def runtime_cgroup(state_dir):
    """The cgroup a host-mode runtime makes for its sprites: ballpoint-<FNV-1a of the state dir>."""
    h = 1469598103934665603
    for c in os.path.realpath(state_dir).encode():
        h = ((h ^ c) * 1099511628211) % (1 << 64)
    root = cgroup2_root()
    return os.path.join(root, f"ballpoint-{h:016x}"[:len("ballpoint-") + 12]) if root else None


def mountinfo():
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(l.split()[3:5]) for l in f)


class Runtime:
    """One host-mode ballpoint: a launcher process and the PID 1 it re-executes."""

    def __init__(self, listen="127.0.0.1:0", extra=(), state=None):
        self.dir = tempfile.mkdtemp(prefix="bp-it-")
        self.state = state or os.path.join(self.dir, "state")
        try:  # what a runtime killed earlier left: wait_ready must see this one's
            os.unlink(os.path.join(self.state, "endpoint.json"))
        except FileNotFoundError:
            pass
        self.log_path = os.path.join(self.dir, "console.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN, "--host", "--state", self.state, "--listen", listen, *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.endpoint = None

    def pid1(self):
        """The host-side pid of the runtime's PID 1 (the launcher's only child)."""
        kids = children_of(self.proc.pid)
        return kids[0] if kids else None

    def wait_ready(self, timeout_s=20):
        path = os.path.join(self.state, "endpoint.json")

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"ballpoint exited with {self.proc.returncode} before ready:\n{self.console()}")
            try:
                with open(path) as f:
                    return json.load(f)
            except (FileNotFoundError, json.JSONDecodeError):
                return None

        self.endpoint = wait_until(ready, timeout_s)
        if not self.endpoint:
            raise AssertionError(f"not ready after {timeout_s} s:\n{self.console()}")
        return self.endpoint

    def request(self, method, path, token=None, body=None, headers=None):
        """(status, parsed JSON body or raw text, headers)."""
        req = urllib.request.Request(self.endpoint["url"] + path, method=method, data=body)
        tok = self.endpoint["token"] if token is None else token
        if tok:
            req.add_header("Authorization", "Bearer " + tok)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, raw, hdrs = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, raw, hdrs = e.code, e.read(), e.headers
        try:
            return status, json.loads(raw), hdrs
        except ValueError:
            return status, raw.decode(errors="replace"), hdrs

    def stop(self, sig=signal.SIGTERM, timeout_s=15):
        """Sends sig to the launcher, waits; returns (exit code, seconds taken)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"did not stop within {timeout_s} s:\n{self.console()}")
        return code, time.monotonic() - t0

    def kill_pid1(self, timeout_s=30):
        """SIGKILL to PID 1 alone (a crash): the launcher sees it die and exits."""
        pid1 = self.pid1()
        if pid1:
            os.kill(pid1, signal.SIGKILL)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the launcher did not exit after PID 1 was killed:\n{self.console()[-3000:]}")
        self.log.close()
        return code

    def kill(self):
        pid1 = self.pid1()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if pid1:
            try:
                os.kill(pid1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()

    def console(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def events(self):
        out = []
        for line in self.console().splitlines():
            i = line.find("{")
            if i < 0:
                continue
            try:
                out.append(json.loads(line[i:]))
            except ValueError:
                pass
        return out


class WebSocket:
    """A minimal RFC 6455 client over a plain socket, enough to drive exec sessions and
    to misbehave on purpose (huge frames, vanishing, never reading)."""

    def __init__(self, rt, path, token=None, timeout_s=10, session_info=False):
        host, port = rt.endpoint["url"][len("http://"):].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        tok = rt.endpoint["token"] if token is None else token
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Authorization: Bearer {tok}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed during the upgrade: {head!r}")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])
        self.headers = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.decode(errors="replace").partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.close_code = None
        self.session_id = None
        if self.status == 101 and session_info:
            kind, data = self.recv()
            if kind == "text" and json.loads(data).get("type") == "session_info":
                self.session_id = json.loads(data)["session_id"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data, opcode=None):
        """Sends one masked frame: text for str, binary for bytes."""
        if opcode is None:
            opcode = 1 if isinstance(data, str) else 2
        if isinstance(data, str):
            data = data.encode()
        n = len(data)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data)) if n < 1 << 16 else \
            (int.from_bytes(data, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        self.sock.sendall(head + mask + masked)

    def recv(self):
        """("text"|"binary"|"pong", payload) or ("close", code); answers pings."""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            data = self._read(n)
            op = b0 & 0x0F
            if op == 9:
                self.send(data, opcode=10)
                continue
            if op == 10:
                return "pong", data
            if op == 8:
                self.close_code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 1005
                return "close", self.close_code
            if op in (1, 2):
                return ("text" if op == 1 else "binary"), data

    def until_close(self):
        """Every (kind, payload) frame up to the server's close; close_code then holds its code."""
        frames = []
        while True:
            kind, data = self.recv()
            if kind == "close":
                return frames
            frames.append((kind, data))

    def send_raw(self, data):
        self.sock.sendall(data)

    def close(self, code=1000):
        self.send(struct.pack(">H", code), opcode=8)


def exec_socket(rt, sprite, query, token=None):
    """An exec WebSocket on /v1/sprites/SPRITE/exec?QUERY whose session_info has been read."""
    return WebSocket(rt, f"/v1/sprites/{sprite}/exec?{query}", token=token, session_info=True)


def main():
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[1:], exit=True)
