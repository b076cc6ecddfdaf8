"""The `ballpoint` CLI as a new user runs it against a host-mode runtime: create, list, exec with
exit codes and stdin, console through a real terminal, destroy; bad input gets clear errors."""
import os
import pty
import select
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Runtime

CLI = os.environ.get("BALLPOINT_CLI", "")
BASE = os.environ.get("BALLPOINT_BASE_IMAGE", "")


class Cli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_root(cls)
        if not CLI or not BASE:
            raise unittest.SkipTest("BALLPOINT_CLI or BALLPOINT_BASE_IMAGE not set")
        cls.rt = Runtime(extra=["--set", f"base_image={BASE}"])
        cls.rt.wait_ready()
        cls.env = dict(os.environ, BALLPOINT_STATE=cls.rt.state, XDG_CONFIG_HOME=os.path.join(cls.rt.dir, "cfg"))

    @classmethod
    def tearDownClass(cls):
        code, _ = cls.rt.stop()
        cls.rt.kill()
        assert code == 0, cls.rt.console()

    def cli(self, *args, stdin=None):
        return subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=60)

    def test_a_new_users_session(self):
        r = self.cli("create", "demo")
        self.assertEqual((r.returncode, r.stdout), (0, "created demo\n"), r.stderr)
        self.assertIn("demo", self.cli("list").stdout)
        r = self.cli("exec", "demo", "--", "uname", "-a")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("Linux demo "), r.stdout)
        for code in (0, 1, 42, 255):
            self.assertEqual(self.cli("exec", "demo", "--", "sh", "-c", f"exit {code}").returncode, code)
        r = self.cli("exec", "demo", "--", "sh", "-c", "echo out; echo err >&2")
        self.assertEqual((r.stdout, r.stderr), ("out\n", "err\n"))
        r = self.cli("exec", "demo", "--", "sh", "-c", "tr a-z A-Z", stdin="piped input\n")
        self.assertEqual(r.stdout, "PIPED INPUT\n")
        r = self.cli("exec", "demo", "--", "no-such-program")
        self.assertEqual(r.returncode, 127)
        self.assertIn("no-such-program", r.stderr)
        self.assertEqual(self.cli("use", "demo").returncode, 0)
        self.assertEqual(self.cli("exec", "--", "hostname").stdout, "demo\n")
        r = self.cli("destroy", "demo")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("demo", self.cli("list").stdout)

    def test_console_through_a_terminal(self):
        self.assertEqual(self.cli("create", "con").returncode, 0)
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(CLI, [CLI, "console", "con"], self.env)
        out = b""

        def read_until(marker, timeout_s=20):
            nonlocal out
            deadline = time.monotonic() + timeout_s
            while marker not in out and time.monotonic() < deadline:
                r, _, _ = select.select([fd], [], [], 0.2)
                if r:
                    try:
                        out += os.read(fd, 4096)
                    except OSError:
                        break
            return marker in out

        try:
            os.write(fd, b"echo hi-$((40+2)); tty\n")
            self.assertTrue(read_until(b"hi-42"), out)
            self.assertTrue(read_until(b"/dev/pts/"), out)
            os.write(fd, b"exit 3\n")
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 3, out)
        finally:
            os.close(fd)
            self.cli("destroy", "con")

    def test_console_detach_list_attach_kill(self):
        self.assertEqual(self.cli("create", "det").returncode, 0)

        def terminal(*args):
            pid, fd = pty.fork()
            if pid == 0:
                os.execve(CLI, [CLI, *args], self.env)
            return pid, fd

        def read_until(fd, buf, marker, timeout_s=20):
            deadline = time.monotonic() + timeout_s
            while marker not in buf[0] and time.monotonic() < deadline:
                r, _, _ = select.select([fd], [], [], 0.2)
                if r:
                    try:
                        buf[0] += os.read(fd, 4096)
                    except OSError:
                        break
            return marker in buf[0]

        try:
            pid, fd = terminal("console", "det")
            out = [b""]
            os.write(fd, b"echo before-$((40+2))\n")
            self.assertTrue(read_until(fd, out, b"before-42"), out[0])
            os.write(fd, b"\x1c")  # Ctrl+\ detaches; the shell runs on
            self.assertTrue(read_until(fd, out, b"ballpoint sessions attach det "), out[0])
            _, status = os.waitpid(pid, 0)
            os.close(fd)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0, out[0])
            sid = out[0].split(b"ballpoint sessions attach det ")[1].split()[0].decode()

            r = self.cli("sessions", "list", "det")
            self.assertEqual(r.returncode, 0, r.stderr)
            row = [line for line in r.stdout.splitlines() if line.startswith(sid + " ")]
            self.assertEqual(len(row), 1, r.stdout)
            self.assertIn(" yes ", row[0])

            pid, fd = terminal("sessions", "attach", "det", sid)
            out = [b""]
            self.assertTrue(read_until(fd, out, b"before-42"), out[0])  # the scrollback
            os.write(fd, b"echo after-$((6*7))\n")
            self.assertTrue(read_until(fd, out, b"after-42"), out[0])
            os.write(fd, b"exit 5\n")
            _, status = os.waitpid(pid, 0)
            os.close(fd)
            self.assertEqual(os.waitstatus_to_exitcode(status), 5, out[0])
            self.assertNotIn(sid + " ", self.cli("sessions", "list", "det").stdout)

            # kill: a non-TTY detachable session started over the API, ended from the CLI.
            with harness.exec_socket(self.rt, "det", "cmd=sleep&cmd=1000&detachable=true") as ws:
                sid = ws.session_id
            self.assertIn(sid + " ", self.cli("sessions", "list", "det").stdout)
            r = self.cli("sessions", "kill", "det", sid)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"session {sid} exited with 143", r.stdout)
            self.assertNotIn(sid + " ", self.cli("sessions", "list", "det").stdout)
            r = self.cli("sessions", "kill", "det", sid)
            self.assertEqual((r.returncode, r.stdout), (0, f"session {sid} had already exited\n"), r.stderr)
            r = self.cli("sessions", "attach", "det", "424242")
            self.assertEqual(r.returncode, 1)
            self.assertIn("404", r.stderr)
            r = self.cli("sessions", "kill", "det", "nope")
            self.assertEqual(r.returncode, 2)
        finally:
            self.cli("destroy", "det")

    def test_checkpoint_create_list_restore_delete(self):
        self.assertEqual(self.cli("create", "cps").returncode, 0)
        self.assertEqual(self.cli("exec", "cps", "--", "sh", "-c", "echo first > /f && sync").returncode, 0)
        r = self.cli("checkpoint", "create", "cps", "-m", "before the change")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"Checkpoint v\d+ created\n$")
        cid = r.stdout.split("Checkpoint ")[-1].split()[0]
        r = self.cli("checkpoint", "list", "cps")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [line.split(None, 3) for line in r.stdout.splitlines()[1:]]
        self.assertEqual(rows[0][0], "Current")
        self.assertIn([cid, "before the change"], [[row[0], row[-1]] for row in rows])
        self.assertEqual(self.cli("exec", "cps", "--", "sh", "-c", "echo second > /f && sync").returncode, 0)
        r = self.cli("checkpoint", "restore", "cps", cid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"Restore from {cid} complete", r.stdout)
        self.assertEqual(self.cli("exec", "cps", "--", "cat", "/f").stdout, "first\n")
        r = self.cli("checkpoint", "restore", "cps", "v999")
        self.assertEqual(r.returncode, 1)
        self.assertIn("404", r.stderr)
        self.assertEqual(self.cli("checkpoint", "delete", "cps", cid).returncode, 0)
        listed = [line.split()[0] for line in self.cli("checkpoint", "list", "cps").stdout.splitlines()[1:]]
        self.assertNotIn(cid, listed)
        self.assertEqual(self.cli("checkpoint", "delete", "cps", "Current").returncode, 1)
        self.assertEqual(self.cli("checkpoint").returncode, 2)  # usage

    def test_clear_errors(self):
        r = self.cli("exec", "ghost", "--", "true")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not found", r.stderr)
        r = self.cli("create", "Bad_Name")
        self.assertEqual(r.returncode, 1)
        self.assertIn("400", r.stderr)
        r = subprocess.run([CLI, "list"], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, BALLPOINT_STATE="/nonexistent"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("endpoint.json", r.stderr)
        r = subprocess.run([CLI, "--url", self.rt.endpoint["url"], "--token", "wrong", "list"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("401", r.stderr)


class CliOverTls(unittest.TestCase):
    """A runtime that speaks only TLS: the CLI verifies it (BALLPOINT_CA_CERT for a
    self-signed certificate) and works as over plain HTTP; unverified, it says why."""

    @classmethod
    def setUpClass(cls):
        harness.require_root(cls)
        if not CLI or not BASE:
            raise unittest.SkipTest("BALLPOINT_CLI or BALLPOINT_BASE_IMAGE not set")
        cls.tls = tempfile.mkdtemp(prefix="bp-tls-")
        cls.cert, cls.key = os.path.join(cls.tls, "cert.pem"), os.path.join(cls.tls, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", cls.key, "-out", cls.cert], check=True, capture_output=True)
        cls.rt = Runtime(extra=["--set", f"base_image={BASE}", "--set", f"api.tls_cert={cls.cert}",
                                "--set", f"api.tls_key={cls.key}"])
        cls.rt.wait_ready()
        cls.env = dict(os.environ, BALLPOINT_STATE=cls.rt.state, BALLPOINT_CA_CERT=cls.cert)

    @classmethod
    def tearDownClass(cls):
        code, _ = cls.rt.stop()
        cls.rt.kill()
        shutil.rmtree(cls.tls, ignore_errors=True)
        assert code == 0, cls.rt.console()

    def test_the_cli_over_tls(self):
        self.assertTrue(self.rt.endpoint["url"].startswith("https://"))
        run = lambda *a, env=self.env: subprocess.run([CLI, *a], capture_output=True, text=True, env=env, timeout=60)
        r = run("create", "sec")
        self.assertEqual((r.returncode, r.stdout), (0, "created sec\n"), r.stderr)
        r = run("exec", "sec", "--", "sh", "-c", "cat; echo err >&2; exit 7", env=self.env)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertEqual(r.stderr, "err\n")
        r = subprocess.run([CLI, "exec", "sec", "--", "tr", "a-z", "A-Z"], input="through tls\n", capture_output=True,
                           text=True, env=self.env, timeout=60)
        self.assertEqual(r.stdout, "THROUGH TLS\n")
        self.assertIn("sec", run("list").stdout)
        unverified = dict(self.env)
        del unverified["BALLPOINT_CA_CERT"]
        r = run("list", env=unverified)
        self.assertEqual(r.returncode, 1)
        self.assertIn("certificate verify failed", r.stderr)
        self.assertIn("BALLPOINT_CA_CERT", r.stderr)
        self.assertEqual(run("destroy", "sec").returncode, 0)


if __name__ == "__main__":
    harness.main()
