"""Host mode makes real sprites: POST creates one (its own container on its own disk, a clone
of the base image), it survives a restart of the runtime, DELETE removes every trace of it."""
import json
import os
import subprocess
import unittest

import harness
from harness import Runtime

BASE = os.environ.get("BALLPOINT_BASE_IMAGE", "")


def container_inits(pid1):
    """{hostname: pid} of the container inits that are PID 1's children."""
    out = {}
    for pid in harness.children_of(pid1):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except FileNotFoundError:
            continue
        if b"--container-init" in argv:
            out[argv[argv.index(b"--hostname") + 1].decode()] = pid
    return out


class HostSprites(unittest.TestCase):
    def setUp(self):
        harness.require_root(self)
        if not BASE:
            self.skipTest("BALLPOINT_BASE_IMAGE not set")

    def start(self, state=None):
        rt = Runtime(extra=["--set", f"base_image={BASE}"], state=state)
        rt.wait_ready()
        return rt

    def test_create_restart_delete(self):
        rt = self.start()
        try:
            status, body, _ = rt.request("POST", "/v1/sprites", body=json.dumps({"name": "alpha"}).encode())
            self.assertEqual(status, 201, body)
            self.assertEqual(body["name"], "alpha")
            self.assertEqual(body["status"], "running")
            sid = body["id"]
            self.assertEqual(rt.request("POST", "/v1/sprites", body=b'{"name":"alpha"}')[0], 409)
            status, body, _ = rt.request("PUT", "/v1/sprites/alpha",
                                         body=b'{"labels":["kept"],"url_settings":{"auth":"public"}}')
            self.assertEqual((status, body["labels"]), (200, ["kept"]))
            self.assertIn("alpha", container_inits(rt.pid1()))
            # The container's root is ext4 on the sprite's own disk, a clone of the base image.
            init = container_inits(rt.pid1())["alpha"]
            with open(f"/proc/{init}/root/etc/hostname") as f:
                self.assertEqual(f.read(), "alpha\n")
            with open(f"/proc/{init}/mounts") as f:
                root = [line.split() for line in f if line.split()[1:2] == ["/"]]
            self.assertEqual(root[-1][2], "ext4", root)
            self.assertFalse(os.path.exists(os.path.join(BASE, "etc", "hostname")))  # the base image is untouched
            self.assertEqual(rt.stop()[0], 0, rt.console())
        finally:
            rt.kill()

        rt = self.start(state=rt.state)
        try:
            status, body, _ = rt.request("GET", "/v1/sprites/alpha")
            self.assertEqual(status, 200, rt.console())
            self.assertEqual((body["id"], body["status"]), (sid, "running"))
            self.assertEqual((body["labels"], body["url_settings"]["auth"]), (["kept"], "public"))
            self.assertIn("alpha", container_inits(rt.pid1()))
            status, body, _ = rt.request("DELETE", "/v1/sprites/alpha")
            self.assertEqual(status, 204, body)
            self.assertEqual(rt.request("GET", "/v1/sprites/alpha")[0], 404)
            self.assertEqual(rt.request("DELETE", "/v1/sprites/alpha")[0], 404)
            self.assertNotIn("alpha", container_inits(rt.pid1()))
            self.assertFalse(os.path.exists(os.path.join(rt.state, "sprites", "alpha")))
            self.assertEqual(rt.stop()[0], 0, rt.console())
        finally:
            rt.kill()

    def test_bad_creates_change_nothing(self):
        rt = self.start()
        try:
            for body in (b"", b"{", b"[]", b'{"name": 1}', b'{"name": "UPPER"}', b'{"name": "-x"}',
                         b'{"name": "' + b"a" * 64 + b'"}', b'{"name": "../etc"}'):
                status, resp, _ = rt.request("POST", "/v1/sprites", body=body)
                self.assertEqual(status, 400, (body, resp))
                self.assertIn("error", resp)
            self.assertEqual(rt.request("GET", "/v1/sprites")[1]["sprites"], [])
            self.assertEqual(os.listdir(os.path.join(rt.state, "sprites")), [])
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()


class HttpExec(unittest.TestCase):
    def test_frames_and_refusals(self):
        harness.require_root(self)
        if not BASE:
            self.skipTest("BALLPOINT_BASE_IMAGE not set")
        rt = Runtime(extra=["--set", f"base_image={BASE}"])
        try:
            rt.wait_ready()
            self.assertEqual(rt.request("POST", "/v1/sprites", body=b'{"name":"h"}')[0], 201)
            status, body, hdrs = rt.request("POST", "/v1/sprites/h/exec?cmd=echo&cmd=hi")
            self.assertEqual(status, 200)
            self.assertEqual(hdrs["Content-Type"], "application/octet-stream")
            self.assertEqual(body.encode() if isinstance(body, str) else body, "\x01hi\n\x03\x00".encode())
            status, body, _ = rt.request("POST", "/v1/sprites/h/exec?cmd=sh&cmd=-c&cmd=cat%3Bexit+7&stdin=true",
                                         body=b"stdin body")
            self.assertEqual(body, "\x01stdin body\x03\x07")
            for q in ("cmd=ls&tty=true", "cmd=ls&id=1", "cmd=ls&detachable=true", "tty=true"):
                status, body, _ = rt.request("POST", f"/v1/sprites/h/exec?{q}")
                self.assertEqual(status, 400, (q, body))
            self.assertEqual(rt.request("POST", "/v1/sprites/ghost/exec?cmd=ls")[0], 404)
            self.assertEqual(rt.request("POST", "/v1/sprites/h/exec?cmd=ls", token="bad")[0], 401)
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()


class HostWithoutBaseImage(unittest.TestCase):
    def test_create_says_why_it_cannot(self):
        harness.require_root(self)
        rt = Runtime()
        try:
            rt.wait_ready()
            status, body, _ = rt.request("POST", "/v1/sprites", body=b'{"name":"x"}')
            self.assertEqual(status, 503)
            self.assertEqual(body["error"], "no_base_image")
            self.assertEqual(rt.stop()[0], 0)
        finally:
            rt.kill()


if __name__ == "__main__":
    harness.main()
