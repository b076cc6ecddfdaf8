// agent/registry.hpp — the sprites this ballpoint hosts, by name (one in VM mode).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bp::agent {

// What the API reports about a sprite. The Sprite object that owns a container,
// volume and sessions arrives with those components; this is its public record.
struct SpriteRecord {
  std::string id;    // UUID
  std::string name;  // DNS label
  std::string status = "cold";  // cold | warm | running
  std::string created_at;       // RFC 3339
  std::string updated_at;
};

class Registry {
 public:
  std::vector<SpriteRecord> list() const;
  std::optional<SpriteRecord> get(const std::string& name) const;
  // False when the name is taken.
  bool add(SpriteRecord rec);
  bool remove(const std::string& name);

 private:
  std::map<std::string, SpriteRecord> sprites_;
};

}  // namespace bp::agent
