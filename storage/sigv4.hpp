// storage/sigv4.hpp — AWS Signature Version 4 for S3 requests, sans-io: what to sign
// goes in, the Authorization header comes out. Checked against AWS's published vectors.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bp::storage {

struct SigV4Request {
  std::string method;  // "GET"
  std::string path;    // the URI path as sent (already %-encoded), e.g. "/bucket/key"
  std::vector<std::pair<std::string, std::string>> query;    // decoded; encoded when signing
  std::vector<std::pair<std::string, std::string>> headers;  // every one is signed; host included
  std::string payload_hash;  // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

struct SigV4Key {
  std::string access_key, secret_key, region, service = "s3";
};

std::string sha256_hex(std::string_view data);
// RFC 3986 unreserved characters stay; everything else is %XX (uppercase). With
// keep_slash, '/' stays too (object key paths).
std::string uri_encode(std::string_view s, bool keep_slash);

// The canonical request and the semicolon-separated signed header names.
std::string canonical_request(const SigV4Request& r, std::string* signed_headers = nullptr);
// amz_date is YYYYMMDDTHHMMSSZ; the scope is DATE/REGION/SERVICE/aws4_request.
std::string string_to_sign(std::string_view amz_date, std::string_view scope, std::string_view creq_hash);
// The hex signature of a string to sign.
std::string signature(const SigV4Key& key, std::string_view date, std::string_view to_sign);
// The whole Authorization header value for r at amz_date.
std::string authorization(const SigV4Key& key, std::string_view amz_date, const SigV4Request& r);

}  // namespace bp::storage
