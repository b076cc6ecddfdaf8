// api/sessions.hpp — the exec sessions in flight, for listing and killing (API.md 2.3, 2.4).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace bp::api {

struct SessionInfo {
  std::uint64_t id = 0;
  std::string sprite;
  std::string command;
  std::string workdir;
  std::int64_t created = 0;        // Unix seconds
  std::int64_t last_activity = 0;  // Unix seconds
  std::uint64_t bytes = 0;         // output so far
  bool tty = false;
  pid_t pid = -1;                  // leader of the session's process group
  bool exited = false;
  int exit_code = -1;
  std::int64_t ended = 0;  // Unix seconds when its connection ended; kept a while after
};

// Thread-safe: sessions update it on the loop, kill runs on the blocking pool.
class SessionTable {
 public:
  std::uint64_t next_id();
  void add(SessionInfo s);
  void activity(std::uint64_t id, std::size_t bytes);
  void exited(std::uint64_t id, int code);
  // The session's connection has ended. Its entry stays for kRetainSeconds, so a kill
  // still learns how it exited (410 once exited, API.md 2.4).
  void remove(std::uint64_t id);
  static constexpr std::int64_t kRetainSeconds = 300;
  std::vector<SessionInfo> list(const std::string& sprite) const;
  std::optional<SessionInfo> get(const std::string& sprite, std::uint64_t id) const;
  // Sends sig to the session's process group unless it has exited (checked under the
  // lock, so a reaped process's pid is never signalled). False when it had exited.
  bool signal(const std::string& sprite, std::uint64_t id, int sig);

 private:
  mutable std::mutex mu_;
  std::uint64_t next_ = 1;
  std::map<std::uint64_t, SessionInfo> sessions_;
};

// The session list body: {"sessions":[...],"count":N}.
std::string sessions_json(const std::vector<SessionInfo>& list, std::int64_t now);

}  // namespace bp::api
