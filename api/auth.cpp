// api/auth.cpp — Authorization header parsing and token comparison.
#include "api/auth.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace bp::api {

namespace {

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

std::optional<std::string> base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  std::size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

bool authorized(std::string_view authorization, std::string_view token) {
  if (token.empty()) return false;
  constexpr std::string_view kBearer = "bearer ";
  constexpr std::string_view kBasic = "basic ";
  if (iequals_prefix(authorization, kBearer)) {
    authorization.remove_prefix(kBearer.size());
    return constant_time_equal(authorization, token);
  }
  if (iequals_prefix(authorization, kBasic)) {
    authorization.remove_prefix(kBasic.size());
    auto decoded = base64_decode(authorization);
    if (!decoded) return false;
    constexpr std::string_view kUser = "bearer:";
    std::string_view d(*decoded);
    if (d.substr(0, kUser.size()) != kUser) return false;
    return constant_time_equal(d.substr(kUser.size()), token);
  }
  return false;
}

}  // namespace bp::api
