// api/ports.cpp — listening sockets of a session's processes, from /proc.
#include "api/ports.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

namespace bp::api {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool hex_u32(std::string_view s, std::uint32_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

// The kernel prints each 32-bit word of the address in host (little-endian) order.
std::string address_text(std::string_view hex, bool v6) {
  unsigned char b[16];
  std::size_t words = v6 ? 4 : 1;
  if (hex.size() != words * 8) return {};
  for (std::size_t w = 0; w < words; ++w) {
    std::uint32_t v = 0;
    if (!hex_u32(hex.substr(w * 8, 8), v)) return {};
    for (int i = 0; i < 4; ++i) b[w * 4 + i] = static_cast<unsigned char>(v >> (8 * i));
  }
  char buf[64];
  if (!v6) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    return buf;
  }
  // Plain (uncompressed) groups, with :: for all-zero and ::1 for loopback.
  bool zero = std::all_of(b, b + 16, [](unsigned char c) { return c == 0; });
  if (zero) return "::";
  if (std::all_of(b, b + 15, [](unsigned char c) { return c == 0; }) && b[15] == 1) return "::1";
  std::string out;
  for (int g = 0; g < 8; ++g) {
    std::snprintf(buf, sizeof buf, "%s%x", g ? ":" : "", (b[2 * g] << 8) | b[2 * g + 1]);
    out += buf;
  }
  return out;
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

// The pid in the innermost pid namespace (NSpid's last field), or 0.
pid_t inner_pid(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("NSpid:", 0) != 0) continue;
    auto fs = fields(std::string_view(line).substr(6));
    if (fs.empty()) return 0;
    pid_t p = 0;
    std::from_chars(fs.back().data(), fs.back().data() + fs.back().size(), p);
    return p;
  }
  return 0;
}

}  // namespace

std::vector<Listener> parse_proc_net_tcp(std::string_view text, bool v6) {
  std::vector<Listener> out;
  std::size_t pos = text.find('\n');  // the header line
  while (pos != std::string_view::npos && pos < text.size()) {
    std::size_t end = text.find('\n', pos + 1);
    std::string_view line = text.substr(pos + 1, end == std::string_view::npos ? std::string_view::npos : end - pos - 1);
    pos = end;
    auto f = fields(line);
    if (f.size() < 10 || f[3] != "0A") continue;  // 0A: TCP_LISTEN
    auto colon = f[1].find(':');
    if (colon == std::string_view::npos) continue;
    std::uint32_t port = 0;
    std::uint64_t inode = 0;
    if (!hex_u32(f[1].substr(colon + 1), port) || port == 0 || port > 65535) continue;
    auto [p, ec] = std::from_chars(f[9].data(), f[9].data() + f[9].size(), inode);
    if (ec != std::errc() || p != f[9].data() + f[9].size()) continue;
    std::string addr = address_text(f[1].substr(0, colon), v6);
    if (addr.empty()) continue;
    out.push_back({static_cast<std::uint16_t>(port), std::move(addr), inode});
  }
  return out;
}

const std::map<pid_t, std::vector<pid_t>>& processes_by_session(int max_age_ms) {
  static std::map<pid_t, std::vector<pid_t>> snapshot;
  static std::chrono::steady_clock::time_point taken;
  auto now = std::chrono::steady_clock::now();
  if (!snapshot.empty() && now - taken < std::chrono::milliseconds(max_age_ms)) return snapshot;
  snapshot.clear();
  taken = now;
  DIR* d = ::opendir("/proc");
  if (!d) return snapshot;
  while (dirent* e = ::readdir(d)) {
    pid_t pid = 0;
    std::string_view name(e->d_name);
    auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec != std::errc() || p != name.data() + name.size()) continue;
    std::string stat = read_file("/proc/" + std::string(name) + "/stat");
    // pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses.
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    auto f = fields(std::string_view(stat).substr(close + 1));
    if (f.size() < 4) continue;
    pid_t sid = 0;
    std::from_chars(f[3].data(), f[3].data() + f[3].size(), sid);
    if (sid > 0) snapshot[sid].push_back(pid);
  }
  ::closedir(d);
  return snapshot;
}

std::vector<OpenPort> listening_ports(const std::vector<pid_t>& pids) {
  std::map<std::uint64_t, pid_t> owner;  // socket inode -> a process holding it
  for (pid_t pid : pids) {
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d)) {
      char target[64];
      ssize_t n = ::readlinkat(::dirfd(d), e->d_name, target, sizeof target - 1);
      if (n <= 0) continue;
      std::string_view t(target, static_cast<std::size_t>(n));
      if (!t.starts_with("socket:[") || t.back() != ']') continue;
      std::uint64_t inode = 0;
      std::from_chars(t.data() + 8, t.data() + t.size() - 1, inode);
      owner.emplace(inode, pid);
    }
    ::closedir(d);
  }
  std::set<OpenPort> ports;
  if (owner.empty()) return {};
  // One network namespace for the whole session: read its tables through any member.
  std::string net = "/proc/" + std::to_string(pids.front()) + "/net/";
  for (bool v6 : {false, true}) {
    for (const auto& l : parse_proc_net_tcp(read_file(net + (v6 ? "tcp6" : "tcp")), v6)) {
      auto it = owner.find(l.inode);
      if (it == owner.end()) continue;
      pid_t inner = inner_pid(it->second);
      ports.insert({l.port, l.address, inner ? inner : it->second});
    }
  }
  return {ports.begin(), ports.end()};
}

}  // namespace bp::api
