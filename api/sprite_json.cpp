// api/sprite_json.cpp — JSON shapes for sprites.
#include "api/sprite_json.hpp"

#include <nlohmann/json.hpp>

namespace bp::api {

using nlohmann::json;

namespace {

json sprite_object(const agent::SpriteRecord& rec, std::string_view org, std::string_view url) {
  return json{{"id", rec.id},
              {"name", rec.name},
              {"organization", org},
              {"status", rec.status},
              {"url", url},
              {"url_settings", {{"auth", rec.url_auth}}},
              {"config", {{"region", "local"}}},
              {"environment", json::object()},
              {"labels", rec.labels},
              {"primary_region", "local"},
              {"created_at", rec.created_at},
              {"updated_at", rec.updated_at}};
}

}  // namespace

std::string sprite_json(const agent::SpriteRecord& rec, std::string_view org, std::string_view url) {
  return sprite_object(rec, org, url).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string sprite_list_json(const std::vector<agent::SpriteRecord>& recs, std::string_view org,
                             std::string_view url) {
  json list = json::array();
  int running = 0, warm = 0, cold = 0;
  for (const auto& r : recs) {
    list.push_back(sprite_object(r, org, url));
    if (r.status == "running") ++running;
    else if (r.status == "warm") ++warm;
    else ++cold;
  }
  // JS 0.1.0 reads the counters at the top level, Go reads the "org" object: send both.
  json counts{{"name", org}, {"running", running}, {"warm", warm}, {"cold", cold}};
  json body{{"sprites", std::move(list)}, {"has_more", false}, {"next_continuation_token", nullptr}};
  for (auto& [k, v] : counts.items()) body[k] = v;
  body["org"] = std::move(counts);
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace bp::api
