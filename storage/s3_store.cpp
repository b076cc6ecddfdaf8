// storage/s3_store.cpp — s3://: the object store on an S3-compatible server (AWS S3, Ceph
// RGW, MinIO), over HTTP/1.1 with Beast, signed with SigV4.
//
// URL:  s3://HOST[:PORT]/BUCKET[/PREFIX][?OPTIONS]        HTTPS, peer verified against the
//                                                         system CAs (and $SSL_CERT_FILE)
//       s3+http://HOST[:PORT]/BUCKET[/PREFIX][?OPTIONS]   plain HTTP (a local RGW or MinIO)
// HOST is a name, an IPv4 address or a bracketed IPv6 address. PREFIX (taken literally, no
// %-decoding) is prepended to every key with a '/' between, and stripped from listed keys,
// so several stores can share a bucket. The keys come from S3Credentials, never the URL.
// OPTIONS, '&'-separated:
//   style=path|virtual     path: HOST/BUCKET/KEY; virtual: BUCKET.HOST/KEY. Default: path
//                          when HOST is an IP address or localhost or the URL has a port
//                          (a local server), virtual otherwise (AWS).
//   region=NAME            signs for NAME instead of the credentials' region.
//   connect_timeout_ms=N   one connection attempt, TLS handshake included (default 5000).
//   timeout_ms=N           one request's exchange once connected (default 20000).
//   retry_budget_ms=N      a whole call, retries included (default 30000): the longest a
//                          call blocks (plus name resolution, which has the resolver's own
//                          timeouts).
//
// Retries: 5xx (but 501), 429, 408, S3's SlowDown, RequestTimeout and
// ConditionalRequestConflict, timeouts and connection errors are retried on a new
// connection after a jittered exponential backoff (100 ms doubling to 5 s, each wait
// drawn from [d/2, d]); other 4xx are final. A kept-alive connection the server closed
// meanwhile is retried at once. When the next wait would overrun the budget the call
// fails with EIO naming the operation, the key, the attempts and the last status or
// socket error. A conditional put that is retried (its first attempt timed out, or got a
// 5xx: Ceph RGW answers 500 to the losers of racing conditional writes) may get 412 from
// its own earlier write. Each conditional put carries a random token in the metadata
// header x-amz-meta-bp-write, so on such a 412 a HEAD tells: the object is ours, and the
// put succeeded with its ETag, or it is not, and the put reports EEXIST/ESTALE. (Not the
// content's MD5: racing compare-and-swap writers often store the very same bytes.) Our
// write applied and then overwritten by another before the retry is reported as failed.
//
// Errors: 404 -> ENOENT, 412 -> EEXIST (absent) / ESTALE (matches; 404 too), 416 ->
// ERANGE, 403 -> EACCES (SignatureDoesNotMatch or InvalidAccessKeyId: "credentials
// refused"), anything else -> EIO with the S3 error code and message. Nothing here logs
// keys or secrets; retries are logged with the operation and the cause.
//
// Each pooled connection owns a private io_context: a call takes one (or connects),
// runs its async operations to completion under beast::tcp_stream's deadline, and gives
// it back, so calls from many threads never share a socket or an event loop.
#include "storage/s3_store.hpp"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/span_body.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "common/log.hpp"
#include "storage/object_store.hpp"
#include "storage/s3_xml.hpp"
#include "storage/sigv4.hpp"

