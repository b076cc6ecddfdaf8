// api/router.cpp — request dispatch; one function per API area.
#include "api/router.hpp"

#include "agent/registry.hpp"
#include "api/auth.hpp"
#include "api/errors.hpp"
#include "api/exec_params.hpp"
#include "api/query.hpp"
#include "api/sessions.hpp"
#include "api/sprite_json.hpp"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

namespace bp::api {

namespace {

// The name in a create request: {"name": "..."}; other fields are accepted and ignored.
Result<std::string> create_request_name(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("request body must be a JSON object");
  auto it = j.find("name");
  if (it == j.end() || !it->is_string()) return make_error("\"name\" (a string) is required");
  return it->get<std::string>();
}

// API.md 3.12: a VM hosts one sprite; the control plane creates and deletes.
Response single_sprite_refusal() {
  return json_error(501, "not_supported",
                    "this ballpoint instance hosts a single sprite; sprites are created and deleted by the control "
                    "plane");
}

std::string check_json(const std::string& name, const std::string& id, const char* status, const std::string& reason,
                       std::int64_t elapsed_ms) {
  char ts[32];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  nlohmann::json j{{"sprite_name", name}, {"sprite_id", id},        {"status", status},
                   {"checked_at", ts},    {"elapsed", elapsed_ms}, {"reason", nullptr}};
  if (!reason.empty()) j["reason"] = reason;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response method_not_allowed(std::string_view allow) {
  Response r = json_error(405, "method_not_allowed", "method not allowed; allowed: " + std::string(allow));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

}  // namespace

std::optional<std::vector<std::string>> split_path(std::string_view target) {
  auto q = target.find_first_of("?#");
  std::string_view path = target.substr(0, q);
  if (path.empty() || path.front() != '/') return std::nullopt;
  std::vector<std::string> out;
  std::size_t i = 1;
  while (i <= path.size()) {
    auto slash = path.find('/', i);
    if (slash == std::string_view::npos) slash = path.size();
    auto seg = percent_decode(path.substr(i, slash - i), false);
    if (!seg || seg->find('/') != std::string::npos || seg->find('\0') != std::string::npos) return std::nullopt;
    // "/v1/sprites/" names the collection, as "/v1/sprites" does.
    if (!(seg->empty() && slash == path.size() && !out.empty())) out.push_back(std::move(*seg));
    i = slash + 1;
  }
  return out;
}

bool valid_sprite_name(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

Router::Router(RouterConfig cfg, const agent::Registry& registry, agent::SpriteControl* control,
               SessionTable* sessions)
    : cfg_(std::move(cfg)), registry_(registry), control_(control), sessions_(sessions) {}

Response Router::handle(const Request& req) const {
  Routed r = route(req);
  if (r.streaming) {
    std::string body;
    Response res = r.streaming([&](std::string line) { body += line; });
    if (body.empty()) return res;
    Response s;
    s.content_type = "application/x-ndjson";
    s.body = std::move(body);
    return s;
  }
  return r.blocking ? r.blocking() : std::move(r.response);
}

Routed Router::route(const Request& req) const {
  // Authentication comes before anything else can be learned or changed (API.md 1.2).
  if (!authorized(req.authorization, cfg_.token))
    return {json_error(401, "unauthorized", "missing or invalid token")};

  auto seg = split_path(req.target);
  if (!seg) return {json_error(400, "bad_request", "malformed request path")};
  const auto& s = *seg;
  if (s.size() >= 2 && s[0] == "v1" && s[1] == "sprites") {
    if (s.size() == 2) return sprites_collection(req);
    return sprite_item(req, s);
  }
  // API.md 3.11: the local organization, with real counts.
  if (s.size() == 2 && s[0] == "v1" && s[1] == "organization") {
    if (req.method != "GET" && req.method != "HEAD") return {method_not_allowed("GET, HEAD")};
    Response r;
    r.body = organization_json(cfg_.org, registry_.list(), cfg_.max_sprites);
    return {r};
  }
  // API.md 3.10: tokens are minted with the runtime (its token file), not from Fly macaroons.
  if (s.size() == 4 && s[0] == "v1" && s[1] == "organizations" && s[3] == "tokens") {
    if (req.method != "POST") return {method_not_allowed("POST")};
    return {json_error(501, "not_supported",
                       "this ballpoint runtime has one API token, in its state directory; it mints no others")};
  }
  return {json_error(404, "not_found", "no such endpoint")};
}

bool Router::is_watch(const Request& req) {
  auto s = split_path(req.target);
  return req.method == "GET" && s && s->size() == 2 && (*s)[0] == "v1" && (*s)[1] == "sprites" &&
         req.accept.find("application/x-ndjson") != std::string::npos;
}

std::optional<Response> Router::refuse_watch(const Request& req) const {
  if (!authorized(req.authorization, cfg_.token)) return json_error(401, "unauthorized", "missing or invalid token");
  return std::nullopt;
}

namespace {

// A SpriteControl failure as the API reports it (API.md 3.2, 3.6, 3.12).
Response control_error(const Error& e) {
  switch (e.code) {
    case EEXIST: return json_error(409, "sprite_exists", e.what);
    case EINVAL: return json_error(400, "invalid_name", e.what);
    case ENOENT: return json_error(404, "not_found", e.what);
    case EBUSY: return json_error(409, "sprite_busy", e.what);
    case EAGAIN: return json_error(429, "concurrent_sprite_limit_exceeded", e.what);
    case EUNATCH: return json_error(503, "no_base_image", e.what);
    case ENOTSUP: return json_error(501, "not_supported", e.what);
    case ESRCH: return json_error(503, "unavailable", e.what);
    default: return json_error(500, "internal_error", e.what);
  }
}

nlohmann::json checkpoint_json(const agent::CheckpointRecord& c) {
  return {{"id", c.id},           {"create_time", c.create_time}, {"source_id", c.source_id}, {"comment", c.comment},
          {"history", c.history}, {"is_auto", c.is_auto},         {"health", ""}};
}

// An NDJSON progress stream (API.md 1.6, 2.10), sent as the work goes.
struct Events {
  const Emit& emit;
  void add(nlohmann::json j) {
    j["time"] = rfc3339(std::time(nullptr));
    emit(j.dump() + "\n");
  }
  void info(const std::string& text) { add({{"type", "info"}, {"data", text}}); }
};

}  // namespace

Routed Router::sprites_collection(const Request& req) const {
  if (req.method == "GET" || req.method == "HEAD") {
    // API.md 3.3: prefix, max_results (1-50, clamped), an opaque continuation token
    // (the last name of the previous page: names are listed in order).
    auto q = parse_query(req.target).value_or(Query{});
    std::string prefix = query_get(q, "prefix").value_or("");
    std::string after = query_get(q, "continuation_token").value_or("");
    long max = 50;
    if (auto m = query_get(q, "max_results")) {
      char* end = nullptr;
      long n = std::strtol(m->c_str(), &end, 10);
      if (m->empty() || *end) return {json_error(400, "bad_request", "max_results must be a number")};
      max = std::clamp(n, 1L, 50L);
    }
    auto all = registry_.list();
    std::vector<agent::SpriteRecord> page;
    std::optional<std::string> next;
    for (const auto& rec : all) {
      if (!rec.name.starts_with(prefix) || (!after.empty() && rec.name <= after)) continue;
      if (static_cast<long>(page.size()) == max) {
        next = page.back().name;
        break;
      }
      page.push_back(rec);
    }
    Response r;
    r.body = sprite_list_json(page, cfg_.org, cfg_.base_url, cfg_.machine, org_counts(all, cfg_.max_sprites), next);
    return {r};
  }
  if (req.method == "POST") {
    if (!control_ || control_->single_sprite()) return {single_sprite_refusal()};
    auto name = create_request_name(req.body);
    if (!name) return {json_error(400, "bad_request", name.error().what)};
    if (!valid_sprite_name(*name))
      return {json_error(400, "invalid_name",
                         "sprite names are 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'")};
    if (registry_.get(*name)) return {json_error(409, "sprite_exists", "sprite '" + *name + "' already exists")};
    return {{}, [this, n = *name]() -> Response {
              auto rec = control_->create(n);
              if (!rec) return control_error(rec.error());
              Response r;
              r.status = 201;
              r.body = sprite_json(*rec, cfg_.org, cfg_.base_url, cfg_.machine);
              return r;
            }};
  }
  return {method_not_allowed("GET, HEAD, POST")};
}

Routed Router::sprite_item(const Request& req, const std::vector<std::string>& s) const {
  const std::string& name = s[2];
  if (!valid_sprite_name(name))
    return {json_error(400, "invalid_name",
                       "sprite names are 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'")};
  auto rec = registry_.get(name);
  if (!rec) return {json_error(404, "not_found", "sprite '" + name + "' not found")};
  if (s.size() == 3) {
    if (req.method == "GET" || req.method == "HEAD") {
      Response r;
      r.body = sprite_json(*rec, cfg_.org, cfg_.base_url, cfg_.machine,
                           control_ ? control_->disk_used(name) : std::nullopt,
                           control_ ? control_->disk_health(name) : std::nullopt);
      return {r};
    }
    if (req.method == "DELETE") {
      if (!control_ || control_->single_sprite()) return {single_sprite_refusal()};
      return {{}, [this, name]() -> Response {
                if (auto st = control_->destroy(name); !st) return control_error(st.error());
                Response r;
                r.status = 204;
                return r;
              }};
    }
    if (req.method == "PUT") {
      if (!control_) return {json_error(501, "not_supported", "this ballpoint instance runs no sprites")};
      auto j = nlohmann::json::parse(req.body, nullptr, false);
      if (!j.is_object()) return {json_error(400, "bad_request", "request body must be a JSON object")};
      std::optional<std::vector<std::string>> labels;
      std::optional<std::string> auth;
      if (j.contains("labels")) {
        if (!j["labels"].is_array()) return {json_error(400, "bad_request", "labels must be a list of strings")};
        labels.emplace();
        for (const auto& l : j["labels"]) {
          if (!l.is_string() || l.get<std::string>().empty() || l.get<std::string>().size() > 63)
            return {json_error(400, "bad_request", "labels are strings of 1 to 63 characters")};
          labels->push_back(l.get<std::string>());
        }
      }
      if (j.contains("clear_labels") && j["clear_labels"] == true) labels.emplace();
      if (j.contains("url_settings")) {
        const auto& us = j["url_settings"];
        if (!us.is_object() || (us.contains("auth") && us["auth"] != "sprite" && us["auth"] != "public"))
          return {json_error(400, "bad_request", "url_settings.auth must be \"sprite\" or \"public\"")};
        if (us.contains("auth")) auth = us["auth"].get<std::string>();
      }
      if (!labels && !auth) return {json_error(400, "bad_request", "nothing to update: give labels or url_settings")};
      return {{}, [this, name, labels, auth]() -> Response {
                auto rec = control_->update(name, labels, auth);
                if (!rec) return control_error(rec.error());
                Response r;
                r.body = sprite_json(*rec, cfg_.org, cfg_.base_url, cfg_.machine);
                return r;
              }};
    }
    return {method_not_allowed("GET, HEAD, PUT, DELETE")};
  }
  if (s.size() == 4 && s[3] == "restart") {
    if (req.method != "POST") return {method_not_allowed("POST")};
    if (!control_) return {json_error(501, "not_supported", "this ballpoint instance runs no sprites")};
    return {{}, [this, name, id = rec->id]() -> Response {
              if (auto st = control_->restart(name); !st) return control_error(st.error());
              Response r;
              r.body = nlohmann::json{{"sprite_name", name}, {"machine_id", id}, {"message", "restarting"}}.dump();
              return r;
            }};
  }
  if (s.size() == 4 && s[3] == "check") {
    if (req.method != "GET" && req.method != "HEAD") return {method_not_allowed("GET, HEAD")};
    if (!control_) return {json_error(501, "not_supported", "this ballpoint instance runs no sprites")};
    return {{}, [this, name, id = rec->id]() -> Response {
              auto ms = control_->check(name);
              // A sprite whose container is stopped sleeps; one that fails the probe is unhealthy.
              const char* status = ms ? "healthy" : ms.error().code == ESRCH ? "hibernated" : "unhealthy";
              Response r;
              r.body = check_json(name, id, status, ms ? "" : ms.error().what, ms ? *ms : 0);
              return r;
            }};
  }
  if (s.size() >= 4 && s[3] == "exec") return exec_sessions(req, s);
  if (s.size() >= 4 && (s[3] == "checkpoint" || s[3] == "checkpoints")) return checkpoints(req, s);
  return {json_error(404, "not_found", "no such endpoint")};
}

// API.md 2.10. Everything touching the disk runs on the blocking pool: a checkpoint
// waits for uploads, a restore stops and starts the container.
Routed Router::checkpoints(const Request& req, const std::vector<std::string>& s) const {
  const std::string& name = s[2];
  if (!control_) return {json_error(501, "not_supported", "this ballpoint instance runs no sprites")};
  if (s.size() == 4 && s[3] == "checkpoint") {
    if (req.method != "POST") return {method_not_allowed("POST")};
    std::string comment;
    if (!req.body.empty()) {
      auto j = nlohmann::json::parse(req.body, nullptr, false);
      if (!j.is_object()) return {json_error(400, "bad_request", "request body must be a JSON object")};
      if (j.contains("comment")) {
        if (!j["comment"].is_string() || j["comment"].get<std::string>().size() > 4096)
          return {json_error(400, "bad_request", "comment must be a string of at most 4096 bytes")};
        comment = j["comment"].get<std::string>();
      }
    }
    Routed r;
    r.streaming = [this, name, comment](const Emit& emit) -> Response {
      // A failure before any progress (an unknown sprite, no disk) is a plain error answer.
      bool sent = false;
      Events ev{emit};
      auto c = control_->checkpoint(name, comment, [&](const std::string& line) {
        sent = true;
        ev.info(line);
      });
      if (!c && !sent) return control_error(c.error());
      if (!c)
        ev.add({{"type", "error"}, {"error", "Checkpoint failed: " + c.error().what}});
      else
        ev.add({{"type", "complete"}, {"data", "Checkpoint " + c->id + " created"}, {"id", c->id}});
      return {};
    };
    return r;
  }
  if (s[3] != "checkpoints" || s.size() > 6 || (s.size() == 6 && s[5] != "restore"))
    return {json_error(404, "not_found", "no such endpoint")};
  if (s.size() == 4) {
    if (req.method != "GET" && req.method != "HEAD") return {method_not_allowed("GET, HEAD")};
    auto q = parse_query(req.target).value_or(Query{});
    auto history = query_get(q, "history");
    bool include_auto = query_get(q, "includeAuto").value_or("") == "true";
    return {{}, [this, name, history, include_auto]() -> Response {
              auto all = control_->checkpoints(name);
              if (!all) return control_error(all.error());
              auto list = nlohmann::json::array();
              for (const auto& c : *all) {
                if (c.is_auto && !include_auto) continue;
                if (history && std::find(c.history.begin(), c.history.end(), *history) == c.history.end()) continue;
                list.push_back(checkpoint_json(c));
              }
              Response r;
              r.body = list.dump();
              return r;
            }};
  }
  const std::string& id = s[4];
  if (s.size() == 5) {
    if (req.method == "GET" || req.method == "HEAD")
      return {{}, [this, name, id]() -> Response {
                auto all = control_->checkpoints(name);
                if (!all) return control_error(all.error());
                for (const auto& c : *all)
                  if (c.id == id) {
                    Response r;
                    r.body = checkpoint_json(c).dump();
                    return r;
                  }
                return json_error(404, "not_found", "Checkpoint not found");
              }};
    if (req.method == "DELETE")
      return {{}, [this, name, id]() -> Response {
                auto st = control_->delete_checkpoint(name, id);
                if (!st && st.error().code == ENOENT) return json_error(404, "not_found", "Checkpoint not found");
                if (!st && st.error().code == EBUSY) return json_error(409, "conflict", st.error().what);
                if (!st) return control_error(st.error());
                Response r;
                r.status = 204;
                return r;
              }};
    return {method_not_allowed("GET, HEAD, DELETE")};
  }
  if (req.method != "POST") return {method_not_allowed("POST")};
  Routed r;
  r.streaming = [this, name, id](const Emit& emit) -> Response {
    auto all = control_->checkpoints(name);
    if (!all) return control_error(all.error());
    if (id == "Current" || std::none_of(all->begin(), all->end(), [&](const auto& c) { return c.id == id; }))
      return json_error(404, "not_found", "Checkpoint not found");
    Events ev{emit};
    ev.info("Restoring from checkpoint " + id + "...");
    auto kept = control_->restore(name, id, [&](const std::string& line) { ev.info(line); });
    if (!kept) {
      ev.add({{"type", "error"}, {"error", "Restore failed: " + kept.error().what}});
    } else {
      ev.info("The state before the restore is kept as checkpoint " + kept->id);
      ev.add({{"type", "complete"}, {"data", "Restore from " + id + " complete"}, {"id", id}});
    }
    return {};
  };
  return r;
}

// GET /exec lists sessions (API.md 2.3); POST /exec/{id}/kill ends one (2.4).
Routed Router::exec_sessions(const Request& req, const std::vector<std::string>& s) const {
  const std::string& sprite = s[2];
  auto q = parse_query(req.target).value_or(Query{});
  if (s.size() == 4) {
    if (req.method == "HEAD") return {Response{}};  // the Go SDK's Sprite-Version probe
    if (req.method != "GET") return {method_not_allowed("GET, HEAD")};
    if (query_get(q, "cmd")) return {json_error(400, "upgrade_required", "exec with cmd is a WebSocket endpoint")};
    Response r;
    r.body = sessions_json(sessions_ ? sessions_->list(sprite) : std::vector<SessionInfo>{}, std::time(nullptr));
    return {r};
  }
  if (s.size() == 6 && s[5] == "kill" && req.method != "POST") return {method_not_allowed("POST")};
  // POST .../kill streams: the server takes it before route() (kill_request()).
  return {json_error(404, "not_found", "no such endpoint")};
}

bool Router::is_kill(const Request& req) {
  auto s = split_path(req.target);
  return req.method == "POST" && s && s->size() == 6 && (*s)[0] == "v1" && (*s)[1] == "sprites" &&
         (*s)[3] == "exec" && (*s)[5] == "kill";
}

std::variant<Response, KillRequest> Router::kill_request(const Request& req) const {
  if (!authorized(req.authorization, cfg_.token)) return json_error(401, "unauthorized", "missing or invalid token");
  auto seg = split_path(req.target);
  if (!seg || seg->size() != 6) return json_error(404, "not_found", "no such endpoint");
  const auto& s = *seg;
  const std::string& sprite = s[2];
  if (!valid_sprite_name(sprite) || !registry_.get(sprite))
    return json_error(404, "not_found", "sprite '" + sprite + "' not found");
  auto q = parse_query(req.target).value_or(Query{});
  std::uint64_t id = 0;
  auto [p, ec] = std::from_chars(s[4].data(), s[4].data() + s[4].size(), id);
  auto session = ec == std::errc() && p == s[4].data() + s[4].size() && sessions_ ? sessions_->get(sprite, id)
                                                                                    : std::nullopt;
  if (!session) return json_error(404, "not_found", "session '" + s[4] + "' not found");
  if (session->exited) return json_error(410, "session_exited", "session " + s[4] + " has already exited");
  // Query parameters (JS, Go) or a JSON body with integer seconds (Python).
  KillRequest k{sprite, id, 0, 10000};
  std::string sig_name = query_get(q, "signal").value_or("SIGTERM");
  if (auto t = query_get(q, "timeout")) k.timeout_ms = parse_go_duration_ms(*t);
  if (auto j = nlohmann::json::parse(req.body, nullptr, false); j.is_object()) {
    if (j.contains("signal") && j["signal"].is_string()) sig_name = j["signal"];
    if (j.contains("timeout") && j["timeout"].is_number_unsigned())
      k.timeout_ms = static_cast<std::int64_t>(std::min<std::uint64_t>(j["timeout"].get<std::uint64_t>(), 3600) * 1000);
  }
  constexpr std::int64_t kMaxKillWaitMs = 3600 * 1000;
  k.timeout_ms = std::min(k.timeout_ms, kMaxKillWaitMs);
  k.signal = parse_signal(sig_name);
  if (!k.signal || k.timeout_ms < 0) return json_error(400, "bad_request", "unknown signal or malformed timeout");
  return k;
}

std::variant<Response, WsRoute> Router::route_upgrade(const Request& req) const {
  if (!authorized(req.authorization, cfg_.token)) return json_error(401, "unauthorized", "missing or invalid token");
  auto seg = split_path(req.target);
  if (!seg) return json_error(400, "bad_request", "malformed request path");
  const auto& s = *seg;
  if (s.size() < 3 || s[0] != "v1" || s[1] != "sprites") return json_error(404, "not_found", "no such endpoint");
  if (!valid_sprite_name(s[2]) || !registry_.get(s[2]))
    return json_error(404, "not_found", "sprite '" + s[2] + "' not found");
  if (s.size() == 4 && s[3] == "control") return WsRoute{s[2], WsRoute::control, 0};
  if (s.size() < 4 || s.size() > 5 || s[3] != "exec") return json_error(404, "not_found", "no such WebSocket endpoint");
  // Attach: /exec/{id} or the legacy /exec?id={id} (API.md 2.2); unknown ids get 404
  // before any upgrade.
  std::optional<std::string> id_text;
  if (s.size() == 5) id_text = s[4];
  else id_text = query_get(parse_query(req.target).value_or(Query{}), "id");
  if (!id_text) return WsRoute{s[2], WsRoute::exec, 0};
  std::uint64_t id = 0;
  auto [p, ec] = std::from_chars(id_text->data(), id_text->data() + id_text->size(), id);
  bool digits = !id_text->empty() && ec == std::errc() && p == id_text->data() + id_text->size();
  auto session = digits && sessions_ ? sessions_->get(s[2], id) : std::nullopt;
  if (!session || !session->live) return json_error(404, "not_found", "session '" + *id_text + "' not found");
  return WsRoute{s[2], WsRoute::attach, id};
}

}  // namespace bp::api
