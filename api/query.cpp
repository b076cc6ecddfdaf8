// api/query.cpp — form-decoding of query strings.
#include "api/query.hpp"

namespace bp::api {

namespace {

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<Query> parse_query(std::string_view target) {
  Query q;
  auto qm = target.find('?');
  if (qm == std::string_view::npos) return q;
  std::string_view rest = target.substr(qm + 1);
  if (auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    auto k = percent_decode(part.substr(0, eq), true);
    auto v = percent_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1), true);
    if (!k || !v) return std::nullopt;
    q.emplace_back(std::move(*k), std::move(*v));
  }
  return q;
}

std::optional<std::string> query_get(const Query& q, std::string_view key) {
  for (const auto& [k, v] : q)
    if (k == key) return v;
  return std::nullopt;
}

std::vector<std::string> query_all(const Query& q, std::string_view key) {
  std::vector<std::string> out;
  for (const auto& [k, v] : q)
    if (k == key) out.push_back(v);
  return out;
}

bool query_bool(const Query& q, std::string_view key, bool dflt) {
  auto v = query_get(q, key);
  if (!v) return dflt;
  if (*v == "true" || *v == "1") return true;
  if (*v == "false" || *v == "0") return false;
  return dflt;
}

}  // namespace bp::api
