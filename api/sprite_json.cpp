// api/sprite_json.cpp — JSON shapes for sprites and the organization.
#include "api/sprite_json.hpp"

#include <ctime>
#include <nlohmann/json.hpp>

namespace bp::api {

using nlohmann::json;

namespace {

json sprite_object(const agent::SpriteRecord& rec, std::string_view org, std::string_view url, const Machine& m) {
  json config{{"region", "local"}};
  if (m.ram_mb) config["ram_mb"] = m.ram_mb;
  if (m.cpus) config["cpus"] = m.cpus;
  if (m.storage_gb) config["storage_gb"] = m.storage_gb;
  return json{{"id", rec.id},
              {"name", rec.name},
              {"organization", org},
              {"status", rec.status},
              {"url", url},
              {"url_settings", {{"auth", rec.url_auth}}},
              {"config", std::move(config)},
              {"environment", json::object()},
              {"labels", rec.labels},
              {"primary_region", "local"},
              {"created_at", rec.created_at},
              {"updated_at", rec.updated_at}};
}

json org_object(std::string_view org, const OrgCounts& c) {
  return json{{"name", org},          {"running", c.running},
              {"warm", c.warm},       {"cold", c.cold},
              {"running_limit", c.running_limit}, {"warm_limit", c.warm_limit}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string rfc3339(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

OrgCounts org_counts(const std::vector<agent::SpriteRecord>& all, int max_sprites) {
  OrgCounts c;
  for (const auto& r : all) {
    if (r.status == "running") ++c.running;
    else if (r.status == "warm") ++c.warm;
    else ++c.cold;
  }
  // Every hosted sprite may run; none is ever suspended warm here (no such state yet).
  c.running_limit = max_sprites;
  c.warm_limit = 0;
  return c;
}

std::string sprite_json(const agent::SpriteRecord& rec, std::string_view org, std::string_view url,
                        const Machine& machine, std::optional<std::uint64_t> disk_used,
                        const std::optional<std::string>& disk_health) {
  json j = sprite_object(rec, org, url, machine);
  if (disk_used) j["storage"] = {{"used_bytes", *disk_used}};
  if (disk_health && !disk_health->empty()) j["storage"]["error"] = *disk_health;
  return dump(j);
}

std::string sprite_list_json(const std::vector<agent::SpriteRecord>& page, std::string_view org, std::string_view url,
                             const Machine& machine, const OrgCounts& counts,
                             const std::optional<std::string>& next_token) {
  json list = json::array();
  for (const auto& r : page) list.push_back(sprite_object(r, org, url, machine));
  json body{{"sprites", std::move(list)},
            {"has_more", next_token.has_value()},
            {"next_continuation_token", next_token ? json(*next_token) : json(nullptr)}};
  // JS 0.1.0 reads the counters at the top level, Go reads the "org" object: send both.
  json o = org_object(org, counts);
  for (auto& [k, v] : o.items()) body[k] = v;
  body["org"] = std::move(o);
  return dump(body);
}

std::string sprite_event_json(const agent::SpriteRecord& rec, std::string_view org, const OrgCounts& counts,
                              std::string_view version, std::int64_t now) {
  json j{{"name", rec.name},
         {"status", rec.status},
         {"running_version", version},
         {"last_running_at", nullptr},
         {"last_warming_at", nullptr},
         {"timestamp", rfc3339(now)},
         {"org", org_object(org, counts)}};
  if (rec.status == "running") j["last_running_at"] = rfc3339(now);
  return dump(j);
}

std::string heartbeat_json(std::string_view org, const OrgCounts& counts, std::int64_t now) {
  return dump(json{{"type", "heartbeat"}, {"timestamp", rfc3339(now)}, {"org", org_object(org, counts)}});
}

std::string organization_json(std::string_view org, const std::vector<agent::SpriteRecord>& all, int max_sprites) {
  json active = json::array();
  for (const auto& r : all)
    if (r.status == "running") active.push_back(r.name);
  return dump(json{{"organization",
                    {{"slug", org},
                     {"sprites_enabled", true},
                     {"active_sprites", std::move(active)},
                     {"max_sprites", max_sprites},
                     {"active_sprite_limit", max_sprites}}}});
}

}  // namespace bp::api
