#!/usr/bin/env python3
"""tests/peers/s3_smoke.py — a tiny SigV4 S3 client (python3 stdlib only) for the test peers.

tests/peers/ceph-rgw uses it to create the test bucket and to wait until the gateway answers a
*signed* request (an open port is not enough: RGW listens before its RADOS pools are usable).
`smoke` checks the behaviour ballpoint's storage relies on, so a peer that silently accepts
bad signatures or ignores conditional writes (s3rver does both) fails here, not in a storage
test. Independent of storage/sigv4.cpp on purpose: a shared bug would hide itself.

Configuration comes from the environment, or from the KEY=VALUE file named by --env (the
DIR/env that ceph-rgw writes): S3_ENDPOINT (host:port, plain HTTP, path-style), S3_BUCKET,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.

usage: s3_smoke.py [--env FILE] wait SECONDS | create-bucket | smoke
"""

import datetime
import hashlib
import hmac
import http.client
import os
import sys
import time
import urllib.parse

TIMEOUT_S = 10


def encode_query(query):
    """The canonical query string; also sent as is, so what is signed is what is sent."""
    return "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                    for k, v in sorted(query.items()))


class Client:
    def __init__(self, endpoint, access_key, secret_key, region):
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    def _sign(self, method, path, query, headers, payload_hash, now):
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        headers["host"] = self.endpoint
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = payload_hash
        # S3 URI-encodes each path segment once (no double encoding, unlike other services).
        canonical_uri = urllib.parse.quote(path, safe="/-_.~")
        canonical_query = encode_query(query)
        names = sorted(h.lower() for h in headers)
        lowered = {k.lower(): " ".join(str(v).strip().split()) for k, v in headers.items()}
        canonical_headers = "".join(f"{n}:{lowered[n]}\n" for n in names)
        signed_headers = ";".join(names)
        canonical_request = "\n".join([method, canonical_uri, canonical_query,
                                       canonical_headers, signed_headers, payload_hash])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical_request.encode()).hexdigest()])
        key = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={signed_headers}, Signature={signature}")

    def request(self, method, path, body=b"", headers=None, query=None):
        """Returns (status, headers dict with lower-case names, body bytes)."""
        headers = dict(headers or {})
        query = dict(query or {})
        self._sign(method, path, query, headers, hashlib.sha256(body).hexdigest(),
                   datetime.datetime.now(datetime.timezone.utc))
        target = urllib.parse.quote(path, safe="/-_.~")
        if query:
            target += "?" + encode_query(query)
        conn = http.client.HTTPConnection(self.endpoint, timeout=TIMEOUT_S)
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


def client_from_env(secret_override=None):
    try:
        return Client(os.environ["S3_ENDPOINT"], os.environ["AWS_ACCESS_KEY_ID"],
                      secret_override or os.environ["AWS_SECRET_ACCESS_KEY"],
                      os.environ.get("AWS_REGION", "us-east-1"))
    except KeyError as e:
        sys.exit(f"s3_smoke: environment variable {e.args[0]} is not set")


def cmd_wait(seconds):
    """Until a signed ListBuckets returns 200, or fail after `seconds`."""
    c = client_from_env()
    deadline = time.monotonic() + float(seconds)
    last = "no attempt"
    while True:
        try:
            status, _, body = c.request("GET", "/")
            if status == 200:
                return 0
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            print(f"s3_smoke: no signed answer from {c.endpoint} within {seconds} s; "
                  f"last: {last}", file=sys.stderr)
            return 1
        time.sleep(0.2)


def cmd_create_bucket():
    c = client_from_env()
    bucket = os.environ["S3_BUCKET"]
    status, _, body = c.request("PUT", f"/{bucket}")
    # 409 BucketAlreadyOwnedByYou: a restart of an existing cluster; fine.
    if status == 200 or (status == 409 and b"BucketAlreadyOwnedByYou" in body):
        return 0
    print(f"s3_smoke: PUT /{bucket}: HTTP {status}: {body[:300]!r}", file=sys.stderr)
    return 1


def cmd_smoke():
    c = client_from_env()
    bucket = os.environ["S3_BUCKET"]
    key = f"/{bucket}/smoke/{os.getpid()}-{time.time_ns()} a+b"
    failures = []

    def check(what, got, want, body=b""):
        ok = got == want
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {got}" + ("" if ok else f" (want {want}) {body[:300]!r}"))
        if not ok:
            failures.append(what)

    data = b"ballpoint smoke \x00\xff" * 100
    s, h, b = c.request("PUT", key, data)
    check("PUT object", s, 200, b)
    etag = h.get("etag", "")
    s, h, b = c.request("GET", key)
    check("GET object", s, 200, b)
    check("GET body matches", b == data, True)
    s, _, b = c.request("GET", key, headers={"Range": "bytes=1-4"})
    check("GET range", (s, b), (206, data[1:5]), b)

    cond = key + ".lease"
    s, _, b = c.request("PUT", cond, b"one", headers={"If-None-Match": "*"})
    check("PUT If-None-Match:* (absent)", s, 200, b)
    s, _, b = c.request("PUT", cond, b"two", headers={"If-None-Match": "*"})
    check("PUT If-None-Match:* (present)", s, 412, b)
    s, _, b = c.request("GET", cond)
    check("conditional loser did not overwrite", b, b"one")
    s, _, b = c.request("PUT", key, b"x", headers={"If-Match": '"0123456789abcdef0123456789abcdef"'})
    check("PUT If-Match wrong ETag", s, 412, b)
    s, _, b = c.request("PUT", key, data, headers={"If-Match": etag.strip('"')})
    check("PUT If-Match right ETag (unquoted)", s, 200, b)

    bad = client_from_env(secret_override="wrong/" + c.secret_key)
    s, _, b = bad.request("GET", key)
    check("GET with wrong secret", (s, b"SignatureDoesNotMatch" in b), (403, True), b)

    s, _, b = c.request("GET", f"/{bucket}", query={"list-type": "2", "prefix": "smoke/"})
    check("ListObjectsV2", s, 200, b)
    for k in (key, cond):
        s, _, b = c.request("DELETE", k)
        check("DELETE object", s, 204, b)
    s, _, b = c.request("GET", key)
    check("GET deleted object", s, 404, b)

    if failures:
        print(f"s3_smoke: {len(failures)} check(s) failed against {c.endpoint}", file=sys.stderr)
        return 1
    return 0


def load_env(path):
    try:
        with open(path) as f:
            for line in f:
                k, sep, v = line.rstrip("\n").partition("=")
                if sep and k and not k.startswith("#"):
                    os.environ[k] = v
    except OSError as e:
        sys.exit(f"s3_smoke: --env {path}: {e.strerror}")


def main(argv):
    if len(argv) >= 3 and argv[1] == "--env":
        load_env(argv[2])
        argv = argv[:1] + argv[3:]
    if len(argv) == 3 and argv[1] == "wait":
        return cmd_wait(argv[2])
    if len(argv) == 2 and argv[1] == "create-bucket":
        return cmd_create_bucket()
    if len(argv) == 2 and argv[1] == "smoke":
        return cmd_smoke()
    print(__doc__.strip().splitlines()[-1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
