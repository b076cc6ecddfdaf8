"""Checkpoints, restore and the lease through the host-mode runtime (issue 7), on file://
and on Ceph RGW: a restore brings back a whole tree exactly (and can be undone); 200
checkpoints in a row, then 10 random restores; an empty state directory on the same store
brings every sprite back with its disk and checkpoints; kill -9 of PID 1 in the middle of
a checkpoint or a restore leaves a sprite whose every listed checkpoint restores; a second
runtime on the same sprite is refused; a lease holder whose store goes away stops writing
before its lease can expire."""
import json
import os
import random
import subprocess
import threading
import time
import unittest

import harness
from harness import Runtime
from test_host_storage import BASE, exec_out, s3_env, use_ceph_keys

TREE = ("mkdir -p /t/a/b /t/c && dd if=/dev/urandom of=/t/a/b/big bs=64k count=16 2>/dev/null && "
        "for i in 1 2 3 4 5 6 7 8; do head -c $((i * 3000)) /dev/urandom > /t/c/f$i; done && "
        "ln -s a/b/big /t/link && echo hello > /t/small && sync")
SUM = "cd /t && find . -xdev | sort | while read f; do if [ -f \"$f\" ] && [ ! -L \"$f\" ]; " \
      "then echo \"$f $(md5sum < \"$f\" | cut -d' ' -f1)\"; else echo \"$f $(stat -c %F \"$f\")\"; fi; done | md5sum"


def ndjson(body):
    if isinstance(body, (dict, list)):
        return [body]
    return [json.loads(line) for line in body.splitlines() if line.strip()]


