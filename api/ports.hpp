// api/ports.hpp — the TCP ports an exec session's processes listen on, read from /proc
// (API.md 2.1.6: port_opened / port_closed). Parsing is sans-io and unit-tested.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace bp::api {

struct Listener {
  std::uint16_t port = 0;
  std::string address;  // "0.0.0.0", "127.0.0.1", "::", ...
  std::uint64_t inode = 0;
};

// The LISTEN sockets in the text of /proc/PID/net/tcp (v6 = tcp6). Malformed lines are skipped.
std::vector<Listener> parse_proc_net_tcp(std::string_view text, bool v6);

struct OpenPort {
  std::uint16_t port = 0;
  std::string address;
  pid_t pid = 0;  // as the sprite sees it (its own pid namespace)
  bool operator<(const OpenPort& o) const {
    return port != o.port ? port < o.port : address != o.address ? address < o.address : pid < o.pid;
  }
  bool operator==(const OpenPort& o) const { return port == o.port && address == o.address && pid == o.pid; }
};

// The processes of every session, by session id, from one walk of /proc. Taken at most
// every `max_age_ms` and shared by all callers (loop thread only).
const std::map<pid_t, std::vector<pid_t>>& processes_by_session(int max_age_ms = 500);

// The TCP ports the given processes (one session, one network namespace) listen on.
std::vector<OpenPort> listening_ports(const std::vector<pid_t>& pids);

}  // namespace bp::api