namespace bp::storage {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

bool is_ip_address(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool is_host_name(std::string_view h) {
  if (h.empty() || h.size() > 253 || h.front() == '.' || h.front() == '-' || h.back() == '.') return false;
  return std::all_of(h.begin(), h.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.'; });
}

// Buckets as RGW and MinIO accept them; virtual-host style also needs a DNS label.
bool is_bucket_name(std::string_view b, bool virtual_host) {
  if (b.empty() || b.size() > 255) return false;
  return std::all_of(b.begin(), b.end(), [&](char c) {
    auto u = static_cast<unsigned char>(c);
    if (std::islower(u) || std::isdigit(u) || c == '-' || c == '.') return true;
    return !virtual_host && (std::isupper(u) || c == '_');
  });
}

Result<milliseconds> parse_ms(const std::string& name, std::string_view v) {
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n == 0 || n > 24 * 3600 * 1000)
    return make_error(name + " must be a number of milliseconds between 1 and 86400000, not '" + std::string(v) + "'",
                      EINVAL);
  return milliseconds(n);
}

}  // namespace

Result<S3Url> parse_s3_url(const std::string& url) {
  auto bad = [&](const std::string& why) { return make_error("object store URL '" + url + "': " + why, EINVAL); };
  S3Url u;
  std::string_view rest(url);
  if (rest.starts_with("s3://")) {
    rest.remove_prefix(5);
  } else if (rest.starts_with("s3+http://")) {
    u.tls = false;
    rest.remove_prefix(10);
  } else {
    return bad("not s3://HOST[:PORT]/BUCKET[/PREFIX] or s3+http://...");
  }
  if (rest.find('#') != std::string_view::npos) return bad("a fragment ('#') has no meaning here");
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }

  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  if (authority.find('@') != std::string_view::npos)
    return bad("credentials do not go in the URL (they come from the S3 key settings)");
  std::optional<std::string_view> port;
  if (authority.starts_with("[")) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    u.host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(":")) return bad("junk after the IPv6 address");
    if (!after.empty()) port = after.substr(1);
    unsigned char buf[16];
    if (::inet_pton(AF_INET6, u.host.c_str(), buf) != 1) return bad("'" + u.host + "' is not an IPv6 address");
  } else {
    auto colon = authority.find(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    if (u.host.empty()) return bad("no host");
    if (!is_host_name(u.host)) return bad("'" + u.host + "' is not a host name or address");
  }
  if (port) {
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), n);
    if (port->empty() || ec != std::errc() || end != port->data() + port->size() || n == 0 || n > 65535)
      return bad("bad port '" + std::string(*port) + "'");
    u.port = static_cast<std::uint16_t>(n);
  }

  std::size_t bslash = path.find('/');
  u.bucket = path.substr(0, bslash);
  if (u.bucket.empty()) return bad("no bucket (s3://HOST/BUCKET[/PREFIX])");
  if (bslash != std::string_view::npos) {
    std::string_view prefix = path.substr(bslash + 1);
    while (prefix.ends_with("/")) prefix.remove_suffix(1);
    u.prefix = prefix;
    if (!u.prefix.empty() && !valid_object_key(u.prefix))
      return bad("the prefix '" + u.prefix + "' has an empty, '.' or '..' segment");
  }

  std::optional<bool> style;
  while (!query.empty()) {
    std::string_view item = query.substr(0, query.find('&'));
    query.remove_prefix(std::min(query.size(), item.size() + 1));
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string name(item.substr(0, eq));
    std::string_view value = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    if (name == "style") {
      if (value != "path" && value != "virtual") return bad("style must be 'path' or 'virtual'");
      style = value == "virtual";
    } else if (name == "region") {
      bool ok = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
        return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-';
      });
      if (!ok) return bad("region must be a region name like 'us-east-1'");
      u.region = value;
    } else if (name == "connect_timeout_ms" || name == "timeout_ms" || name == "retry_budget_ms") {
      auto ms = parse_ms(name, value);
      if (!ms) return bad(ms.error().what);
      (name == "connect_timeout_ms" ? u.connect_timeout : name == "timeout_ms" ? u.request_timeout : u.retry_budget) =
          *ms;
    } else {
      return bad("unknown option '" + name +
                 "' (known: style, region, connect_timeout_ms, timeout_ms, retry_budget_ms)");
    }
  }
  // A local server (an address, localhost, an explicit port) has no wildcard DNS for
  // BUCKET.HOST; AWS prefers virtual-host style.
  u.virtual_host = style.value_or(!(is_ip_address(u.host) || u.host == "localhost" || u.port != 0));
  if (u.virtual_host && is_ip_address(u.host)) return bad("style=virtual needs a host name, not an address");
  if (!is_bucket_name(u.bucket, u.virtual_host))
    return bad("'" + u.bucket + "' is not a bucket name" +
               (u.virtual_host ? " usable in a host name (lower case, digits, '-', '.'; or use style=path)" : ""));
  return u;
}

