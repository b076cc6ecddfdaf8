"""Bad input gets a clear JSON error and leaves the server serving others."""
import socket
import unittest

import harness
from harness import Runtime


def raw_exchange(url, data, read_timeout_s=5):
    host, port = url[len("http://"):].split(":")
    s = socket.create_connection((host, int(port)), timeout=read_timeout_s)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and stop reading before all is sent
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode(errors="replace")
    finally:
        s.close()


class HostBadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_root(cls)
        cls.rt = Runtime()
        cls.ep = cls.rt.wait_ready()

    @classmethod
    def tearDownClass(cls):
        code, _ = cls.rt.stop()
        cls.rt.kill()
        assert code == 0, cls.rt.console()

    def assert_still_serving(self):
        self.assertEqual(self.rt.request("GET", "/v1/sprites")[0], 200)

    def test_unknown_paths_and_methods(self):
        for method, path, want in (("GET", "/", 404), ("GET", "/v2/sprites", 404), ("GET", "/v1/sprites/ghost", 404),
                                   ("GET", "/v1/sprites/UPPER", 400), ("GET", "/v1/sprites/..%2F..%2Fetc", 400),
                                   ("PATCH", "/v1/sprites", 405), ("GET", "/v1/%zz", 400)):
            status, body, hdrs = self.rt.request(method, path)
            self.assertEqual(status, want, (method, path, body))
            self.assertIsInstance(body, dict, (method, path))
            self.assertIn("error", body)
            self.assertIn("message", body)
            if want == 405:
                self.assertIn("GET", hdrs["Allow"])
        self.assert_still_serving()

    def test_no_token_gets_401(self):
        status, body, _ = self.rt.request("GET", "/v1/sprites", token="")
        self.assertEqual(status, 401)
        self.assertEqual(body["error"], "unauthorized")

    def test_oversized_body_gets_413(self):
        big = b"x" * (2 * 1024 * 1024)
        head = (f"POST /v1/sprites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.ep['token']}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(big)}\r\n\r\n").encode()
        # The whole body, as a real client sends it: the 413 must still arrive intact.
        for _ in range(5):
            resp = raw_exchange(self.ep["url"], head + big)
            self.assertTrue(resp.startswith("HTTP/1.1 413"), resp[:200])
            self.assertIn('"error":"body_too_large"', resp)
        self.assert_still_serving()

    def test_oversized_headers_get_431(self):
        head = (f"GET /v1/sprites HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 20000}\r\n\r\n").encode()
        resp = raw_exchange(self.ep["url"], head)
        self.assertTrue(resp.startswith("HTTP/1.1 431"), resp[:200])
        self.assert_still_serving()

    def test_garbage_gets_400(self):
        resp = raw_exchange(self.ep["url"], b"\x16\x03\x01 this is not http\r\n\r\n")
        self.assertTrue(resp.startswith("HTTP/1.1 400"), resp[:200])
        self.assert_still_serving()

    def test_client_that_disconnects_mid_request(self):
        host, port = self.ep["url"][len("http://"):].split(":")
        for _ in range(50):
            s = socket.create_connection((host, int(port)))
            s.sendall(b"GET /v1/sprites HTTP/1.1\r\nHost: x\r\nAuthor")
            s.close()
        self.assert_still_serving()


if __name__ == "__main__":
    harness.main()
