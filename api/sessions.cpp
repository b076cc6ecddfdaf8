// api/sessions.cpp — the session table and its JSON.
#include "api/sessions.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/sprite_json.hpp"

namespace bp::api {

namespace {
constexpr std::uint64_t kIdBlock = 1024;  // ids reserved per write of the file

// Writes "N\n" to path through a temporary file and a rename: a crash leaves the old
// bound or the new one. The bound only grows, so a lost write at worst reuses nothing
// but skips a block.
bool write_bound(const std::string& path, std::uint64_t n) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << n << "\n";
    if (!f.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}
}  // namespace

std::uint64_t SessionTable::next_id() {
  std::lock_guard lk(mu_);
  if (!ids_path_.empty() && next_ >= reserved_) {
    // Rare (once per block) and small: fine on the loop thread.
    if (write_bound(ids_path_, next_ + kIdBlock)) reserved_ = next_ + kIdBlock;
  }
  return next_++;
}

void SessionTable::persist_ids(std::string path) {
  std::lock_guard lk(mu_);
  std::uint64_t bound = 0;
  if (std::ifstream f(path); f) f >> bound;
  if (bound > next_) next_ = bound;  // everything below the old bound may have been handed out
  ids_path_ = std::move(path);
  reserved_ = 0;  // the next id writes a new bound first
}

void SessionTable::set_limit(std::size_t limit) {
  std::lock_guard lk(mu_);
  limit_ = limit;
}

std::size_t SessionTable::limit() const {
  std::lock_guard lk(mu_);
  return limit_;
}

bool SessionTable::full() const {
  std::lock_guard lk(mu_);
  if (!limit_) return false;
  std::size_t running = 0;
  for (const auto& [_, s] : sessions_) running += !s.ended && !s.exited;  // a process still runs
  return running >= limit_;
}

void SessionTable::prune(std::int64_t now) {
  std::erase_if(sessions_, [&](const auto& kv) { return kv.second.ended && now - kv.second.ended > kRetainSeconds; });
  std::size_t ended = 0;
  for (const auto& [_, s] : sessions_) ended += s.ended != 0;
  // Oldest first (ids grow with time): drop ended entries beyond the cap.
  for (auto it = sessions_.begin(); ended > kMaxRetained && it != sessions_.end();) {
    if (it->second.ended) {
      it = sessions_.erase(it);
      --ended;
    } else {
      ++it;
    }
  }
}

void SessionTable::add(SessionInfo s) {
  std::lock_guard lk(mu_);
  prune(std::time(nullptr));
  std::uint64_t id = s.id;
  sessions_[id] = std::move(s);
}

void SessionTable::activity(std::uint64_t id, std::size_t bytes) {
  std::lock_guard lk(mu_);
  if (auto it = sessions_.find(id); it != sessions_.end()) {
    it->second.bytes += bytes;
    it->second.last_activity = std::time(nullptr);
  }
}

void SessionTable::exited(std::uint64_t id, int code) {
  std::lock_guard lk(mu_);
  if (auto it = sessions_.find(id); it != sessions_.end()) {
    it->second.exited = true;
    it->second.exit_code = code;
  }
}

void SessionTable::ended(std::uint64_t id, std::shared_ptr<ExecSession> keep) {
  std::shared_ptr<ExecSession> dropped;  // released outside the lock
  std::lock_guard lk(mu_);
  if (auto it = sessions_.find(id); it != sessions_.end()) {
    it->second.ended = std::time(nullptr);
    dropped = std::move(it->second.live);
    it->second.live = std::move(keep);
  }
  prune(std::time(nullptr));
}

std::vector<SessionInfo> SessionTable::list(const std::string& sprite) const {
  std::lock_guard lk(mu_);
  std::vector<SessionInfo> out;
  for (const auto& [_, s] : sessions_)
    if (s.sprite == sprite && !s.exited) out.push_back(s);  // detached ones too
  return out;
}

std::optional<SessionInfo> SessionTable::get(const std::string& sprite, std::uint64_t id) const {
  std::lock_guard lk(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.sprite != sprite) return std::nullopt;
  return it->second;
}

bool SessionTable::signal(const std::string& sprite, std::uint64_t id, int sig) {
  std::lock_guard lk(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.sprite != sprite || it->second.exited || it->second.pid <= 0) return false;
  ::kill(-it->second.pid, sig);
  return true;
}


std::string sessions_json(const std::vector<SessionInfo>& list, std::int64_t now) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& s : list) {
    std::int64_t age = now - s.created > 0 ? now - s.created : 1;
    nlohmann::json j{{"id", std::to_string(s.id)},
                     {"command", s.command},
                     {"workdir", s.workdir},
                     {"created", rfc3339(s.created)},
                     {"tty", s.tty},
                     {"is_active", s.last_activity && now - s.last_activity <= 5},
                     {"bytes_per_second", static_cast<double>(s.bytes) / static_cast<double>(age)}};
    if (s.last_activity) j["last_activity"] = rfc3339(s.last_activity);
    arr.push_back(std::move(j));
  }
  nlohmann::json body{{"sessions", arr}, {"count", list.size()}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace bp::api
