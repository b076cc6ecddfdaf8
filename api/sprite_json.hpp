// api/sprite_json.hpp — the sprite object and sprite list of API.md 3.1 and 3.3.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/registry.hpp"

namespace bp::api {

std::string sprite_json(const agent::SpriteRecord& rec, std::string_view org, std::string_view url);
std::string sprite_list_json(const std::vector<agent::SpriteRecord>& recs, std::string_view org,
                             std::string_view url);

}  // namespace bp::api
