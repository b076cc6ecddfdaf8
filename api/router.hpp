// api/router.hpp — maps a Request to a Response: auth, path decoding, the routes of each API area.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <string_view>
#include <vector>

#include "api/http_types.hpp"
#include "api/sprite_json.hpp"

namespace bp::agent {
class Registry;
class SpriteControl;
}

namespace bp::api {
class SessionTable;
}

namespace bp::api {

struct RouterConfig {
  std::string token;
  std::string org = "local";
  std::string version;   // Sprite-Version
  std::string base_url;  // this server's URL, reported as a sprite's url
  int max_sprites = 0;   // the running limit reported with the list and organization
  Machine machine;       // a sprite's config: ram_mb, cpus
};

// Sends one line of a streamed answer; called from the blocking pool.
using Emit = std::function<void(std::string line)>;

// What routing decided: a response now, or blocking work (creating or destroying a
// sprite) that the server runs on its blocking pool and whose result is the response,
// or blocking work whose answer streams: the lines it emits go out as they come (200
// NDJSON, the headers with the first line); if it emits none, its Response is the answer.
struct Routed {
  Response response;
  std::function<Response()> blocking;
  std::function<Response(const Emit&)> streaming;
};

// Splits the path part of a target on '/' and percent-decodes each segment
// (API.md 1.1). nullopt on a malformed escape or a decoded '/' or NUL.
std::optional<std::vector<std::string>> split_path(std::string_view target);

// A sprite name as API.md 3.2 fixes it: a DNS label.
bool valid_sprite_name(std::string_view name);

// A WebSocket endpoint an upgrade request opens.
struct WsRoute {
  std::string sprite;
  enum Kind { exec, attach, control } kind = exec;
  std::uint64_t session = 0;  // attach: a session the table holds, live or retained
};

// POST /exec/{id}/kill, checked (API.md 2.4).
struct KillRequest {
  std::string sprite;
  std::uint64_t id = 0;
  int signal = 15;
  std::int64_t timeout_ms = 10000;  // 0: signal only
};

class Router {
 public:
  // control may be null: then sprites cannot be created or destroyed here (501).
  // sessions may be null: then there are no exec sessions to list or kill.
  Router(RouterConfig cfg, const agent::Registry& registry, agent::SpriteControl* control,
         SessionTable* sessions = nullptr);
  Routed route(const Request& req) const;
  // For an upgrade request: the endpoint it opens, or the HTTP error to answer instead
  // (401, 404, 400 all come before any upgrade).
  std::variant<Response, WsRoute> route_upgrade(const Request& req) const;
  // For POST /v1/sprites/{name}/exec/{id}/kill: what to do, or the HTTP error (404
  // unknown session, 410 exited, 400 bad signal or timeout). The kill streams its
  // answer, so the server runs it; route() does not.
  std::variant<Response, KillRequest> kill_request(const Request& req) const;
  static bool is_kill(const Request& req);
  // GET /v1/sprites with Accept: application/x-ndjson: the watch stream (API.md 3.3),
  // which the server runs. refuse_watch() gives its 401, or nullopt to go ahead.
  static bool is_watch(const Request& req);
  std::optional<Response> refuse_watch(const Request& req) const;
  const agent::Registry& registry() const { return registry_; }
  // route(), running blocking work inline (tests and tools).
  Response handle(const Request& req) const;
  const RouterConfig& config() const { return cfg_; }
  // Known only once the server has bound its port.
  void set_base_url(std::string url) { cfg_.base_url = std::move(url); }

 private:
  Routed sprites_collection(const Request& req) const;
  Routed sprite_item(const Request& req, const std::vector<std::string>& seg) const;
  Routed checkpoints(const Request& req, const std::vector<std::string>& s) const;
  Routed exec_sessions(const Request& req, const std::vector<std::string>& seg) const;

  RouterConfig cfg_;
  const agent::Registry& registry_;
  agent::SpriteControl* control_;
  SessionTable* sessions_;
};

}  // namespace bp::api
