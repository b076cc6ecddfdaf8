// tests/unit/storage/s3_store_test.cpp — s3://: URL parsing, the XML bodies, and the
// client's HTTP behaviour (signing, conditional headers, error codes, continuation,
// batching, retries, timeouts) against a scripted server on 127.0.0.1.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "storage/object_store.hpp"
#include "storage/s3_store.hpp"
#include "storage/s3_xml.hpp"

using namespace bp::storage;
using Clock = std::chrono::steady_clock;

TEST_CASE("s3 URL: hosts, ports, styles, prefixes and options", "[storage][s3]") {
  auto aws = parse_s3_url("s3://s3.eu-west-1.amazonaws.com/my-bucket");
  REQUIRE(aws);
  CHECK(aws->tls);
  CHECK(aws->host == "s3.eu-west-1.amazonaws.com");
  CHECK(aws->port == 0);
  CHECK(aws->effective_port() == 443);
  CHECK(aws->bucket == "my-bucket");
  CHECK(aws->prefix.empty());
  CHECK(aws->virtual_host);  // a name without a port: AWS-like
  CHECK(aws->region.empty());
  CHECK(aws->retry_budget == std::chrono::milliseconds(30000));

  auto rgw = parse_s3_url("s3+http://127.0.0.1:7480/ballpoint-test/sprites/one/");
  REQUIRE(rgw);
  CHECK(!rgw->tls);
  CHECK(rgw->host == "127.0.0.1");
  CHECK(rgw->port == 7480);
  CHECK(rgw->bucket == "ballpoint-test");
  CHECK(rgw->prefix == "sprites/one");  // the trailing '/' is the separator's
  CHECK(!rgw->virtual_host);

  CHECK(!parse_s3_url("s3://localhost/b")->virtual_host);
  CHECK(!parse_s3_url("s3://minio.lan:9000/b")->virtual_host);  // a port: a local server
  CHECK(parse_s3_url("s3+http://minio.lan/b")->effective_port() == 80);
  auto v6 = parse_s3_url("s3+http://[::1]:9000/b/p");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 9000);
  CHECK(v6->prefix == "p");
  CHECK(!v6->virtual_host);

  auto opts = parse_s3_url("s3://s3.example.com/Bucket_1?style=path&region=eu-west-1&retry_budget_ms=500&timeout_ms=7"
                           "&connect_timeout_ms=9");
  REQUIRE(opts);
  CHECK(!opts->virtual_host);
  CHECK(opts->region == "eu-west-1");
  CHECK(opts->retry_budget == std::chrono::milliseconds(500));
  CHECK(opts->request_timeout == std::chrono::milliseconds(7));
  CHECK(opts->connect_timeout == std::chrono::milliseconds(9));
  CHECK(parse_s3_url("s3://minio.lan:9000/b?style=virtual")->virtual_host);

  for (const char* bad : {"http://host/b", "s3:/host/b", "s3://", "s3://host", "s3://host/", "s3:///b",
                          "s3://host:0/b", "s3://host:65536/b", "s3://host:x/b", "s3://host:/b",
                          "s3://key:secret@host/b", "s3://host/b?style=weird", "s3://host/b?bogus=1",
                          "s3://host/b/a//c", "s3://host/b/../x", "s3://host/b/./x", "s3://127.0.0.1/b?style=virtual",
                          "s3://s3.amazonaws.com/Bad_Bucket", "s3://host/b?timeout_ms=0",
                          "s3://host/b?retry_budget_ms=1s", "s3://host/b?region=", "s3://[::1/b", "s3://[nope]/b",
                          "s3://ho st/b", "s3://host/b#frag"}) {
    INFO(bad);
    auto r = parse_s3_url(bad);
    REQUIRE(!r);
    CHECK(r.error().code == EINVAL);
    CHECK(r.error().what.find(bad) != std::string::npos);  // the message names the URL
  }
  CHECK(parse_s3_url("s3://host/b?bogus=1").error().what.find("unknown option 'bogus'") != std::string::npos);

  auto nokeys = open_s3_store("s3+http://127.0.0.1:1/b", S3Credentials{});
  REQUIRE(!nokeys);
  CHECK(nokeys.error().code == EINVAL);
  CHECK(open_s3_store("s3://host/b?style=weird", S3Credentials{"a", "b"}).error().code == EINVAL);
}

