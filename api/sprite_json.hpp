// api/sprite_json.hpp — the sprite object, the sprite list, its watch events and the
// organization (API.md 3.1, 3.3, 3.11).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/registry.hpp"

namespace bp::api {

// What a sprite gets to run on (API.md 3.12: config reports the real limits): its
// memory limit, or the machine's memory; its CPU quota rounded up, or the machine's CPUs.
struct Machine {
  std::uint64_t ram_mb = 0;
  unsigned cpus = 0;
  std::uint64_t storage_gb = 0;  // a sprite's disk
};

// An RFC 3339 UTC timestamp of Unix seconds t.
std::string rfc3339(std::int64_t t);

// The organization's counters, over all of its sprites.
struct OrgCounts {
  int running = 0, warm = 0, cold = 0;
  int running_limit = 0, warm_limit = 0;
};
OrgCounts org_counts(const std::vector<agent::SpriteRecord>& all, int max_sprites);

// disk_used: bytes the sprite has written to its disk (trims subtracted), when known;
// an additive field, "storage": {"used_bytes": N}. disk_health: why the disk takes no
// writes, when it does not (its lease): "storage": {"error": "..."}.
std::string sprite_json(const agent::SpriteRecord& rec, std::string_view org, std::string_view url,
                        const Machine& machine, std::optional<std::uint64_t> disk_used = std::nullopt,
                        const std::optional<std::string>& disk_health = std::nullopt);
// One page of the list; next_token set when there is more (has_more).
std::string sprite_list_json(const std::vector<agent::SpriteRecord>& page, std::string_view org, std::string_view url,
                             const Machine& machine, const OrgCounts& counts,
                             const std::optional<std::string>& next_token);
// Watch lines (API.md 3.3), each without its newline.
std::string sprite_event_json(const agent::SpriteRecord& rec, std::string_view org, const OrgCounts& counts,
                              std::string_view version, std::int64_t now);
std::string heartbeat_json(std::string_view org, const OrgCounts& counts, std::int64_t now);
// GET /v1/organization (API.md 3.11).
std::string organization_json(std::string_view org, const std::vector<agent::SpriteRecord>& all, int max_sprites);

}  // namespace bp::api
