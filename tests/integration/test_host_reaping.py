"""PID 1 reaps: an orphan storm inside the runtime's pid namespace leaves no zombie."""
import os
import subprocess
import unittest

import harness
from harness import Runtime, wait_until


class HostReaping(unittest.TestCase):
    def setUp(self):
        harness.require_root(self)
        if not harness.PROBE:
            self.skipTest("BALLPOINT_PROBE not set")

    def test_orphan_storm_leaves_no_zombie(self):
        rt = Runtime()
        try:
            rt.wait_ready()
            pid1 = rt.pid1()
            n = int(os.environ.get("ORPHANS", "10000"))
            # nsenter forks the probe into PID 1's pid namespace; the probe's grandchildren
            # outlive their parents and are reparented to ballpoint, which must reap them.
            out = subprocess.run(["nsenter", "--target", str(pid1), "--pid", "--", harness.PROBE, "orphans", str(n)],
                                 capture_output=True, text=True, timeout=240)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn(f"orphaned {n}", out.stdout)

            def settled():
                kids = harness.children_of(pid1)
                return not kids and not harness.zombies_of(pid1)

            self.assertTrue(wait_until(settled, 30),
                            f"left behind: {len(harness.children_of(pid1))} children, "
                            f"{len(harness.zombies_of(pid1))} zombies")
            # The API still serves after the storm.
            self.assertEqual(rt.request("GET", "/v1/sprites")[0], 200)
            self.assertEqual(rt.stop()[0], 0)
            reaped = [e for e in rt.events() if e.get("msg") == "stopped all components"]
            self.assertTrue(reaped and reaped[0]["reaped_total"] >= n, rt.console()[-2000:])
        finally:
            rt.kill()


if __name__ == "__main__":
    harness.main()
