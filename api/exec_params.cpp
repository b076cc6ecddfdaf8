// api/exec_params.cpp — exec query parsing, Go durations, signal names.
#include "api/exec_params.hpp"

#include <signal.h>
#include <string.h>

#include <cctype>
#include <charconv>
#include <cerrno>

namespace bp::api {

std::int64_t parse_go_duration_ms(std::string_view s) {
  if (s == "0") return 0;
  if (s.empty()) return -1;
  double total = 0;
  while (!s.empty()) {
    std::size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == 0) return -1;
    double n = 0;
    try {
      n = std::stod(std::string(s.substr(0, i)));
    } catch (...) {
      return -1;
    }
    s.remove_prefix(i);
    std::size_t u = 0;
    while (u < s.size() && std::isalpha(static_cast<unsigned char>(s[u]))) ++u;
    std::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    if (unit == "ms") total += n;
    else if (unit == "s") total += n * 1000;
    else if (unit == "m") total += n * 60000;
    else if (unit == "h") total += n * 3600000;
    else if (unit == "us" || unit == "µs") total += n / 1000;
    else if (unit == "ns") total += n / 1e6;
    else return -1;
  }
  // Beyond a century it is not a duration anyone means (and would overflow below).
  constexpr double kMaxMs = 100.0 * 365 * 24 * 3600 * 1000;
  if (!(total <= kMaxMs)) return -1;
  return static_cast<std::int64_t>(total);
}

int parse_signal(std::string_view s) {
  if (s.empty()) return 0;
  int n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  // Standard signals only: 32 and up are glibc's own or real-time, with no name to report.
  if (ec == std::errc() && p == s.data() + s.size()) return n > 0 && n < 32 ? n : 0;
  std::string up;
  for (char c : s) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (up.rfind("SIG", 0) == 0) up.erase(0, 3);
  for (int sig = 1; sig < 32; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev && up == abbrev) return sig;
  }
  return 0;
}

Result<ExecParams> parse_exec_params(const Query& q) {
  ExecParams p;
  p.argv = query_all(q, "cmd");
  if (p.argv.empty()) p.argv = query_all(q, "cmd[]");
  auto path = query_get(q, "path");
  if (p.argv.empty() && !path) return make_error("exec needs cmd (the argv) or path", EINVAL);
  p.path = path ? *path : p.argv[0];
  if (p.path.empty()) return make_error("exec: empty command", EINVAL);
  if (p.argv.empty()) p.argv.push_back(p.path);
  p.tty = query_bool(q, "tty", false);
  p.stdin = query_bool(q, "stdin", p.tty);
  for (auto [key, field] : {std::pair<const char*, std::uint16_t*>{"rows", &p.rows}, {"cols", &p.cols}}) {
    auto v = query_get(q, key);
    if (!v) continue;
    unsigned n = 0;
    auto [e, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc() || e != v->data() + v->size() || n == 0 || n > 65535)
      return make_error(std::string(key) + " must be 1 to 65535", EINVAL);
    *field = static_cast<std::uint16_t>(n);
  }
  p.env = query_all(q, "env");
  p.env_given = !p.env.empty();
  for (const auto& e : p.env)
    if (e.find('=') == std::string::npos || e.front() == '=')
      return make_error("env entries must be KEY=VALUE, got '" + e + "'", EINVAL);
  if (auto d = query_get(q, "dir"); d && !d->empty()) p.dir = *d;
  if (p.dir.front() != '/') return make_error("dir must be an absolute path", EINVAL);
  if (auto m = query_get(q, "max_run_after_disconnect")) {
    p.max_run_after_disconnect_ms = parse_go_duration_ms(*m);
    if (p.max_run_after_disconnect_ms < 0) return make_error("max_run_after_disconnect: not a duration", EINVAL);
  }
  if (query_bool(q, "detachable", false)) p.max_run_after_disconnect_ms = 0;
  return p;
}

std::vector<std::string> exec_environment(const ExecParams& p) {
  std::vector<std::string> env;
  if (p.env_given) {
    env = p.env;
  } else {
    env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "USER=root",
           "LOGNAME=root", "SHELL=/bin/sh", "LANG=C.UTF-8"};
  }
  if (p.tty) {
    bool has_term = false;
    for (const auto& e : env) has_term |= e.rfind("TERM=", 0) == 0;
    if (!has_term) env.push_back("TERM=xterm-256color");
  }
  return env;
}

}  // namespace bp::api
