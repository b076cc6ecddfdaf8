// storage/sigv4.cpp — AWS Signature Version 4 (HMAC-SHA256 through OpenSSL).
#include "storage/sigv4.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>

namespace bp::storage {

namespace {

std::string hex(const unsigned char* p, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  return out;
}

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  ::HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
         data.size(), out, &n);
  return std::string(reinterpret_cast<char*>(out), n);
}

// Header values: outer spaces trimmed, inner runs of spaces collapsed to one.
std::string trim_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  ::SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return hex(md, sizeof md);
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

std::string canonical_request(const SigV4Request& r, std::string* signed_headers) {
  std::vector<std::pair<std::string, std::string>> q;
  for (const auto& [k, v] : r.query) q.emplace_back(uri_encode(k, false), uri_encode(v, false));
  std::sort(q.begin(), q.end());
  std::string query;
  for (const auto& [k, v] : q) query += (query.empty() ? "" : "&") + k + "=" + v;

  std::vector<std::pair<std::string, std::string>> h;
  for (const auto& [k, v] : r.headers) {
    std::string name;
    for (char c : k) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    h.emplace_back(std::move(name), trim_value(v));
  }
  std::stable_sort(h.begin(), h.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string headers, names;
  for (std::size_t i = 0; i < h.size(); ++i) {
    if (i > 0 && h[i].first == h[i - 1].first) {
      headers.insert(headers.size() - 1, "," + h[i].second);  // repeated names: one line, comma-joined
      continue;
    }
    headers += h[i].first + ":" + h[i].second + "\n";
    names += (names.empty() ? "" : ";") + h[i].first;
  }
  if (signed_headers) *signed_headers = names;
  return r.method + "\n" + (r.path.empty() ? "/" : r.path) + "\n" + query + "\n" + headers + "\n" + names + "\n" +
         r.payload_hash;
}

std::string string_to_sign(std::string_view amz_date, std::string_view scope, std::string_view creq_hash) {
  return "AWS4-HMAC-SHA256\n" + std::string(amz_date) + "\n" + std::string(scope) + "\n" + std::string(creq_hash);
}

std::string signature(const SigV4Key& key, std::string_view date, std::string_view to_sign) {
  std::string k = hmac("AWS4" + key.secret_key, date);
  k = hmac(k, key.region);
  k = hmac(k, key.service);
  k = hmac(k, "aws4_request");
  std::string sig = hmac(k, to_sign);
  return hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

std::string authorization(const SigV4Key& key, std::string_view amz_date, const SigV4Request& r) {
  std::string names;
  std::string creq = canonical_request(r, &names);
  std::string date(amz_date.substr(0, 8));
  std::string scope = date + "/" + key.region + "/" + key.service + "/aws4_request";
  std::string sig = signature(key, date, string_to_sign(amz_date, scope, sha256_hex(creq)));
  return "AWS4-HMAC-SHA256 Credential=" + key.access_key + "/" + scope + ",SignedHeaders=" + names +
         ",Signature=" + sig;
}

}  // namespace bp::storage
