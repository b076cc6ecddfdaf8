// init/config.cpp — binding config.json and KEY=VALUE overrides to Config, by key.
#include "init/config.hpp"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

namespace bp::init {

using nlohmann::json;

namespace {

// config.json nests objects; keys are the dotted paths to its leaves.
void flatten(const json& j, const std::string& prefix, std::map<std::string, json>& out) {
  if (j.is_object() && !(prefix.empty() && j.empty())) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  if (!prefix.empty()) out[prefix] = j;
}

Result<std::string> as_string(const json& v) {
  if (!v.is_string()) return make_error("must be a string");
  return v.get<std::string>();
}

// Integers come from JSON numbers, or from override strings.
Result<std::uint64_t> as_uint(const json& v, std::uint64_t max) {
  std::uint64_t n = 0;
  if (v.is_number_unsigned()) {
    n = v.get<std::uint64_t>();
  } else if (v.is_string()) {
    auto s = v.get<std::string>();
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty())
      return make_error("must be a non-negative integer, got '" + s + "'");
  } else {
    return make_error("must be a non-negative integer");
  }
  if (n > max) return make_error("must be at most " + std::to_string(max));
  return n;
}

// Lists come from JSON arrays of strings, or from comma-separated override strings.
Result<std::vector<std::string>> as_list(const json& v) {
  std::vector<std::string> out;
  if (v.is_array()) {
    for (const auto& e : v) {
      if (!e.is_string()) return make_error("must be a list of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  if (!v.is_string()) return make_error("must be a list of strings or a comma-separated string");
  std::string s = v.get<std::string>();
  std::size_t start = 0;
  while (start <= s.size()) {
    auto comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Status check_hostname(const std::string& h) {
  if (h.empty() || h.size() > 63) return make_error("must be 1 to 63 characters");
  for (char c : h)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-')
      return make_error("may hold only letters, digits and '-'");
  if (h.front() == '-' || h.back() == '-') return make_error("may not start or end with '-'");
  return {};
}

bool valid_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

Status check_cidr(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return make_error("must be ADDRESS/PREFIX, got '" + s + "'");
  std::string addr = s.substr(0, slash);
  unsigned char buf[4];
  if (inet_pton(AF_INET, addr.c_str(), buf) != 1) return make_error("'" + addr + "' is not an IPv4 address");
  unsigned prefix = 0;
  auto p = s.substr(slash + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
  if (ec != std::errc() || end != p.data() + p.size() || p.empty() || prefix > 32)
    return make_error("prefix must be 0 to 32, got '" + p + "'");
  return {};
}

using Binder = std::function<Status(Config&, const json&)>;

Binder uint_field(std::optional<std::uint64_t> Config::Limits::*m) {
  return [m](Config& c, const json& v) -> Status {
    auto n = as_uint(v, ~std::uint64_t{0});
    if (!n) return std::move(n.error());
    c.limits.*m = *n;
    return {};
  };
}

// A storage size or duration between lo and hi.
template <class T>
Binder storage_uint(T Config::Storage::*m, std::uint64_t lo, std::uint64_t hi) {
  return [m, lo, hi](Config& c, const json& v) -> Status {
    auto n = as_uint(v, hi);
    if (!n) return std::move(n.error());
    if (*n < lo) return make_error("must be at least " + std::to_string(lo));
    c.storage.*m = static_cast<T>(*n);
    return {};
  };
}

// A key whose value is a string (JSON string or override): set gets it, or fails.
Binder string_key(Status (*set)(Config&, std::string)) {
  return [set](Config& c, const json& v) -> Status {
    auto s = as_string(v);
    if (!s) return std::move(s.error());
    return set(c, std::move(*s));
  };
}

const std::map<std::string, Binder>& binders() {
  static const std::map<std::string, Binder> b = {
      {"hostname",
       string_key([](Config& c, std::string s) -> Status {
         if (auto st = check_hostname(s); !st) return st;
         c.hostname = s;
         return {};
       })},
      {"sprite_name",
       string_key([](Config& c, std::string s) -> Status {
         if (auto st = check_hostname(s); !st) return st;
         c.sprite_name = s;
         return {};
       })},
      {"org",
       string_key([](Config& c, std::string s) -> Status {
         if (auto st = check_hostname(s); !st) return st;  // a slug: the same rules as a host name
         c.org = s;
         return {};
       })},
      {"api.listen",
       string_key([](Config& c, std::string s) -> Status {
         auto l = parse_listen(s);
         if (!l) return std::move(l.error());
         c.api.listen = *l;
         return {};
       })},
      {"api.token",
       string_key([](Config& c, std::string s) -> Status {
         if (s.size() < 16) return make_error("must be at least 16 characters");
         c.api.token = s;
         return {};
       })},
      {"api.token_file",
       string_key([](Config& c, std::string s) -> Status {
         c.api.token_file = s;
         return {};
       })},
      {"api.max_sessions",
       [](Config& c, const json& v) -> Status {
         auto n = as_uint(v, 100000);
         if (!n || *n == 0) return n ? make_error("must be at least 1", EINVAL) : std::move(n.error());
         c.api.max_sessions = static_cast<std::uint32_t>(*n);
         return {};
       }},
      {"api.tls_cert",
       string_key([](Config& c, std::string s) -> Status {
         c.api.tls_cert = s;
         return {};
       })},
      {"api.tls_key",
       string_key([](Config& c, std::string s) -> Status {
         c.api.tls_key = s;
         return {};
       })},
      {"modules",
       [](Config& c, const json& v) -> Status {
         auto l = as_list(v);
         if (!l) return std::move(l.error());
         for (const auto& m : *l)
           for (char ch : m)
             if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-')
               return make_error("'" + m + "' is not a module name");
         c.modules = std::move(*l);
         return {};
       }},
      {"net.interface",
       string_key([](Config& c, std::string s) -> Status {
         if (s.size() >= 16) return make_error("interface names are at most 15 characters");
         c.net.interface = s;
         return {};
       })},
      {"net.address",
       string_key([](Config& c, std::string s) -> Status {
         if (!s.empty())
           if (auto st = check_cidr(s); !st) return st;
         c.net.address = s;
         return {};
       })},
      {"net.gateway",
       string_key([](Config& c, std::string s) -> Status {
         if (!s.empty() && !valid_ip(s)) return make_error("'" + s + "' is not an IP address");
         c.net.gateway = s;
         return {};
       })},
      {"base_image",
       string_key([](Config& c, std::string s) -> Status {
         if (!s.empty() && s.front() != '/') return make_error("must be an absolute path");
         c.base_image = s;
         return {};
       })},
      {"sprites.max",
       [](Config& c, const json& v) -> Status {
         auto n = as_uint(v, 10000);
         if (!n) return std::move(n.error());
         c.max_sprites = static_cast<std::uint32_t>(*n);
         return {};
       }},
      {"sprites.no_new_privs",
       [](Config& c, const json& v) -> Status {
         if (v.is_boolean()) {
           c.no_new_privs = v.get<bool>();
         } else if (v.is_string() && (v == "true" || v == "false")) {
           c.no_new_privs = v == "true";
         } else {
           return make_error("must be true or false");
         }
         return {};
       }},
      {"limits.memory_max", uint_field(&Config::Limits::memory_max)},
      {"limits.memory_swap_max", uint_field(&Config::Limits::memory_swap_max)},
      {"limits.pids_max", uint_field(&Config::Limits::pids_max)},
      {"limits.cpu_max",
       string_key([](Config& c, std::string s) -> Status {
         unsigned long long quota = 0, period = 0;
         char extra = 0;
         bool ok = s.empty() || std::sscanf(s.c_str(), "%llu %llu%c", &quota, &period, &extra) == 2 ||
                   std::sscanf(s.c_str(), "max %llu%c", &period, &extra) == 1;
         if (!ok) return make_error("must be \"QUOTA PERIOD\" or \"max PERIOD\" in microseconds");
         if (s.empty())
           c.limits.cpu_max.reset();
         else
           c.limits.cpu_max = s;
         return {};
       })},
      {"storage.object_store",
       string_key([](Config& c, std::string s) -> Status {
         if (!s.empty() && s.rfind("file:///", 0) != 0 && s.rfind("s3://", 0) != 0 && s.rfind("s3+http://", 0) != 0)
           return make_error("must be file:///DIR, s3://HOST/BUCKET[/PREFIX] or s3+http://HOST/BUCKET[/PREFIX]");
         c.storage.object_store = s;
         return {};
       })},
      {"storage.cache_disk",
       string_key([](Config& c, std::string s) -> Status {
         if (!s.empty() && s.rfind("/dev/", 0) != 0) return make_error("must be a device under /dev/, or empty");
         c.storage.cache_disk = s;
         return {};
       })},
      {"storage.durability",
       string_key([](Config& c, std::string s) -> Status {
         if (s != "strict" && s != "local") return make_error("must be strict or local");
         c.storage.durability = s;
         return {};
       })},
      {"storage.volume_size", storage_uint(&Config::Storage::volume_size, 64ull << 20, 1ull << 50)},
      {"storage.sync_interval_ms", storage_uint(&Config::Storage::sync_interval_ms, 1, 3600000)},
      {"storage.journal_limit", storage_uint(&Config::Storage::journal_limit, 1ull << 20, ~0ull)},
      {"storage.cache_limit", storage_uint(&Config::Storage::cache_limit, 1ull << 20, ~0ull)},
      {"storage.flush_timeout_ms", storage_uint(&Config::Storage::flush_timeout_ms, 100, 3600000)},
      {"storage.lease_ttl_ms", storage_uint(&Config::Storage::lease_ttl_ms, 600, 3600000)},
      {"storage.gc_interval_ms", storage_uint(&Config::Storage::gc_interval_ms, 10, 86400000)},
      {"storage.gc_grace_ms", storage_uint(&Config::Storage::gc_grace_ms, 0, 604800000)},
      {"storage.checkpoint_mounts", storage_uint(&Config::Storage::checkpoint_mounts, 0, 64)},
      {"storage.s3_access_key", string_key([](Config& c, std::string s) -> Status {
         c.storage.s3_access_key = s;
         return {};
       })},
      {"storage.s3_secret_key", string_key([](Config& c, std::string s) -> Status {
         c.storage.s3_secret_key = s;
         return {};
       })},
      {"storage.s3_secret_key_file", string_key([](Config& c, std::string s) -> Status {
         if (!s.empty() && s.front() != '/') return make_error("must be an absolute path");
         c.storage.s3_secret_key_file = s;
         return {};
       })},
      {"storage.s3_region", string_key([](Config& c, std::string s) -> Status {
         c.storage.s3_region = s;
         return {};
       })},
      {"log.level",
       string_key([](Config& c, std::string s) -> Status {
         if (!parse_level(s, c.log_level)) return make_error("must be debug, info, warn or error");
         return {};
       })},
      {"shutdown.timeout_ms",
       [](Config& c, const json& v) -> Status {
         auto n = as_uint(v, 600000);
         if (!n) return std::move(n.error());
         c.shutdown_timeout_ms = static_cast<std::uint32_t>(*n);
         return {};
       }},
  };
  return b;
}

}  // namespace

Result<ListenAddr> parse_listen(std::string_view s) {
  std::string host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return make_error("must be HOST:PORT, got '" + std::string(s) + "'");
    host = std::string(s.substr(1, close - 1));
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos)
      return make_error("must be HOST:PORT, got '" + std::string(s) + "'");
    host = std::string(s.substr(0, colon));
    port = s.substr(colon + 1);
  }
  if (!valid_ip(host)) return make_error("'" + host + "' is not an IP address");
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || port.empty() || p > 65535)
    return make_error("port must be 0 to 65535, got '" + std::string(port) + "'");
  return ListenAddr{host, static_cast<std::uint16_t>(p)};
}

Result<Config> parse_config(std::string_view json_text, const Overrides& overrides) {
  std::map<std::string, json> flat;
  if (!json_text.empty()) {
    json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return make_error("config: not valid JSON");
    if (!doc.is_object()) return make_error("config: must be a JSON object");
    flatten(doc, "", flat);
  }
  for (const auto& [k, v] : overrides) flat[k] = json(v);

  Config cfg;
  const auto& b = binders();
  for (const auto& [key, value] : flat) {
    auto it = b.find(key);
    if (it == b.end()) return make_error("config: " + key + ": unknown key");
    if (auto s = it->second(cfg, value); !s) return std::move(s.error()).wrap("config: " + key);
  }
  if (cfg.api.tls_cert.empty() != cfg.api.tls_key.empty())
    return make_error("config: api.tls_cert and api.tls_key go together: set both, or neither", EINVAL);
  return cfg;
}

}  // namespace bp::init