namespace {

constexpr std::size_t kMaxBatch = 1000;        // DeleteObjects' limit
constexpr std::size_t kMaxIdle = 8;            // kept-alive connections kept for reuse
constexpr auto kIdleMax = std::chrono::seconds(15);  // servers drop idle connections; we first
constexpr std::uint64_t kBodyLimit = 1ull << 31;     // no object or listing page is larger
constexpr auto kBackoffBase = milliseconds(100);
constexpr auto kBackoffCap = milliseconds(5000);
constexpr const char* kWriteToken = "x-amz-meta-bp-write";  // user metadata: kept with the object

std::string amz_date() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string md5(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  ::EVP_Digest(data.data(), data.size(), md, &n, ::EVP_md5(), nullptr);
  return std::string(reinterpret_cast<char*>(md), n);
}

// 128 random bits in hex: a write's token.
std::string random_token() {
  std::random_device rd;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

// Content-MD5: base64 of the binary digest.
std::string md5_base64(std::string_view data) {
  std::string d = md5(data);
  unsigned char out[32];
  int n = ::EVP_EncodeBlock(out, reinterpret_cast<const unsigned char*>(d.data()), static_cast<int>(d.size()));
  return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

std::string unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

std::string ms_text(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
}

// One request, as the operations describe it; signed afresh for every attempt.
struct Outgoing {
  http::verb method = http::verb::get;
  std::string path;  // %-encoded
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;  // signed, besides host and x-amz-*
  std::string_view body;
  std::string payload_hash;
};

struct Response {
  unsigned status = 0;
  std::string body;
  std::string etag;  // unquoted
  std::string write_token;  // kWriteToken's value
  std::optional<std::uint64_t> content_length;
  int attempts = 0;  // how many it took: >1 means an earlier one may have been applied
};

// One attempt's outcome: a response, or why none came.
struct Outcome {
  std::optional<Response> response;
  std::string error;
  bool permanent = false;  // a TLS verification failure: retrying cannot help
  bool stale = false;      // a kept-alive connection the server had closed: retry at once
};

// A connection with its own event loop, used by one call at a time.
struct Conn {
  asio::io_context io;  // first: destroyed after the streams bound to it
  std::optional<beast::tcp_stream> plain;
  std::optional<asio::ssl::stream<beast::tcp_stream>> tls;
  beast::flat_buffer buf;
  Clock::time_point idle_since;

  beast::tcp_stream& tcp() { return tls ? tls->next_layer() : *plain; }
  // Runs what was started until it completes; beast::tcp_stream's deadline bounds it.
  void run() {
    io.restart();
    io.run();
  }
};

bool retryable(const Response& r, const S3Error& e) {
  if (e.code == "SlowDown" || e.code == "RequestTimeout" || e.code == "ConditionalRequestConflict") return true;
  return (r.status >= 500 && r.status != 501) || r.status == 429 || r.status == 408;
}

std::string describe(const Response& r, const S3Error& e) {
  std::string s = "HTTP " + std::to_string(r.status);
  if (!e.code.empty()) s += " " + e.code;
  if (!e.message.empty()) s += ": " + e.message;
  if (!e.request_id.empty()) s += " (request id " + e.request_id + ")";
  return s;
}

class S3Store final : public ObjectStore {
 public:
  S3Store(std::string url, S3Url u, const S3Credentials& creds, std::unique_ptr<asio::ssl::context> ssl)
      : url_(std::move(url)), u_(std::move(u)), ssl_(std::move(ssl)) {
    key_.access_key = creds.access_key;
    key_.secret_key = creds.secret_key;
    key_.region = !u_.region.empty() ? u_.region : !creds.region.empty() ? creds.region : "us-east-1";
    host_ = u_.virtual_host ? u_.bucket + "." + u_.host : u_.host;
    std::string bracketed = host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
    host_header_ = u_.port ? bracketed + ":" + std::to_string(u_.port) : bracketed;
    where_ = bracketed + ":" + std::to_string(u_.effective_port());
  }

  Result<std::string> put(const std::string& key, const std::string& data, const PutIf& cond) override {
    if (!valid_object_key(key)) return make_error("invalid object key '" + key + "'", EINVAL);
    Outgoing req{http::verb::put, object_path(key), {}, {{"Content-MD5", md5_base64(data)}}, data, sha256_hex(data)};
    if (cond.kind == PutIf::absent) req.headers.emplace_back("If-None-Match", "*");
    // Unquoted: Ceph RGW compares If-Match with the bare ETag; AWS accepts both forms.
    if (cond.kind == PutIf::matches) req.headers.emplace_back("If-Match", cond.etag);
    std::string token;
    if (cond.kind != PutIf::always) {
      token = random_token();
      req.headers.emplace_back(kWriteToken, token);
    }
    auto r = call("put", key, req);
    if (!r) return std::move(r.error());
    if (r->status / 100 == 2) {
      if (r->etag.empty()) return make_error("s3 put '" + key + "': the response has no ETag", EIO);
      return std::move(r->etag);
    }
    bool precondition = r->status == 412 || (cond.kind == PutIf::matches && r->status == 404);
    if (!precondition || cond.kind == PutIf::always) return failure("put", key, *r);
    if (r->status == 412 && r->attempts > 1) {
      // An earlier attempt may have been applied, and this 412 be about our own write.
      auto now = head_request(key);
      if (now && now->status == 200 && now->write_token == token && !now->etag.empty()) return std::move(now->etag);
    }
    if (cond.kind == PutIf::absent) return make_error("precondition failed: '" + key + "' exists", EEXIST);
    return make_error("precondition failed: '" + key + "' has changed or is gone (ETag " + cond.etag + ")", ESTALE);
  }

  Result<std::string> get(const std::string& key, std::uint64_t offset, std::optional<std::uint64_t> length) override {
    if (!valid_object_key(key)) return make_error("invalid object key '" + key + "'", EINVAL);
    if (length == 0) {  // no Range can ask for nothing: check the object is there and long enough
      auto info = head(key);
      if (!info) return std::move(info.error());
      if (offset > info->size) return make_error("range starts past the end of '" + key + "'", ERANGE);
      return std::string();
    }
    Outgoing req{http::verb::get, object_path(key), {}, {}, {}, sha256_hex("")};
    bool ranged = offset > 0 || length;
    bool bounded = length && *length <= UINT64_MAX - offset;  // else: to the end
    if (ranged)
      req.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-" +
                                            (bounded ? std::to_string(offset + *length - 1) : std::string()));
    auto r = call("get", key, req);
    if (!r) return std::move(r.error());
    if (r->status == 206) return std::move(r->body);
    if (r->status == 200) {
      if (!ranged) return std::move(r->body);
      // A server that ignores Range sends the whole object: cut the range out here.
      if (offset > r->body.size() || (offset == r->body.size() && offset > 0))
        return make_error("range starts past the end of '" + key + "'", ERANGE);
      return r->body.substr(offset, length.value_or(r->body.size()));
    }
    // 416 for bytes=0-N means the object is empty: the interface gives "" for that.
    if (r->status == 416 && offset == 0) return std::string();
    if (r->status == 416) return make_error("range starts past the end of '" + key + "'", ERANGE);
    return failure("get", key, *r);
  }

  Result<ObjectInfo> head(const std::string& key) override {
    if (!valid_object_key(key)) return make_error("invalid object key '" + key + "'", EINVAL);
    auto r = head_request(key);
    if (!r) return std::move(r.error());
    if (r->status != 200) return failure("head", key, *r);
    if (!r->content_length || r->etag.empty())
      return make_error("s3 head '" + key + "': the response lacks Content-Length or ETag", EIO);
    return ObjectInfo{key, *r->content_length, std::move(r->etag)};
  }

  Result<std::vector<ObjectInfo>> list(const std::string& prefix) override {
    std::string strip = u_.prefix.empty() ? "" : u_.prefix + "/";
    std::vector<ObjectInfo> out;
    std::string token;
    do {
      Outgoing req{http::verb::get, bucket_path(), {{"list-type", "2"}, {"prefix", strip + prefix}}, {}, {},
                   sha256_hex("")};
      if (!token.empty()) req.query.emplace_back("continuation-token", token);
      auto r = call("list", prefix, req);
      if (!r) return std::move(r.error());
      if (r->status != 200) return failure("list", prefix, *r);
      auto page = parse_list_page(r->body);
      if (!page) return std::move(page.error()).wrap("s3 list '" + prefix + "'");
      for (auto& o : page->objects) {
        if (!o.key.starts_with(strip)) continue;  // not asked for; a server's mistake
        o.key.erase(0, strip.size());
        out.push_back(std::move(o));
      }
      token = page->truncated ? page->next_token : "";
    } while (!token.empty());
    // S3 lists in byte order already; sorting keeps the promise with servers that don't.
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
    return out;
  }

  Status remove(const std::vector<std::string>& keys) override {
    for (const auto& k : keys)
      if (!valid_object_key(k)) return make_error("invalid object key '" + k + "'", EINVAL);
    std::vector<DeleteFailure> failed;
    for (std::size_t i = 0; i < keys.size(); i += kMaxBatch) {
      std::vector<std::string> batch;
      for (std::size_t j = i; j < std::min(keys.size(), i + kMaxBatch); ++j) batch.push_back(full_key(keys[j]));
      std::string body = delete_request_body(batch);
      std::string what = std::to_string(batch.size()) + " keys";
      Outgoing req{http::verb::post,
                   bucket_path(),
                   {{"delete", ""}},
                   {{"Content-MD5", md5_base64(body)}, {"Content-Type", "application/xml"}},
                   body,
                   sha256_hex(body)};
      auto r = call("remove", what, req);
      if (!r) return std::move(r.error());
      if (r->status != 200) return failure("remove", what, *r);
      auto errs = parse_delete_result(r->body);
      if (!errs) return std::move(errs.error()).wrap("s3 remove " + what);
      for (auto& e : *errs)
        if (e.code != "NoSuchKey") failed.push_back(std::move(e));  // a missing key is not an error
    }
    if (failed.empty()) return {};
    std::string strip = u_.prefix.empty() ? "" : u_.prefix + "/";
    std::string msg = "s3 remove: " + std::to_string(failed.size()) + " of " + std::to_string(keys.size()) +
                      " keys not deleted:";
    for (std::size_t i = 0; i < failed.size() && i < 5; ++i) {
      auto& f = failed[i];
      std::string k = f.key.starts_with(strip) ? f.key.substr(strip.size()) : f.key;
      msg += " '" + k + "' (" + f.code + (f.message.empty() ? "" : ": " + f.message) + ")";
    }
    if (failed.size() > 5) msg += " and " + std::to_string(failed.size() - 5) + " more";
    return make_error(std::move(msg), EIO);
  }

  std::string url() const override { return url_; }

 private:
  std::string full_key(const std::string& key) const { return u_.prefix.empty() ? key : u_.prefix + "/" + key; }
  std::string bucket_path() const { return u_.virtual_host ? "/" : "/" + u_.bucket; }
  std::string object_path(const std::string& key) const {
    return (u_.virtual_host ? "/" : "/" + u_.bucket + "/") + uri_encode(full_key(key), true);
  }

  Result<Response> head_request(const std::string& key) {
    return call("head", key, Outgoing{http::verb::head, object_path(key), {}, {}, {}, sha256_hex("")});
  }

  // A final response turned into the interface's error.
  Error failure(std::string_view op, const std::string& key, const Response& r) const {
    S3Error e = parse_error_body(r.body);
    std::string where = "s3 " + std::string(op) + " '" + key + "'";
    if (r.status == 403) {
      if (e.code == "SignatureDoesNotMatch" || e.code == "InvalidAccessKeyId")
        return make_error(where + ": the store refused the credentials (S3 " + e.code + ": " + e.message + ")",
                          EACCES);
      if (e.code.empty())  // a HEAD response carries no body to say which
        return make_error(where + ": HTTP 403: the credentials were refused or lack permission", EACCES);
      return make_error(where + ": access denied (" + describe(r, e) + ")", EACCES);
    }
    if (r.status == 404 && e.code == "NoSuchBucket")
      return make_error(where + ": bucket '" + u_.bucket + "' does not exist at " + where_, EIO);
    if (r.status == 404) return make_error("no object '" + key + "'", ENOENT);
    return make_error(where + ": " + describe(r, e), EIO);
  }

  // Sends req until a final response comes or the retry budget is spent.
  Result<Response> call(std::string_view op, const std::string& key, const Outgoing& req) {
    auto start = Clock::now();
    auto end = start + u_.retry_budget;
    std::string last;
    for (int attempt = 1, backoffs = 0;; ++attempt) {
      Outcome o = exchange(req, end);
      bool stale = o.stale;
      if (o.response) {
        S3Error e = o.response->status >= 300 ? parse_error_body(o.response->body) : S3Error{};
        if (!retryable(*o.response, e)) {
          o.response->attempts = attempt;
          return std::move(*o.response);
        }
        last = describe(*o.response, e);
      } else if (o.permanent) {
        return make_error("s3 " + std::string(op) + " '" + key + "': " + o.error, EIO);
      } else {
        last = std::move(o.error);
      }
      auto delay = stale ? Clock::duration::zero() : backoff(backoffs++);
      if (Clock::now() + delay >= end)
        return make_error("s3 " + std::string(op) + " '" + key + "': gave up after " + std::to_string(attempt) +
                              " attempts in " + ms_text(Clock::now() - start) + " (retry budget " +
                              ms_text(u_.retry_budget) + "); last: " + last,
                          EIO);
      // Servers close idle kept-alive connections: routine, not worth a warning.
      log_.log(stale ? Level::debug : Level::warn, "request failed, retrying",
               {{"op", op}, {"attempt", attempt}, {"delay_ms", std::chrono::duration_cast<milliseconds>(delay).count()},
                {"err", last}});
      std::this_thread::sleep_for(delay);
    }
  }

  // Exponential with jitter, so clients that failed together do not retry together.
  static Clock::duration backoff(int n) {
    thread_local std::minstd_rand rng{std::random_device{}()};
    auto d = std::min<milliseconds>(kBackoffCap, kBackoffBase * (1 << std::min(n, 10)));
    return milliseconds(std::uniform_int_distribution<long>(d.count() / 2, d.count())(rng));
  }

  // One attempt on a kept-alive connection or a new one.
  Outcome exchange(const Outgoing& out, Clock::time_point end) {
    std::unique_ptr<Conn> c = take_idle();
    bool reused = c != nullptr;
    if (!c) {
      Outcome failed;
      c = connect(std::min(Clock::now() + u_.connect_timeout, end), failed);
      if (!c) return failed;
    }

    std::string date = amz_date();
    SigV4Request sr{std::string(http::to_string(out.method)), out.path, out.query,
                    {{"Host", host_header_}, {"x-amz-content-sha256", out.payload_hash}, {"x-amz-date", date}},
                    out.payload_hash};
    for (const auto& h : out.headers) sr.headers.push_back(h);
    std::string target = out.path;
    for (std::size_t i = 0; i < out.query.size(); ++i) {
      const auto& [k, v] = out.query[i];
      target += (i ? "&" : "?") + uri_encode(k, false) + (v.empty() ? "" : "=" + uri_encode(v, false));
    }
    http::request<http::span_body<const char>> req{out.method, target, 11};
    for (const auto& [k, v] : sr.headers) req.set(k, v);
    req.set(http::field::authorization, authorization(key_, date, sr));
    req.set(http::field::user_agent, "ballpoint");
    req.body() = beast::span<const char>(out.body.data(), out.body.size());
    req.keep_alive(true);
    req.prepare_payload();

    http::response_parser<http::string_body> parser;
    parser.body_limit(kBodyLimit);
    if (out.method == http::verb::head) parser.skip(true);  // Content-Length without a body
    auto sent = Clock::now();
    auto deadline = std::min(sent + u_.request_timeout, end);
    c->tcp().expires_at(deadline);
    beast::error_code ec;
    auto round_trip = [&](auto& stream) {
      http::async_write(stream, req, [&](beast::error_code e, std::size_t) {
        if (e) ec = e;
        else http::async_read(stream, c->buf, parser, [&](beast::error_code e2, std::size_t) { ec = e2; });
      });
      c->run();
    };
    if (c->tls) round_trip(*c->tls);
    else round_trip(*c->plain);

    Outcome o;
    if (ec) {
      o.stale = reused && (ec == http::error::end_of_stream || ec == asio::error::eof ||
                           ec == asio::error::connection_reset || ec == asio::error::broken_pipe);
      o.error = ec == beast::error::timeout ? "no response from " + where_ + " within " + ms_text(deadline - sent)
                                            : where_ + ": " + ec.message();
      return o;  // the connection is closed with c
    }
    auto& res = parser.get();
    Response r;
    r.status = res.result_int();
    r.etag = unquote(res[http::field::etag]);
    r.write_token = res[kWriteToken];
    std::string_view len = res[http::field::content_length];
    std::uint64_t n = 0;
    if (auto [p, e] = std::from_chars(len.data(), len.data() + len.size(), n); e == std::errc() && !len.empty())
      r.content_length = n;
    bool keep = res.keep_alive();
    r.body = std::move(res.body());
    if (keep) give_back(std::move(c));
    o.response = std::move(r);
    return o;
  }

  // A new connection (and TLS session) by deadline, or nullptr with why in failed.
  std::unique_ptr<Conn> connect(Clock::time_point deadline, Outcome& failed) {
    auto c = std::make_unique<Conn>();
    auto t0 = Clock::now();
    beast::error_code ec;
    // getaddrinfo blocks with the resolver's own timeouts; an address resolves at once.
    tcp::resolver resolver(c->io);
    auto endpoints = resolver.resolve(host_, std::to_string(u_.effective_port()), ec);
    if (ec) {
      failed.error = "resolve " + host_ + ": " + ec.message();
      return nullptr;
    }
    if (ssl_) c->tls.emplace(c->io, *ssl_);
    else c->plain.emplace(c->io);
    c->tcp().expires_at(deadline);
    c->tcp().async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    c->run();
    if (ec) {
      failed.error = "connect " + where_ + ": " +
                     (ec == beast::error::timeout ? "timed out after " + ms_text(deadline - t0) : ec.message());
      return nullptr;
    }
    c->tcp().socket().set_option(tcp::no_delay(true), ec);  // small requests wait for nothing
    if (ssl_) {
      // SNI for names only (RFC 6066 forbids addresses); the certificate must name host_.
      if (!is_ip_address(host_) && !::SSL_set_tlsext_host_name(c->tls->native_handle(), host_.c_str())) {
        failed.error = "TLS: cannot set the server name " + host_;
        return nullptr;
      }
      c->tls->set_verify_callback(asio::ssl::host_name_verification(host_));
      c->tls->async_handshake(asio::ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
      c->run();
      if (ec) {
        failed.error = "TLS handshake with " + where_ + ": " +
                       (ec == beast::error::timeout ? "timed out after " + ms_text(deadline - t0) : ec.message());
        // The certificate or protocol was refused: the same again would be refused again.
        failed.permanent = ec.category() == asio::error::get_ssl_category();
        return nullptr;
      }
    }
    return c;
  }

  std::unique_ptr<Conn> take_idle() {
    std::lock_guard lock(mu_);
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (Clock::now() - c->idle_since < kIdleMax) return c;
    }
    return nullptr;
  }

  void give_back(std::unique_ptr<Conn> c) {
    c->idle_since = Clock::now();
    std::lock_guard lock(mu_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(c));
  }

  const std::string url_;
  const S3Url u_;
  SigV4Key key_;
  std::string host_;         // what we connect to and verify: HOST, or BUCKET.HOST
  std::string host_header_;  // the Host header: host_[:PORT]
  std::string where_;        // host_:PORT, for messages
  const std::unique_ptr<asio::ssl::context> ssl_;  // null for s3+http://
  Logger log_{"storage.s3"};
  std::mutex mu_;  // guards idle_
  std::vector<std::unique_ptr<Conn>> idle_;
};

// The client TLS context: TLS 1.2 or newer, the peer verified against the system CAs and
// $SSL_CERT_FILE (which OpenSSL's defaults would otherwise use instead of the system file).
Result<std::unique_ptr<asio::ssl::context>> make_tls_context() {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1,
                   ec);
  if (!ec) ctx->set_default_verify_paths(ec);
  if (ec) return make_error("TLS setup: " + ec.message(), EIO);
  if (const char* extra = std::getenv("SSL_CERT_FILE"); extra && *extra) {
    ctx->load_verify_file(extra, ec);
    if (ec) return make_error("TLS setup: SSL_CERT_FILE=" + std::string(extra) + ": " + ec.message(), EINVAL);
  }
  ctx->set_verify_mode(asio::ssl::verify_peer);
  return ctx;
}

}  // namespace

Result<std::unique_ptr<ObjectStore>> open_s3_store(const std::string& url, const S3Credentials& creds) {
  auto u = parse_s3_url(url);
  if (!u) return std::move(u.error());
  if (creds.access_key.empty() || creds.secret_key.empty())
    return make_error("object store " + url + ": no S3 access key or secret key", EINVAL);
  std::unique_ptr<asio::ssl::context> ssl;
  if (u->tls) {
    auto ctx = make_tls_context();
    if (!ctx) return std::move(ctx.error()).wrap("object store " + url);
    ssl = std::move(*ctx);
  }
  return std::unique_ptr<ObjectStore>(std::make_unique<S3Store>(url, std::move(*u), creds, std::move(ssl)));
}

}  // namespace bp::storage
