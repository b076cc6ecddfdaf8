// api/sessions.cpp — the session table and its JSON.
#include "api/sessions.hpp"

#include <signal.h>

#include <ctime>
#include <nlohmann/json.hpp>

namespace bp::api {

std::uint64_t SessionTable::next_id() {
  std::lock_guard lk(mu_);
  return next_++;
}

void SessionTable::add(SessionInfo s) {
  std::lock_guard lk(mu_);
  std::int64_t now = std::time(nullptr);
  std::erase_if(sessions_, [&](const auto& kv) { return kv.second.ended && now - kv.second.ended > kRetainSeconds; });
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

void SessionTable::remove(std::uint64_t id) {
  std::lock_guard lk(mu_);
  if (auto it = sessions_.find(id); it != sessions_.end()) {
    it->second.ended = std::time(nullptr);
    // A connection can end before its process does (after the linger kill, say):
    // then only the exit callback, later, marks it exited.
  }
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

namespace {
std::string rfc3339(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}
}  // namespace

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