class Checkpoints(unittest.TestCase):
    url = None  # None: the runtime's default file://STATE/objects

    def setUp(self):
        harness.require_root(self)
        if not BASE:
            self.skipTest("BALLPOINT_BASE_IMAGE not set")

    def start(self, state=None, extra=(), wait=True):
        store = ["--object-store", self.url] if self.url else []
        rt = Runtime(extra=["--set", f"base_image={BASE}", "--set", "storage.volume_size=8589934592", *store,
                            *extra], state=state)
        if wait:
            rt.wait_ready(timeout_s=60)
        return rt

    def create(self, rt, name):
        status, body, _ = rt.request("POST", "/v1/sprites", body=json.dumps({"name": name}).encode())
        self.assertEqual(status, 201, (body, rt.console()[-3000:]))
        return body["id"]

    def sh(self, rt, sprite, script):
        out, code = exec_out(rt, sprite, script, timeout_s=120)
        self.assertEqual(code, 0, (script, out, rt.console()[-2000:]))
        return out

    def checkpoint(self, rt, sprite, comment=""):
        status, body, headers = rt.request("POST", f"/v1/sprites/{sprite}/checkpoint",
                                           body=json.dumps({"comment": comment}).encode())
        self.assertEqual(status, 200, body)
        events = ndjson(body)
        self.assertEqual(events[-1]["type"], "complete", events)
        self.assertRegex(events[-1]["data"], r"^Checkpoint v\d+ created$")
        return events[-1]["data"].split()[1]

    def restore(self, rt, sprite, cid):
        status, body, _ = rt.request("POST", f"/v1/sprites/{sprite}/checkpoints/{cid}/restore")
        self.assertEqual(status, 200, body)
        events = ndjson(body)
        self.assertEqual(events[0]["data"], f"Restoring from checkpoint {cid}...")
        self.assertEqual(events[-1], {**events[-1], "type": "complete", "data": f"Restore from {cid} complete"}, events)
        return events

    def listed(self, rt, sprite, query=""):
        status, body, _ = rt.request("GET", f"/v1/sprites/{sprite}/checkpoints{query}")
        self.assertEqual(status, 200, body)
        self.assertIsInstance(body, list)
        return body

    def test_restore_brings_back_the_tree_and_can_be_undone(self):
        rt = self.start()
        try:
            self.create(rt, "cp")
            self.sh(rt, "cp", TREE)
            before = self.sh(rt, "cp", SUM)
            v0 = self.checkpoint(rt, "cp", "the tree")
            # Mounted in the running sprite (no restart; moments after the checkpoint, which
            # does not wait for it): read-only, the tree as it was.
            self.assertTrue(harness.wait_until(
                lambda: exec_out(rt, "cp", f"cat /.sprite/checkpoints/{v0}/t/small") == ("hello\n", 0), 10))
            self.sh(rt, "cp", "rm -r /t/a && echo changed > /t/small && mkdir /t/new && echo x > /t/new/x && sync")
            changed = self.sh(rt, "cp", SUM)
            self.assertNotEqual(before, changed)
            events = self.restore(rt, "cp", v0)
            self.assertEqual(self.sh(rt, "cp", SUM), before)
            kept = [e for e in events if "kept as checkpoint" in e.get("data", "")]
            self.assertEqual(len(kept), 1, events)
            undo = kept[0]["data"].split()[-1]
            cps = self.listed(rt, "cp")
            self.assertEqual(cps[0]["id"], "Current")
            self.assertEqual(cps[0]["source_id"], v0)
            by_id = {c["id"]: c for c in cps}
            self.assertEqual(by_id[v0]["comment"], "the tree")
            self.assertIn(undo, by_id)
            status, one, _ = rt.request("GET", f"/v1/sprites/cp/checkpoints/{v0}")
            self.assertEqual((status, one["id"]), (200, v0))
            self.assertEqual(rt.request("GET", "/v1/sprites/cp/checkpoints/v999")[0], 404)
            self.assertEqual(rt.request("POST", "/v1/sprites/cp/checkpoints/v999/restore")[0], 404)
            self.assertEqual(rt.request("DELETE", "/v1/sprites/cp/checkpoints/Current")[0], 409)
            # The newest checkpoints are there read-only inside, each a whole filesystem.
            self.assertTrue(harness.wait_until(
                lambda: undo in exec_out(rt, "cp", "ls /.sprite/checkpoints")[0].split(), 10))
            self.assertEqual(self.sh(rt, "cp", f"cd /.sprite/checkpoints/{v0}/t && " + SUM.split(" && ", 1)[1]),
                             before)
            self.assertIn(undo, self.sh(rt, "cp", "ls /.sprite/checkpoints").split())
            out, code = exec_out(rt, "cp", f"touch /.sprite/checkpoints/{v0}/x 2>&1")
            self.assertNotEqual(code, 0)
            self.assertIn("Read-only", out)
            # Undo the restore: the changed tree is back.
            self.restore(rt, "cp", undo)
            self.assertEqual(self.sh(rt, "cp", SUM), changed)
            self.assertEqual(rt.request("DELETE", f"/v1/sprites/cp/checkpoints/{undo}")[0], 204)
            self.assertEqual(rt.request("GET", f"/v1/sprites/cp/checkpoints/{undo}")[0], 404)
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()

    def test_a_symlink_in_the_disk_cannot_redirect_the_checkpoint_mounts(self):
        """/.sprite is the sprite's: made a symlink to /etc there, a restore that mounts the
        checkpoints again refuses to follow it, and the host's /etc gets no mount."""
        rt = self.start()
        try:
            self.create(rt, "evil")
            self.checkpoint(rt, "evil")
            out, code = exec_out(rt, "evil", "touch /.sprite/checkpoints/x 2>&1; echo $?")
            self.assertIn("Read-only", out)
            self.sh(rt, "evil", "mv /.sprite /old-sprite && ln -s /etc /.sprite && sync")
            cid = self.checkpoint(rt, "evil")
            self.restore(rt, "evil", cid)
            with open(f"/proc/{rt.pid1()}/mountinfo") as f:
                mounts = f.read()
            self.assertNotIn(" /etc/", mounts)
            self.assertNotIn(" /etc ", mounts)
            self.assertIn("no /.sprite/checkpoints", rt.console())
            self.assertEqual(self.sh(rt, "evil", "readlink /.sprite"), "/etc\n")  # the sprite's own, untouched
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()

    def test_200_checkpoints_then_10_random_restores(self):
        rt = self.start()
        try:
            self.create(rt, "many")
            ids = []
            for i in range(200):
                self.sh(rt, "many", f"echo {i} > /n && sync")
                ids.append(self.checkpoint(rt, "many"))
            self.assertEqual(len(set(ids)), 200)
            for k in random.Random(3).sample(range(200), 10):
                self.restore(rt, "many", ids[k])
                self.assertEqual(self.sh(rt, "many", "cat /n").strip(), str(k))
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()

    def test_an_empty_state_dir_finds_every_sprite_in_the_store(self):
        rt = self.start()
        try:
            self.create(rt, "keep1")
            self.create(rt, "keep2")
            self.sh(rt, "keep1", "echo one > /f && sync")
            v0 = self.checkpoint(rt, "keep1", "one")
            self.sh(rt, "keep1", "echo two > /f && sync")
            self.sh(rt, "keep2", "echo other > /g && sync")
            store = self.url or "file://" + os.path.join(rt.state, "objects")
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()
        fresh = Runtime(extra=["--set", f"base_image={BASE}", "--object-store", store])
        try:
            fresh.wait_ready(timeout_s=60)
            names = sorted(s["name"] for s in fresh.request("GET", "/v1/sprites")[1]["sprites"])
            self.assertEqual(names, ["keep1", "keep2"], fresh.console()[-3000:])
            self.assertEqual(self.sh(fresh, "keep1", "cat /f"), "two\n")
            self.assertEqual(self.sh(fresh, "keep2", "cat /g"), "other\n")
            self.assertIn(v0, [c["id"] for c in self.listed(fresh, "keep1")])
            self.restore(fresh, "keep1", v0)
            self.assertEqual(self.sh(fresh, "keep1", "cat /f"), "one\n")
            self.assertEqual(fresh.stop()[0], 0)
        finally:
            fresh.kill()

    def test_a_second_runtime_on_the_same_sprite_is_refused(self):
        rt = self.start()
        try:
            self.create(rt, "mine")
            store = self.url or "file://" + os.path.join(rt.state, "objects")
            other = Runtime(extra=["--set", f"base_image={BASE}", "--object-store", store])
            try:
                other.wait_ready(timeout_s=60)
                status, body, _ = other.request("GET", "/v1/sprites/mine")
                self.assertEqual((status, body["status"]), (200, "cold"))
                self.assertTrue(harness.wait_until(lambda: "in use by" in other.console(), 10), other.console()[-3000:])
                self.assertEqual(other.stop()[0], 0)
            finally:
                other.kill()
            # The first one never noticed: its sprite still writes.
            self.sh(rt, "mine", "echo still > /s && sync && cat /s")
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()

    def test_kill9_during_checkpoint_restore_and_gc(self):
        """PID 1 killed at a random moment of a checkpoint or a restore, with compaction and
        garbage collection running all the time over a disk that keeps being overwritten:
        after a restart the sprite runs and every checkpoint it lists restores to one of
        the states written."""
        rng = random.Random(int(os.environ.get("BP_KILL_SEED", "5")))
        gc = ["--set", "storage.gc_interval_ms=50", "--set", "storage.gc_grace_ms=0",
              "--set", "storage.sync_interval_ms=50"]
        rt = self.start(extra=gc)
        state = rt.state
        try:
            self.create(rt, "crash")
            for cycle in range(6):
                self.sh(rt, "crash", "for i in 1 2 3 4; do dd if=/dev/urandom of=/churn bs=64k count=8 2>/dev/null; "
                                     f"sync; done; echo {cycle} > /n && sync")
                ids = [c["id"] for c in self.listed(rt, "crash")[1:]]
                if ids and cycle % 2:
                    call = lambda: rt.request("POST", f"/v1/sprites/crash/checkpoints/{rng.choice(ids)}/restore")
                else:
                    call = lambda: rt.request("POST", "/v1/sprites/crash/checkpoint", body=b"{}")
                t = threading.Thread(target=lambda: self._swallow(call), daemon=True)
                t.start()
                time.sleep(rng.uniform(0.0, 0.6))
                rt.kill_pid1()
                t.join(10)
                rt = self.start(state=state, extra=gc)
                self.assertEqual(rt.request("GET", "/v1/sprites/crash")[1]["status"], "running", rt.console()[-3000:])
            for c in self.listed(rt, "crash")[1:]:
                self.restore(rt, "crash", c["id"])
                self.assertIn(self.sh(rt, "crash", "cat /n 2>/dev/null || echo none").strip(),
                              [str(i) for i in range(6)] + ["none"])
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()

    @staticmethod
    def _swallow(call):
        try:
            call()
        except Exception:
            pass


