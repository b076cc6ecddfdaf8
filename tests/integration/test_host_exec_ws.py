"""Exec WebSockets on the wire, and ones that misbehave: oversized frames, garbage messages, a client that vanishes
mid-stream, one that never reads. Each gets a clear answer or is dropped, memory stays bounded,
its process does not outlive the rules, and the server keeps serving everyone else."""
import json
import os
import socket
import time
import unittest

import harness
from harness import Runtime

BASE = os.environ.get("BALLPOINT_BASE_IMAGE", "")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class WithSprite(unittest.TestCase):
    """A runtime with one sprite, "ab", for the test classes below (no tests of its own);
    `settings` are more --set KEY=VALUE for it."""
    settings = []

    @classmethod
    def setUpClass(cls):
        harness.require_root(cls)
        if not BASE:
            raise unittest.SkipTest("BALLPOINT_BASE_IMAGE not set")
        cls.rt = Runtime(extra=["--set", f"base_image={BASE}", *[a for kv in cls.settings for a in ("--set", kv)]])
        cls.rt.wait_ready()
        status, body, _ = cls.rt.request("POST", "/v1/sprites", body=json.dumps({"name": "ab"}).encode())
        assert status == 201, body

    @classmethod
    def tearDownClass(cls):
        code, _ = cls.rt.stop()
        cls.rt.kill()
        assert code == 0, cls.rt.console()

    def sessions(self):
        status, body, _ = self.rt.request("GET", "/v1/sprites/ab/exec")
        self.assertEqual(status, 200)
        return body["sessions"]

    def assert_exec_works(self):
        with harness.exec_socket(self.rt, "ab", "cmd=echo&cmd=still-here") as ws:
            frames = [data for _, data in ws.until_close()]
        self.assertEqual(frames[0], b"\x01still-here\n")
        self.assertEqual(frames[-1], b"\x03\x00")
        self.assertEqual(ws.close_code, 1000)


