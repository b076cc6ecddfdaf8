// api/sessions.hpp — the exec sessions in flight, for listing and killing (API.md 2.3, 2.4).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace bp::api {

class ExecSession;

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
  std::int64_t ended = 0;  // Unix seconds when it ended; kept a while after
  // The session itself, for attaching (WebSocket execs; HTTP execs have none). Only
  // used on the loop thread. Kept after the end only when the exit was not delivered.
  std::shared_ptr<ExecSession> live;
};

// Thread-safe: sessions update it on the loop, kill runs on the blocking pool.
class SessionTable {
 public:
  // Ids are never reused, not even across restarts once persist_ids() has named a
  // file (API.md 2.2): the file records a bound on the ids handed out so far.
  std::uint64_t next_id();
  void persist_ids(std::string path);
  // At most `limit` sessions run at once (0: no limit); full() says a new one would
  // exceed it. Each holds descriptors in PID 1 and a process in a sprite.
  void set_limit(std::size_t limit);
  bool full() const;
  std::size_t limit() const;
  void add(SessionInfo s);
  void activity(std::uint64_t id, std::size_t bytes);
  void exited(std::uint64_t id, int code);
  // The session has ended (its process, and the delivery of its output). Its entry
  // stays for kRetainSeconds (at most kMaxRetained of them), so a kill still learns
  // how it exited (410, API.md 2.4) and, with `keep`, a client can still attach to
  // read what it missed (2.2).
  void ended(std::uint64_t id, std::shared_ptr<ExecSession> keep);
  static constexpr std::int64_t kRetainSeconds = 300;
  static constexpr std::size_t kMaxRetained = 256;
  std::vector<SessionInfo> list(const std::string& sprite) const;
  std::optional<SessionInfo> get(const std::string& sprite, std::uint64_t id) const;
  // Sends sig to the session's process group unless it has exited (checked under the
  // lock, so a reaped process's pid is never signalled). False when it had exited.
  bool signal(const std::string& sprite, std::uint64_t id, int sig);

 private:
  mutable std::mutex mu_;
  void prune(std::int64_t now);
  std::uint64_t next_ = 1;
  std::size_t limit_ = 0;
  std::uint64_t reserved_ = 0;  // with a file: ids below this are recorded as used
  std::string ids_path_;
  std::map<std::uint64_t, SessionInfo> sessions_;
};

// The session list body: {"sessions":[...],"count":N}.
std::string sessions_json(const std::vector<SessionInfo>& list, std::int64_t now);

}  // namespace bp::api
