// api/router.hpp — maps a Request to a Response: auth, path decoding, the routes of each API area.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_types.hpp"

namespace bp::agent {
class Registry;
}

namespace bp::api {

struct RouterConfig {
  std::string token;
  std::string org = "local";
  std::string version;  // Sprite-Version
};

// Splits the path part of a target on '/' and percent-decodes each segment
// (API.md 1.1). nullopt on a malformed escape or a decoded '/' or NUL.
std::optional<std::vector<std::string>> split_path(std::string_view target);

// A sprite name as API.md 3.2 fixes it: a DNS label.
bool valid_sprite_name(std::string_view name);

class Router {
 public:
  Router(RouterConfig cfg, const agent::Registry& registry);
  Response handle(const Request& req) const;
  const RouterConfig& config() const { return cfg_; }

 private:
  Response sprites_collection(const Request& req) const;
  Response sprite_item(const Request& req, const std::vector<std::string>& seg) const;

  RouterConfig cfg_;
  const agent::Registry& registry_;
};

}  // namespace bp::api
