// storage/s3_store.hpp — what an s3:// URL says (s3_store.cpp documents the format);
// module-private, plain types only, so the parser is unit-tested without sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/result.hpp"

namespace bp::storage {

struct S3Url {
  bool tls = true;          // s3:// (HTTPS) or s3+http://
  std::string host;         // without the brackets of an IPv6 literal
  std::uint16_t port = 0;   // as given; 0 when the URL has none (443 or 80)
  std::string bucket;
  std::string prefix;       // without leading or trailing '/'; "" for none
  bool virtual_host = false;  // BUCKET.HOST/KEY rather than HOST/BUCKET/KEY
  std::string region;       // "" unless ?region= overrides the credentials'
  std::chrono::milliseconds connect_timeout{5000};  // ?connect_timeout_ms=
  std::chrono::milliseconds request_timeout{20000};  // ?timeout_ms=: one attempt's exchange
  std::chrono::milliseconds retry_budget{30000};    // ?retry_budget_ms=: a whole call

  std::uint16_t effective_port() const { return port ? port : (tls ? 443 : 80); }
};

// EINVAL with the reason for anything but a well-formed s3:// or s3+http:// URL.
Result<S3Url> parse_s3_url(const std::string& url);

}  // namespace bp::storage