class ExecAbuse(WithSprite):
    def test_port_notifications_in_non_tty_mode(self):
        # Text frames beside the binary streams (API.md 2.1.6); the JS SDK shows them only
        # with a TTY, so this checks the non-TTY framing directly.
        with harness.exec_socket(self.rt, "ab", "cmd=sh&cmd=-c&cmd=nc%20-l%20-p%204000%20%26%20sleep%202%3B%20kill%20%24!%3B%20sleep%202") as ws:
            texts = [json.loads(data) for kind, data in ws.until_close() if kind == "text"]
            self.assertEqual([(t["type"], t["port"]) for t in texts], [("port_opened", 4000), ("port_closed", 4000)])
            self.assertGreater(texts[0]["pid"], 1)

    def test_oversized_frame_is_refused_with_1009(self):
        with harness.exec_socket(self.rt, "ab", "cmd=cat&stdin=true&max_run_after_disconnect=1s") as ws:
            sid = ws.session_id
            # A binary frame that announces 5 MiB, over the 4 MiB message limit: refused
            # from its header, before the server buffers any of it.
            ws.send_raw(bytes([0x82, 0x80 | 127]) + (5 << 20).to_bytes(8, "big") + os.urandom(4) + b"x" * 1024)
            ws.until_close()
            self.assertEqual(ws.close_code, 1009)
        # The client is gone: its cat ends after max_run_after_disconnect.
        self.assertTrue(harness.wait_until(lambda: all(s["id"] != sid for s in self.sessions()), 15))
        self.assert_exec_works()

    def test_garbage_messages_are_ignored(self):
        with harness.exec_socket(self.rt, "ab", "cmd=cat&stdin=true") as ws:
            for junk in ("not json", "{}", '{"type":"resize","rows":"x"}', '{"type":"signal","signal":"BOGUS"}',
                         '{"type":"nonsense"}', "[1,2,3]"):
                ws.send(junk)
            ws.send(b"")              # empty binary: no stream byte
            ws.send(b"\x09oops")      # unknown stream id
            ws.send(b"\x00kept")
            ws.send(b"\x04")
            frames = ws.until_close()
            self.assertEqual(b"".join(d[1:] for k, d in frames if k == "binary" and d[:1] == b"\x01"), b"kept")
            self.assertEqual(frames[-1], ("binary", b"\x03\x00"))
        with harness.WebSocket(self.rt, "/v1/sprites/ab/control") as ws:
            for junk in ("control:not json", "control:[]", 'control:{"type":"op.start","op":"exec","args":5}',
                         'control:{"type":"op.start","op":"teleport"}'):
                ws.send(junk)
            errors = []
            while len(errors) < 2:
                kind, data = ws.recv()
                self.assertEqual(kind, "text")
                errors.append(json.loads(data[len("control:"):])["args"]["code"])
            self.assertEqual(errors, ["op.invalid", "op.not_found"])
        self.assert_exec_works()

    def test_client_that_vanishes_mid_stream(self):
        ws = harness.exec_socket(self.rt, "ab", "cmd=yes&max_run_after_disconnect=1s")
        sid = ws.session_id
        for _ in range(20):
            ws.recv()
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        ws.sock.close()  # a reset, no close frame
        self.assert_exec_works()
        self.assertTrue(harness.wait_until(lambda: all(s["id"] != sid for s in self.sessions()), 15),
                        self.sessions())

    def test_http_exec_client_that_leaves_a_silent_command(self):
        # API.md 2.5: the process is killed when the client disconnects, even if it never writes.
        host, port = self.rt.endpoint["url"][len("http://"):].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(f"POST /v1/sprites/ab/exec?cmd=sleep&cmd=1003 HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {self.rt.endpoint['token']}\r\nContent-Length: 0\r\n\r\n".encode())
        self.assertIn(b"200 OK", s.recv(4096))
        self.assertTrue(harness.wait_until(lambda: any(x["command"] == "sleep 1003" for x in self.sessions()), 5))
        s.close()
        self.assertTrue(harness.wait_until(lambda: all(x["command"] != "sleep 1003" for x in self.sessions()), 5),
                        self.sessions())

    def test_client_that_vanishes_while_stdin_is_full(self):
        # The process never reads its stdin: the server stops reading the socket once the
        # pipe and its queue are full, and must still notice the client going.
        ws = harness.exec_socket(self.rt, "ab", "cmd=sleep&cmd=1004&stdin=true&max_run_after_disconnect=1s")
        chunk = b"\x00" + b"z" * (256 << 10)
        try:
            for _ in range(12):  # 3 MiB: more than the pipe and the 1 MiB queue
                ws.send(chunk)
        except OSError:
            pass  # the server stopped reading: our send buffer filled
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        ws.sock.close()
        # Noticed at the next keepalive write (15 s), then the 1 s run-after-disconnect.
        self.assertTrue(harness.wait_until(lambda: all(x["command"] != "sleep 1004" for x in self.sessions()), 30),
                        self.sessions())

    def test_client_that_never_reads(self):
        pid1 = self.rt.pid1()
        before = rss_kb(pid1)
        ws = harness.exec_socket(self.rt, "ab", "cmd=yes&max_run_after_disconnect=1s")
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sid = ws.session_id
        time.sleep(3)  # yes writes as fast as it can; nobody reads
        grown = rss_kb(pid1) - before
        # The server holds at most its bounded queue for this client (2 MiB, plus the
        # pipe and socket buffers in the kernel); it pauses the process instead.
        self.assertLess(grown, 16 * 1024, f"PID 1 grew by {grown} kB")
        entry = [s for s in self.sessions() if s["id"] == sid][0]
        self.assertLess(entry["bytes_per_second"] * 3, 256 << 20, entry)
        self.assert_exec_works()  # others are served meanwhile
        ws.sock.close()
        self.assertTrue(harness.wait_until(lambda: all(s["id"] != sid for s in self.sessions()), 15))