class CheckpointsOnCeph(Checkpoints):
    """The same on Ceph RGW, and the lease when the gateway goes away."""

    def setUp(self):
        harness.require_root(self)
        self.s3 = s3_env()
        if not BASE or not self.s3:
            self.skipTest("BALLPOINT_BASE_IMAGE or BP_S3_ENV not set")
        self.peer = os.path.join(os.path.dirname(__file__), "..", "peers", "ceph-rgw")
        self.url = use_ceph_keys(self, self.s3, "cp")

    def test_a_lease_holder_without_its_store_stops_writing_before_expiry(self):
        ttl = 6.0
        rt = self.start(extra=["--set", f"storage.lease_ttl_ms={int(ttl * 1000)}", "--durability", "local"])
        peer_dir = os.path.dirname(os.environ["BP_S3_ENV"])
        try:
            self.create(rt, "leased")
            self.sh(rt, "leased", "echo before > /a && sync")
            subprocess.run([self.peer, "stop-rgw", peer_dir], check=True)
            t0 = time.monotonic()
            try:
                health = lambda: rt.request("GET", "/v1/sprites/leased")[1].get("storage", {}).get("error", "")
                self.assertTrue(harness.wait_until(lambda: "lease lapsed" in health(), ttl), rt.console()[-3000:])
                self.assertLess(time.monotonic() - t0, ttl)  # before anyone else could take it
                # A write now waits (the disk blocks) instead of going into the journal.
                result = {}
                t = threading.Thread(target=lambda: result.update(
                    out=exec_out(rt, "leased", "dd if=/dev/zero of=/b bs=4k count=1 oflag=direct 2>&1; echo done")))
                t.start()
                time.sleep(1.5)
                self.assertEqual(result, {})
            finally:
                subprocess.run([self.peer, "start-rgw", peer_dir], check=True)
            t.join(120)
            self.assertIn("done", result["out"][0])
            self.assertTrue(harness.wait_until(lambda: health() == "", 60))
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()


if __name__ == "__main__":
    unittest.main(verbosity=2)