TEST_CASE("s3 XML: ListObjectsV2 pages", "[storage][s3]") {
  auto page = parse_list_page(R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents>
    <Key>p/a&amp;b&lt;c&gt;&quot;d&apos;e &#233;&#x263A;</Key>
    <LastModified>2024-01-01T00:00:00.000Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>
    <Size>11</Size><StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents><Key>p/z</Key><ETag>"abc"</ETag><Size>0</Size><Owner><ID>x</ID></Owner></Contents>
  <Contents><Key><![CDATA[p/<raw>]]></Key><ETag>e</ETag><Size>5</Size></Contents>
</ListBucketResult>)");
  REQUIRE(page);
  CHECK(page->truncated);
  CHECK(page->next_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  REQUIRE(page->objects.size() == 3);
  CHECK(page->objects[0].key == "p/a&b<c>\"d'e \xC3\xA9\xE2\x98\xBA");
  CHECK(page->objects[0].etag == "9b2cf535f27731c974343645a3985328");
  CHECK(page->objects[0].size == 11);
  CHECK(page->objects[1].key == "p/z");
  CHECK(page->objects[1].etag == "abc");
  CHECK(page->objects[1].size == 0);
  CHECK(page->objects[2].key == "p/<raw>");

  auto last = parse_list_page("<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount>"
                              "</ListBucketResult>");
  REQUIRE(last);
  CHECK(!last->truncated);
  CHECK(last->objects.empty());

  for (const char* bad : {"", "<Error><Code>x</Code></Error>", "<ListBucketResult><Contents>",
                          "<ListBucketResult><Key>a</Contents></ListBucketResult>",
                          "<ListBucketResult><Contents><Key>a&bogus;</Key></Contents></ListBucketResult>",
                          "<ListBucketResult><Contents><Size>12x</Size></Contents></ListBucketResult>",
                          "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"}) {
    INFO(bad);
    auto r = parse_list_page(bad);
    REQUIRE(!r);
    CHECK(r.error().code == EIO);
  }
}

TEST_CASE("s3 XML: DeleteObjects bodies and error bodies", "[storage][s3]") {
  CHECK(delete_request_body({"a&b", "c<d>"}) ==
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete><Quiet>true</Quiet>"
        "<Object><Key>a&amp;b</Key></Object><Object><Key>c&lt;d&gt;</Key></Object></Delete>");
  CHECK(xml_escape("x\"'\t") == "x&quot;&apos;&#9;");

  auto res = parse_delete_result(R"(<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted><Key>ok-1</Key></Deleted>
  <Error><Key>p/a&amp;b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
  <Error><Key>p/gone</Key><Code>NoSuchKey</Code><Message/></Error>
</DeleteResult>)");
  REQUIRE(res);
  REQUIRE(res->size() == 2);
  CHECK((*res)[0].key == "p/a&b");
  CHECK((*res)[0].code == "AccessDenied");
  CHECK((*res)[0].message == "Access Denied");
  CHECK((*res)[1].key == "p/gone");
  CHECK((*res)[1].message.empty());
  CHECK(parse_delete_result("<DeleteResult/>")->empty());
  CHECK(!parse_delete_result("<ListBucketResult/>"));

  auto err = parse_error_body(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message>
<Resource>/b/k</Resource><RequestId>tx000-1</RequestId><HostId>h</HostId></Error>)");
  CHECK(err.code == "SignatureDoesNotMatch");
  CHECK(err.message == "The request signature we calculated does not match");
  CHECK(err.request_id == "tx000-1");
  CHECK(parse_error_body("").code.empty());
  CHECK(parse_error_body("<html><body>Bad Gateway</body></html>").code.empty());
}

namespace {

// A scripted HTTP/1.1 server on 127.0.0.1: one connection at a time, keep-alive, each
// request answered by handler (which sees the raw request head and body).
class FakeServer {
 public:
  using Handler = std::function<std::string(const std::string& head, const std::string& body)>;
  explicit FakeServer(Handler h) : handler_(std::move(h)) {
    fd_ = listen_socket(&port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::string url(const std::string& rest) const { return "s3+http://127.0.0.1:" + std::to_string(port_) + rest; }

  // A listening socket on 127.0.0.1 that nobody accepts from: connections succeed (the
  // backlog takes them), requests are never answered.
  static int listen_socket(int* port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("fake server: cannot listen");
    *port = ntohs(a.sin_port);
    return fd;
  }

 private:
  // Waits until fd is readable or the server stops.
  bool wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    while (!stop_)
      if (::poll(&p, 1, 50) > 0) return true;
    return false;
  }

  void serve() {
    while (wait_readable(fd_)) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string in;
      for (;;) {
        std::size_t end;
        while ((end = in.find("\r\n\r\n")) == std::string::npos)
          if (!read_more(c, in)) goto done;
        std::string head = in.substr(0, end + 4);
        std::size_t len = 0;
        std::string lower = head;
        for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (auto at = lower.find("\r\ncontent-length:"); at != std::string::npos)
          len = std::stoul(head.substr(at + 17));
        while (in.size() < end + 4 + len)
          if (!read_more(c, in)) goto done;
        std::string body = in.substr(end + 4, len);
        in.erase(0, end + 4 + len);
        std::string out = handler_(head, body);
        if (::send(c, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) break;
      }
    done:
      ::close(c);
    }
  }

  bool read_more(int c, std::string& in) {
    if (!wait_readable(c)) return false;
    char buf[65536];
    ssize_t n = ::recv(c, buf, sizeof buf, 0);
    if (n <= 0) return false;
    in.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  Handler handler_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string reply(int status, const std::string& body = "", const std::string& extra = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra + "\r\n" + body;
}

std::string s3_error(const std::string& code) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code + "</Code><Message>says " + code +
         "</Message><RequestId>req-1</RequestId></Error>";
}

// A server answering from a queue of canned replies, recording what it was sent.
struct Scripted {
  std::mutex mu;
  std::deque<std::string> replies;
  std::vector<std::pair<std::string, std::string>> seen;  // head, body
  FakeServer server{[this](const std::string& head, const std::string& body) {
    std::lock_guard lock(mu);
    seen.emplace_back(head, body);
    if (replies.empty()) return reply(500, s3_error("InternalError"));
    std::string r = replies.front();
    replies.pop_front();
    return r;
  }};
  void push(std::string r) {
    std::lock_guard lock(mu);
    replies.push_back(std::move(r));
  }
  std::string head(std::size_t i) {
    std::lock_guard lock(mu);
    return seen.at(i).first;
  }
  std::size_t count() {
    std::lock_guard lock(mu);
    return seen.size();
  }
};

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const S3Credentials kCreds{"AKIDTEST", "secret/key", "us-east-1"};

}  // namespace

TEST_CASE("s3 store: requests are signed, conditional and mapped to the interface's errors", "[storage][s3]") {
  Scripted s;
  auto store = open_s3_store(s.server.url("/bucket/pfx?retry_budget_ms=5000"), kCreds);
  REQUIRE(store);
  auto& st = **store;

  s.push(reply(200, "", "ETag: \"e1\"\r\n"));
  auto etag = st.put("a b/c", "hello", PutIf::none_match());
  REQUIRE(etag);
  CHECK(*etag == "e1");
  std::string h = s.head(0);
  CHECK(h.starts_with("PUT /bucket/pfx/a%20b/c HTTP/1.1\r\n"));
  CHECK(has(h, "If-None-Match: *\r\n"));
  CHECK(has(h, "Content-MD5: XUFAKrxLKna5cZ2REBfFkg==\r\n"));  // base64(md5("hello"))
  CHECK(has(h, "x-amz-content-sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\r\n"));
  CHECK(has(h, "Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/"));
  CHECK(has(h, "/us-east-1/s3/aws4_request,SignedHeaders=content-md5;host;if-none-match;x-amz-content-sha256;"
               "x-amz-date;x-amz-meta-bp-write,Signature="));
  CHECK(has(h, "Host: 127.0.0.1:" + std::to_string(s.server.port()) + "\r\n"));
  CHECK(!has(h, "secret/key"));

  s.push(reply(412, s3_error("PreconditionFailed")));
  CHECK(st.put("k", "x", PutIf::none_match()).error().code == EEXIST);
  s.push(reply(412, s3_error("PreconditionFailed")));
  auto stale = st.put("k", "x", PutIf::match("e1"));
  CHECK(stale.error().code == ESTALE);
  CHECK(has(s.head(2), "If-Match: e1\r\n"));  // unquoted, as RGW wants it
  s.push(reply(404, s3_error("NoSuchKey")));
  CHECK(st.put("k", "x", PutIf::match("e1")).error().code == ESTALE);

  s.push(reply(206, "ell"));
  CHECK(*st.get("k", 1, 3) == "ell");
  CHECK(has(s.head(4), "Range: bytes=1-3\r\n"));
  s.push(reply(206, "llo"));
  CHECK(*st.get("k", 2) == "llo");
  CHECK(has(s.head(5), "Range: bytes=2-\r\n"));
  s.push(reply(200, "hello"));  // a server that ignores Range
  CHECK(*st.get("k", 1, 2) == "el");
  s.push(reply(416, s3_error("InvalidRange")));
  CHECK(st.get("k", 9).error().code == ERANGE);
  s.push(reply(416, s3_error("InvalidRange")));
  CHECK(*st.get("empty", 0, 10) == "");  // bytes=0-9 of an empty object
  s.push(reply(404, s3_error("NoSuchKey")));
  CHECK(st.get("nope").error().code == ENOENT);
  s.push(reply(404, s3_error("NoSuchBucket")));
  CHECK(st.get("nope").error().code == EIO);

  s.push("HTTP/1.1 200 OK\r\nContent-Length: 42\r\nETag: \"e9\"\r\n\r\n");  // HEAD: no body follows
  auto info = st.head("k");
  REQUIRE(info);
  CHECK(info->size == 42);
  CHECK(info->etag == "e9");
  CHECK(info->key == "k");
  s.push("HTTP/1.1 200 OK\r\nContent-Length: 42\r\nETag: \"e9\"\r\n\r\n");
  CHECK(*st.get("k", 42, 0) == "");  // zero length: a HEAD, no Range
  CHECK(s.head(s.count() - 1).starts_with("HEAD "));
  s.push("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  CHECK(st.head("nope").error().code == ENOENT);

  s.push(reply(403, s3_error("SignatureDoesNotMatch")));
  auto denied = st.get("k");
  REQUIRE(!denied);
  CHECK(denied.error().code == EACCES);
  CHECK(has(denied.error().what, "refused the credentials"));
  CHECK(has(denied.error().what, "SignatureDoesNotMatch"));
  s.push(reply(400, s3_error("InvalidArgument")));
  auto bad = st.put("k", "x");
  CHECK(bad.error().code == EIO);
  CHECK(has(bad.error().what, "HTTP 400 InvalidArgument"));

  CHECK(st.put("../k", "x").error().code == EINVAL);
  CHECK(st.remove({"ok", "a//b"}).error().code == EINVAL);
}

TEST_CASE("s3 store: listing follows continuation tokens and strips the prefix", "[storage][s3]") {
  Scripted s;
  auto store = std::move(*open_s3_store(s.server.url("/bucket/pfx"), kCreds));
  s.push(reply(200,
               "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t/1+=</NextContinuationToken>"
               "<Contents><Key>pfx/d/1</Key><Size>1</Size><ETag>\"a\"</ETag></Contents></ListBucketResult>"));
  s.push(reply(200, "<ListBucketResult><IsTruncated>false</IsTruncated>"
                    "<Contents><Key>pfx/d/2</Key><Size>2</Size><ETag>\"b\"</ETag></Contents></ListBucketResult>"));
  auto all = store->list("d/");
  REQUIRE(all);
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].key == "d/1");
  CHECK((*all)[1].key == "d/2");
  CHECK((*all)[1].size == 2);
  CHECK((*all)[1].etag == "b");
  CHECK(s.head(0).starts_with("GET /bucket?list-type=2&prefix=pfx%2Fd%2F HTTP/1.1"));
  CHECK(has(s.head(1), "&continuation-token=t%2F1%2B%3D "));
}

TEST_CASE("s3 store: remove deletes in batches of 1000 and reports keys it could not delete", "[storage][s3]") {
  Scripted s;
  auto store = std::move(*open_s3_store(s.server.url("/bucket"), kCreds));
  std::vector<std::string> keys;
  for (int i = 0; i < 2500; ++i) keys.push_back("k/" + std::to_string(i));
  for (int i = 0; i < 2; ++i) s.push(reply(200, "<DeleteResult></DeleteResult>"));
  s.push(reply(200, "<DeleteResult><Error><Key>k/2499</Key><Code>AccessDenied</Code><Message>no</Message></Error>"
                    "<Error><Key>k/2498</Key><Code>NoSuchKey</Code></Error></DeleteResult>"));
  auto r = store->remove(keys);
  REQUIRE(!r);
  CHECK(r.error().code == EIO);
  CHECK(has(r.error().what, "1 of 2500 keys not deleted: 'k/2499' (AccessDenied: no)"));
  REQUIRE(s.count() == 3);
  std::size_t total = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    std::lock_guard lock(s.mu);
    auto& [head, body] = s.seen[i];
    CHECK(head.starts_with("POST /bucket?delete HTTP/1.1"));
    CHECK(has(head, "Content-MD5: "));
    std::size_t n = 0;
    for (auto at = body.find("<Object>"); at != std::string::npos; at = body.find("<Object>", at + 1)) ++n;
    CHECK(n <= 1000);
    total += n;
  }
  CHECK(total == 2500);
  CHECK(store->remove({}));  // nothing to do, no request
  CHECK(s.count() == 3);
}

TEST_CASE("s3 store: 503 SlowDown twice, then success", "[storage][s3]") {
  Scripted s;
  auto store = std::move(*open_s3_store(s.server.url("/bucket?retry_budget_ms=10000"), kCreds));
  s.push(reply(503, s3_error("SlowDown")));
  s.push(reply(503, s3_error("SlowDown")));
  s.push(reply(200, "hello"));
  auto t0 = Clock::now();
  auto r = store->get("k");
  REQUIRE(r);
  CHECK(*r == "hello");
  CHECK(s.count() == 3);
  CHECK(Clock::now() - t0 >= std::chrono::milliseconds(100));  // it backed off: 50-100 ms, then 100-200 ms

  // 4xx are final: one request, no retry.
  s.push(reply(400, s3_error("InvalidRequest")));
  CHECK(!store->get("k"));
  CHECK(s.count() == 4);
}

TEST_CASE("s3 store: a retried conditional put that meets its own write succeeds", "[storage][s3]") {
  // The first attempt fails with 500 (as RGW answers the losers of racing conditional
  // writes) or times out, yet may have been applied; the retry then gets 412.
  std::mutex mu;
  std::string token;  // the write token the client sent
  bool ours = true;
  int n = 0;
  FakeServer server([&](const std::string& head, const std::string&) {
    std::lock_guard lock(mu);
    int i = n++;
    if (head.starts_with("PUT ")) {
      auto at = head.find("x-amz-meta-bp-write: ");
      if (at == std::string::npos) return reply(400, s3_error("NoToken"));
      token = head.substr(at + 21, head.find("\r\n", at) - at - 21);
      return i % 3 == 0 ? reply(500, s3_error("UnknownError")) : reply(412, s3_error("PreconditionFailed"));
    }
    return reply(200, "", "ETag: \"e7\"\r\nx-amz-meta-bp-write: " + (ours ? token : "someone-else") + "\r\n");
  });
  auto store = std::move(*open_s3_store(server.url("/bucket"), kCreds));
  auto r = store->put("lease", "me", PutIf::none_match());
  REQUIRE(r);
  CHECK(*r == "e7");
  {
    std::lock_guard lock(mu);
    CHECK(token.size() == 32);
    ours = false;
  }
  CHECK(store->put("lease", "me", PutIf::none_match()).error().code == EEXIST);
  CHECK(store->put("lease", "me", PutIf::match("e1")).error().code == ESTALE);
  std::lock_guard lock(mu);
  CHECK(n == 9);  // put, put, head for each
}

TEST_CASE("s3 store: a server that never answers costs the retry budget, then EIO", "[storage][s3]") {
  int port = 0;
  int fd = FakeServer::listen_socket(&port);  // accepts nothing: every request times out
  auto store = std::move(*open_s3_store(
      "s3+http://127.0.0.1:" + std::to_string(port) + "/bucket?timeout_ms=200&retry_budget_ms=1000", kCreds));
  auto t0 = Clock::now();
  auto r = store->put("lease", "x", PutIf::none_match());
  auto took = Clock::now() - t0;
  REQUIRE(!r);
  CHECK(r.error().code == EIO);
  INFO(r.error().what);
  CHECK(has(r.error().what, "s3 put 'lease': gave up after "));
  CHECK(has(r.error().what, "attempts"));
  CHECK(has(r.error().what, "no response from 127.0.0.1:" + std::to_string(port)));
  CHECK(took >= std::chrono::milliseconds(500));
  CHECK(took < std::chrono::milliseconds(2500));
  ::close(fd);

  // Nothing listening at all: connection refused, retried until the budget is spent.
  auto dead = std::move(*open_s3_store(
      "s3+http://127.0.0.1:" + std::to_string(port) + "/bucket?retry_budget_ms=600", kCreds));
  auto e = dead->head("k");
  REQUIRE(!e);
  CHECK(e.error().code == EIO);
  CHECK(has(e.error().what, "connect 127.0.0.1:" + std::to_string(port) + ": Connection refused"));
}
