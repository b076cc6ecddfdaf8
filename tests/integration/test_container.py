"""The inner container on a host: isolation, escapes that must fail, exec-into, bounce and stop.

Drives tests/integration/container_driver (one Container, JSON lines) with the busybox base
image and the static probe inside it."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DRIVER = os.environ.get("BALLPOINT_CONTAINER_DRIVER", "")
DOCKER_DEFAULT_CAPS = "00000000a80425fb"


def build_image(dest):
    subprocess.run([os.path.join(ROOT, "rootfs", "build-base-image"), "busybox", dest], check=True)
    shutil.copy(harness.PROBE, os.path.join(dest, "probe"))


class Driver:
    def __init__(self, env=None):
        self.p = subprocess.Popen([DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)

    def call(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError("driver died: " + self.p.stderr.read())
        return json.loads(line)

    def sh(self, script, **kw):
        r = self.call(op="exec", argv=["sh", "-c", script], **kw)
        assert r["ok"], r
        return r

    def close(self):
        if self.p.poll() is None:
            try:
                self.call(op="quit")
            except (AssertionError, BrokenPipeError, ValueError):
                pass
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            f.close()


def host_ns(pid):
    return {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in ("cgroup", "ipc", "mnt", "net", "pid", "uts")}


class ContainerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_root(cls)
        if not DRIVER or not harness.PROBE:
            raise unittest.SkipTest("BALLPOINT_CONTAINER_DRIVER or BALLPOINT_PROBE not set")
        cls.tmp = tempfile.mkdtemp(prefix="bp-ctr-")
        cls.image = os.path.join(cls.tmp, "root")
        build_image(cls.image)
        # A stand-in for ballpoint's secrets, on the host, and one in the driver's environment.
        cls.secret_dir = os.path.join(cls.tmp, "state")
        os.makedirs(cls.secret_dir)
        with open(os.path.join(cls.secret_dir, "token"), "w") as f:
            f.write("secret-token-1234567890")
        env = dict(os.environ, BALLPOINT_SECRET_TEST="secret-env-0987654321")
        cls.d = Driver(env)
        r = cls.d.call(op="start", name="box1", rootfs=cls.image)
        assert r["ok"], r
        cls.init_pid = r["init_pid"]
        cls.cgroup = r["cgroup"]

    @classmethod
    def tearDownClass(cls):
        cls.d.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_pid1_is_the_reaper_and_the_view_is_its_own(self):
        def out(script):
            return self.d.sh(script)["stdout"].strip()

        self.assertTrue(out("cat /proc/1/cmdline | tr '\\0' ' '").startswith("ballpoint-init --container-init"))
        self.assertEqual(out("hostname"), "box1")
        self.assertEqual(out("cat /etc/hostname"), "box1")
        self.assertIn("box1", out("cat /etc/hosts"))
        self.assertGreater(int(out("echo $$")), 1)
        self.assertEqual(out("ls /sys/class/net"), "lo")  # its own, empty network namespace
        self.assertEqual(int(out("cat /sys/class/net/lo/flags"), 16) & 1, 1)  # lo is up
        # Processes outside are not visible: only PID 1, this shell and its pipeline.
        self.assertLessEqual(int(out("ls /proc | grep -c '^[0-9]'")), 4)

    def test_exec_shares_the_namespaces_of_the_container_init(self):
        r = self.d.call(op="exec", argv=["/probe", "ns"])
        inside = dict(l.split(" ", 1) for l in r["stdout"].splitlines())
        self.assertEqual(inside, host_ns(self.init_pid))
        self.assertNotEqual(inside["pid"], os.readlink("/proc/self/ns/pid"))
        self.assertNotEqual(inside["mnt"], os.readlink("/proc/self/ns/mnt"))

    def test_masked_and_read_only_paths(self):
        for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sysrq-trigger"):
            r = self.d.sh(f"[ -e {path} ] || exit 0; wc -c < {path}; stat -c %t:%T {path}")
            if r["stdout"]:
                self.assertEqual(r["stdout"].split(), ["0", "1:3"], path)  # /dev/null in its place
        r = self.d.sh("ls -A /sys/firmware 2>/dev/null | wc -l")
        self.assertEqual(r["stdout"].strip(), "0")
        for script in ("mkdir /sys/x", "echo 1 > /proc/sys/kernel/ostype", "echo 1 > /proc/sys/vm/drop_caches"):
            r = self.d.call(op="exec", argv=["sh", "-c", script])
            self.assertNotEqual(r["code"], 0, script)
            self.assertIn("Read-only file system", r["stderr"], script)

    def test_escapes_fail(self):
        r = self.d.call(op="exec", argv=["/probe", "escapes"])
        got = dict(l.split(" ", 1) for l in r["stdout"].splitlines())
        expect_eperm = ["mount_proc", "mount_tmpfs", "mount_disk", "init_module", "finit_module", "delete_module",
                        "kexec_load", "reboot", "bpf", "perf_event_open", "ptrace_init", "open_by_handle_at",
                        "unshare_user", "unshare_mount", "setns", "keyctl", "swapon", "settime"]
        for name in expect_eperm:
            self.assertEqual(got.get(name), "EPERM", (name, got))
        # A device node can be made (CAP_MKNOD, as in Docker) but not used: nodev everywhere.
        self.assertEqual(got["open_disk"], "EACCES")
        self.assertEqual(got["read_init_root"], "EACCES")
        self.assertEqual(got["read_init_environ"], "EACCES")

    def test_no_secret_reaches_the_container(self):
        token = os.path.join(self.secret_dir, "token")
        r = self.d.sh(f"cat {token} 2>&1; cat /proc/1/root{token} 2>&1; ls {self.secret_dir} 2>&1; env; true")
        self.assertNotIn("secret-token", r["stdout"])
        self.assertNotIn("secret-env", r["stdout"])
        self.assertNotIn("BALLPOINT", r["stdout"])
        r = self.d.sh("grep -rl secret-token /etc /root /home /tmp 2>/dev/null; cat /proc/*/environ 2>/dev/null | "
                      "tr '\\0' '\\n' | grep -c secret; true")
        self.assertEqual(r["stdout"].strip(), "0")

    def test_environment_is_exactly_what_was_asked(self):
        r = self.d.call(op="exec", argv=["env"], env=["PATH=/bin:/usr/bin", "HOME=/home/sprite", "FOO=bar"])
        self.assertEqual(sorted(r["stdout"].split()), ["FOO=bar", "HOME=/home/sprite", "PATH=/bin:/usr/bin"])

    def test_exit_codes_stdin_cwd_and_fds(self):
        for code in (0, 1, 42, 255):
            self.assertEqual(self.d.sh(f"exit {code}")["code"], code)
        r = self.d.call(op="exec", argv=["cat"], stdin="hello\nworld\n")
        self.assertEqual(r["stdout"], "hello\nworld\n")
        r = self.d.call(op="exec", argv=["pwd"], cwd="/tmp")
        self.assertEqual(r["stdout"], "/tmp\n")
        r = self.d.sh("echo out; echo err >&2")
        self.assertEqual((r["stdout"], r["stderr"]), ("out\n", "err\n"))
        r = self.d.call(op="exec", argv=["/probe", "fds"])
        self.assertEqual(r["stdout"].split(), ["0", "1", "2"])
        r = self.d.call(op="exec", argv=["no-such-program"])
        self.assertFalse(r["ok"])
        self.assertEqual(r["errno"], 2)
        self.assertIn("no-such-program", r["error"])
        r = self.d.call(op="exec", argv=["true"], cwd="/no/such/dir")
        self.assertFalse(r["ok"])
        self.assertIn("chdir", r["error"])

    def test_exec_with_a_pty_sized_before_start(self):
        r = self.d.call(op="exec", argv=["sh", "-c", "tty; stty size; echo $TERM; read x; echo got=$x; exit 3"],
                        tty=True, rows=33, cols=101, stdin="abc\n")
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["code"], 3)
        lines = r["stdout"].replace("\r", "").splitlines()
        # The terminal is the container's own devpts; the input is echoed, as a terminal does. The echo
        # comes when the line discipline takes the input, which may be before or after the first outputs.
        self.assertEqual(lines.count("abc"), 1, lines)
        self.assertLess(lines.index("abc"), lines.index("got=abc"), lines)
        lines.remove("abc")
        self.assertEqual(lines, ["/dev/pts/0", "33 101", "xterm-256color", "got=abc"])

    def test_capabilities_seccomp_and_privileges(self):
        r = self.d.sh("grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status")
        st = dict(l.split(":\t") for l in r["stdout"].splitlines())
        self.assertEqual(st["CapEff"], DOCKER_DEFAULT_CAPS)
        self.assertEqual(st["CapBnd"], DOCKER_DEFAULT_CAPS)
        self.assertEqual(st["NoNewPrivs"], "0")  # setuid programs such as sudo keep working
        self.assertEqual(st["Seccomp"], "2")
        r = self.d.call(op="exec", argv=["sh", "-c", "id -u; id -g; grep CapEff /proc/self/status"], uid=1000,
                        gid=1000)
        self.assertEqual(r["stdout"].splitlines()[:2], ["1000", "1000"])
        self.assertIn("0000000000000000", r["stdout"])

    def test_zz_bounce_kills_everything_and_starts_again(self):
        # A double-forked daemon, and a process that ignores SIGTERM.
        self.d.call(op="spawn", argv=["sh", "-c", "(sleep 1000 &) ; exit 0"])
        self.d.call(op="spawn", argv=["sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
        time.sleep(0.2)
        before = self.d.call(op="procs")["procs"]
        self.assertGreaterEqual(len(before), 3, before)
        r = self.d.call(op="bounce", grace_ms=300)
        self.assertTrue(r["ok"], r)
        new_init = r["init_pid"]
        self.assertNotEqual(new_init, self.init_pid)
        after = self.d.call(op="procs")["procs"]
        self.assertEqual(after, [new_init])
        for pid in before:
            st = harness.proc_stat(pid)
            self.assertTrue(st is None or st[0] == "Z", (pid, st))
        self.assertEqual(self.d.sh("hostname")["stdout"], "box1\n")
        type(self).init_pid = new_init


class ContainerLifecycle(unittest.TestCase):
    def setUp(self):
        harness.require_root(self)
        if not DRIVER or not harness.PROBE:
            self.skipTest("BALLPOINT_CONTAINER_DRIVER or BALLPOINT_PROBE not set")
        self.tmp = tempfile.mkdtemp(prefix="bp-ctr-")
        self.image = os.path.join(self.tmp, "root")
        build_image(self.image)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_stop_leaves_no_process_and_no_cgroup(self):
        d = Driver()
        try:
            r = d.call(op="start", name="box2", rootfs=self.image)
            self.assertTrue(r["ok"], r)
            cg = r["cgroup"]
            d.call(op="spawn", argv=["sh", "-c", "trap '' TERM; sleep 1000"])
            pids = d.call(op="procs")["procs"]
            r = d.call(op="stop", grace_ms=200)
            self.assertTrue(r["ok"], r)
            self.assertFalse(os.path.exists(cg))
            for pid in pids:
                st = harness.proc_stat(pid)
                self.assertTrue(st is None or st[0] == "Z", (pid, st))
            # A stopped container can start again, in a new cgroup.
            r = d.call(op="start", name="box2", rootfs=self.image)
            self.assertTrue(r["ok"], r)
        finally:
            d.close()

    def test_limits_the_host_cannot_apply_are_reported(self):
        d = Driver()
        try:
            r = d.call(op="start", name="box3", rootfs=self.image,
                       limits={"memory_max": 1 << 30, "pids_max": 512, "cpu_max": "50000 100000"})
            self.assertTrue(r["ok"], r)
            with open(os.path.join(os.path.dirname(r["cgroup"]), "cgroup.controllers")) as f:
                offered = f.read().split()
            want = {"memory.max": "memory", "pids.max": "pids", "cpu.max": "cpu"}
            self.assertEqual(sorted(r["unsupported"]), sorted(k for k, c in want.items() if c not in offered))
        finally:
            d.close()

    def test_no_new_privs_when_configured(self):
        d = Driver()
        try:
            self.assertTrue(d.call(op="start", name="box4", rootfs=self.image, no_new_privs=True)["ok"])
            r = d.sh("grep NoNewPrivs /proc/self/status")
            self.assertIn("1", r["stdout"])
        finally:
            d.close()

    def test_a_rootfs_symlink_cannot_redirect_mounts_onto_the_host(self):
        # The image is the user's: a /proc that points elsewhere must not make us mount there.
        os.rmdir(os.path.join(self.image, "proc"))
        victim = os.path.join(self.tmp, "victim")
        os.makedirs(victim)
        os.symlink(victim, os.path.join(self.image, "proc"))
        d = Driver()
        try:
            d.call(op="start", name="box5", rootfs=self.image)
            self.assertEqual(os.listdir(victim), [])
        finally:
            d.close()
        with open("/proc/self/mountinfo") as f:
            self.assertNotIn(victim, f.read())


@unittest.skipUnless(os.environ.get("BALLPOINT_DEBIAN_IMAGE"),
                     "sudo needs the Debian base image: build it with rootfs/build-base-image debian DIR and set "
                     "BALLPOINT_DEBIAN_IMAGE=DIR")
class SudoInDebian(unittest.TestCase):
    def test_sudo_works_for_the_sprite_user(self):
        harness.require_root(self)
        d = Driver()
        try:
            r = d.call(op="start", name="deb1", rootfs=os.environ["BALLPOINT_DEBIAN_IMAGE"])
            self.assertTrue(r["ok"], r)
            r = d.call(op="exec", argv=["sudo", "-n", "id", "-u"], uid=1000, gid=1000,
                       env=["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/sprite"])
            self.assertEqual((r["code"], r["stdout"]), (0, "0\n"), r)
        finally:
            d.close()


if __name__ == "__main__":
    harness.main()
