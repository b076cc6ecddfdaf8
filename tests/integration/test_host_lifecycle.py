"""Host mode from start to stop: ready, the API answers with auth, SIGTERM ends it cleanly, nothing is left."""
import os
import signal
import stat
import socket
import unittest

import harness
from harness import Runtime, wait_until


class HostLifecycle(unittest.TestCase):
    def setUp(self):
        harness.require_root(self)

    def test_ready_api_and_clean_stop(self):
        mounts_before = harness.mountinfo()
        rt = Runtime()
        try:
            ep = rt.wait_ready()
            self.assertTrue(ep["url"].startswith("http://127.0.0.1:"))
            self.assertEqual(len(ep["token"]), 64)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(rt.state, "token")).st_mode), 0o600)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(rt.state, "endpoint.json")).st_mode), 0o600)
            self.assertIn("ballpoint: ready", rt.console())

            status, body, hdrs = rt.request("GET", "/v1/sprites")
            self.assertEqual(status, 200)
            self.assertEqual(body["sprites"], [])
            self.assertEqual(hdrs["Content-Type"], "application/json")
            self.assertTrue(hdrs["Sprite-Version"])

            for tok in ("wrong", ep["token"][:-1], ep["token"] + "0", ""):
                status, body, _ = rt.request("GET", "/v1/sprites", token=tok)
                self.assertEqual(status, 401, tok)
                self.assertEqual(body["error"], "unauthorized")

            pid1 = rt.pid1()
            self.assertIsNotNone(pid1)
            cgroup = harness.runtime_cgroup(rt.state)
            if cgroup:  # this host has a cgroup2 mount visible to us
                self.assertTrue(os.path.isdir(cgroup), cgroup)
            # PID 1 of its own pid namespace, in its own mount namespace.
            with open(f"/proc/{pid1}/status") as f:
                nspid = [l for l in f if l.startswith("NSpid:")][0].split()
            self.assertEqual(nspid[-1], "1")
            self.assertNotEqual(os.readlink(f"/proc/{pid1}/ns/mnt"), os.readlink("/proc/self/ns/mnt"))

            code, took = rt.stop()
            self.assertEqual(code, 0, rt.console())
            self.assertLess(took, 10)
            self.assertFalse(os.path.exists(os.path.join(rt.state, "endpoint.json")))
            self.assertIsNone(harness.proc_stat(pid1))
            self.assertEqual(harness.mountinfo(), mounts_before)
            if cgroup:
                self.assertFalse(os.path.exists(cgroup), cgroup)
            self.assertIn('"msg":"exiting","code":0', rt.console())
        finally:
            rt.kill()

    def test_token_is_kept_across_restarts(self):
        rt = Runtime()
        try:
            tok = rt.wait_ready()["token"]
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()
        rt2 = Runtime.__new__(Runtime)
        rt2.__dict__.update(rt.__dict__)
        rt2.log = open(rt.log_path, "ab")
        rt2.proc = harness.subprocess.Popen([harness.BIN, "--host", "--state", rt.state, "--listen", "127.0.0.1:0"],
                                            stdout=rt2.log, stderr=harness.subprocess.STDOUT)
        try:
            self.assertEqual(rt2.wait_ready()["token"], tok)
            self.assertEqual(rt2.request("GET", "/v1/sprites", token=tok)[0], 200)
            self.assertEqual(rt2.stop()[0], 0)
        finally:
            rt2.kill()

    def test_sigterm_during_boot_exits_cleanly(self):
        # Boot is under way once the launcher has cloned PID 1; signal it at points
        # from "just re-executed" to "half-way through the steps".
        for delay_s in (0.0, 0.002, 0.01, 0.03):
            rt = Runtime()
            try:
                self.assertTrue(wait_until(rt.pid1, 10, step_s=0.0005), rt.console())
                if delay_s:
                    wait_until(lambda: False, delay_s, step_s=delay_s)
                code, took = rt.stop()
                self.assertEqual(code, 0, f"delay {delay_s}: {rt.console()}")
                self.assertLess(took, 10)
                self.assertFalse(os.path.exists(os.path.join(rt.state, "endpoint.json")))
            finally:
                rt.kill()

    def test_sigint_and_sigpwr_stop_it_too(self):
        for sig in (signal.SIGINT, signal.SIGPWR):
            rt = Runtime()
            try:
                rt.wait_ready()
                pid1 = rt.pid1()
                os.kill(pid1, sig)  # straight to PID 1, as a VM's Ctrl-Alt-Del or power button would
                self.assertEqual(rt.proc.wait(timeout=10), 0, rt.console())
            finally:
                rt.kill()

    def test_no_fd_leak_across_many_connections(self):
        rt = Runtime()
        try:
            rt.wait_ready()
            pid1 = rt.pid1()
            fds_before = len(os.listdir(f"/proc/{pid1}/fd"))
            host, port = rt.endpoint["url"][len("http://"):].split(":")
            for i in range(300):
                if i % 3 == 0:
                    # A client that connects and goes away without a word.
                    s = socket.create_connection((host, int(port)))
                    s.close()
                else:
                    self.assertEqual(rt.request("GET", "/v1/sprites")[0], 200)
            fds_after = wait_until(lambda: len(os.listdir(f"/proc/{pid1}/fd")) == fds_before
                                   and fds_before, 5)
            self.assertTrue(fds_after, f"fds before {fds_before}, now {len(os.listdir(f'/proc/{pid1}/fd'))}")
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()

    def test_refuses_a_world_readable_token(self):
        rt = Runtime()
        try:
            rt.wait_ready()
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()
        os.chmod(os.path.join(rt.state, "token"), 0o644)
        log = open(rt.log_path, "ab")
        p = harness.subprocess.Popen([harness.BIN, "--host", "--state", rt.state, "--listen", "127.0.0.1:0"],
                                     stdout=log, stderr=harness.subprocess.STDOUT)
        self.assertEqual(p.wait(timeout=15), 1)
        self.assertIn("readable by others", rt.console())

    def test_unreadable_tls_files_stop_the_boot_with_the_reason(self):
        rt = Runtime(extra=["--set", "api.tls_cert=/nonexistent/cert.pem", "--set", "api.tls_key=/nonexistent/key.pem"])
        try:
            self.assertEqual(rt.proc.wait(timeout=15), 1)
            self.assertIn("TLS certificate /nonexistent/cert.pem", rt.console())
        finally:
            rt.kill()
        rt = Runtime(extra=["--set", "api.tls_cert=/x.pem"])  # a certificate without its key
        try:
            self.assertEqual(rt.proc.wait(timeout=15), 1)
            self.assertIn("api.tls_cert and api.tls_key go together", rt.console())
        finally:
            rt.kill()


if __name__ == "__main__":
    harness.main()