class ExecWire(WithSprite):
    """Wire details of API.md's checklist that the SDK does not show: headers of the 101,
    the close echo, pongs, stdin after EOF, stdin=false, a TTY's 04."""

    def test_headers_of_the_upgrade_and_the_version_probe(self):
        with harness.exec_socket(self.rt, "ab", "cmd=true") as ws:
            self.assertEqual(ws.status, 101)
            self.assertRegex(ws.headers["sprite-version"], r"^\d+\.\d+\.\d+$")
            self.assertEqual(ws.headers["x-sprite-capabilities"], "signal")
        status, _, hdrs = self.rt.request("HEAD", "/v1/sprites/ab/exec")
        self.assertEqual(status, 200)
        self.assertRegex(hdrs["Sprite-Version"], r"^\d+\.\d+\.\d+$")

    def test_pings_get_pongs_and_a_close_is_echoed(self):
        with harness.exec_socket(self.rt, "ab", "cmd=sleep&cmd=30&max_run_after_disconnect=1s") as ws:
            ws.sock.settimeout(1)  # checklist 24: within 1 s
            ws.send(b"are-you-there", opcode=9)
            self.assertEqual(ws.recv(), ("pong", b"are-you-there"))
            ws.close(1000)
            self.assertEqual(ws.recv(), ("close", 1000))  # checklist 22
            self.assertEqual(ws.sock.recv(1), b"")  # and the TCP connection ends

    def test_stdin_after_eof_is_dropped_and_stdin_false_reads_eof(self):
        with harness.exec_socket(self.rt, "ab", "cmd=cat&stdin=true") as ws:
            ws.send(b"\x00one")
            ws.send(b"\x04")
            ws.send(b"\x00two")  # after the EOF: discarded (checklist 18)
            frames = [data for _, data in ws.until_close()]
            self.assertEqual(b"".join(f[1:] for f in frames if f[:1] == b"\x01"), b"one")
            self.assertEqual(frames[-1], b"\x03\x00")  # checklist 9: last, two bytes
        with harness.exec_socket(self.rt, "ab", "cmd=cat") as ws:  # stdin=false: EOF at once
            ws.send(b"\x00ignored")
            frames = [data for _, data in ws.until_close()]
            self.assertEqual(frames, [b"\x03\x00"])

    def test_a_tty_gets_client_bytes_verbatim(self):
        # checklist 29 and 31: 04 reaches the PTY and ends cat through the line discipline;
        # output frames carry no stream byte.
        with harness.exec_socket(self.rt, "ab", "cmd=cat&tty=true") as ws:
            ws.send(b"hi\n")
            ws.send(b"\x04")
            frames = ws.until_close()
            out = b"".join(d for k, d in frames if k == "binary")
            self.assertEqual(json.loads(frames[-1][1]), {"type": "exit", "exit_code": 0})
            self.assertEqual(ws.close_code, 1000)
            self.assertTrue(out.startswith(b"hi\r\n"), out)


class SessionLimit(WithSprite):
    """api.max_sessions: one session too many gets a clear 429, and nothing else changes."""
    settings = ["api.max_sessions=3"]

    def test_one_session_too_many(self):
        socks = [harness.exec_socket(self.rt, "ab", "cmd=sleep&cmd=100") for _ in range(3)]
        try:
            self.assertTrue(all(ws.session_id for ws in socks))
            extra = harness.WebSocket(self.rt, "/v1/sprites/ab/exec?cmd=true")
            self.assertEqual(extra.status, 429)
            head = extra.buf.decode(errors="replace") + extra.sock.recv(4096).decode(errors="replace")
            self.assertIn("too_many_sessions", head)
            extra.sock.close()
            status, body, hdrs = self.rt.request("POST", "/v1/sprites/ab/exec?cmd=true")
            self.assertEqual((status, body["error"]), (429, "too_many_sessions"))
            self.assertEqual(hdrs["Retry-After"], "1")
            with harness.WebSocket(self.rt, "/v1/sprites/ab/control") as ctl:
                ctl.send('control:{"type":"op.start","id":"1","op":"exec","args":{"cmd":["true"]}}')
                kind, data = ctl.recv()
                self.assertEqual(json.loads(data[len("control:"):])["args"]["code"], "too_many_sessions")
            # Listing and killing still work at the limit; a freed slot takes a new session.
            status, body, _ = self.rt.request("GET", "/v1/sprites/ab/exec")
            self.assertEqual(body["count"], 3)
            status, _, _ = self.rt.request("POST", f"/v1/sprites/ab/exec/{socks[0].session_id}/kill?signal=KILL")
            self.assertEqual(status, 200)
            with harness.exec_socket(self.rt, "ab", "cmd=echo&cmd=room") as ws:
                self.assertTrue(ws.session_id)
        finally:
            for ws in socks:
                ws.sock.close()


if __name__ == "__main__":
    harness.main()
