// init/config.hpp — ballpoint's configuration: defaults, config.json, then overrides.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "common/result.hpp"

namespace bp::init {

struct ListenAddr {
  std::string host;  // a literal IPv4 or IPv6 address
  std::uint16_t port = 0;
};

struct Config {
  std::string hostname = "sprite";
  std::string sprite_name = "sprite";
  std::string org = "local";
  struct Api {
    ListenAddr listen{"0.0.0.0", 7777};
    std::string token;       // VM mode: the API token (or token_file)
    std::string token_file;  // read at boot; wins over token when set
    std::string tls_cert;    // PEM certificate chain; with tls_key the API speaks TLS only
    std::string tls_key;     // PEM private key
    std::uint32_t max_sessions = 1024;  // exec sessions at once (then 429)
  } api;
  std::vector<std::string> modules;  // kernel modules to load at boot (VM mode)
  struct Net {
    std::string interface;  // e.g. "eth0"; empty: loopback only
    std::string address;    // CIDR, e.g. "10.0.2.15/24"
    std::string gateway;    // e.g. "10.0.2.2"
  } net;
  std::string base_image;        // host mode: root directory new sprites start from
  std::uint32_t max_sprites = 16;
  bool no_new_privs = false;     // sprites' processes: off, so setuid programs (sudo) work
  struct Limits {                          // every sprite's container; unset: no limit
    std::optional<std::uint64_t> memory_max;       // bytes
    std::optional<std::uint64_t> memory_swap_max;  // bytes; 0 = no swap at all
    std::optional<std::uint64_t> pids_max;
    std::optional<std::string> cpu_max;            // "QUOTA PERIOD" in µs
  } limits;
  struct Storage {  // ARCHITECTURE.md section 6
    // Where sprites' disks live: file://DIR, s3://HOST/BUCKET/PREFIX or s3+http://...
    // "" = file://STATE/objects (host mode), file:///var/lib/ballpoint/objects (VM).
    std::string object_store;
    std::string cache_disk = "/dev/vda";  // VM mode: the disk /var/lib/ballpoint lives on
    std::string durability = "local";  // strict | local
    std::uint64_t volume_size = 100ull << 30;
    std::uint32_t sync_interval_ms = 1000;    // local mode: uploads follow writes within this
    std::uint64_t journal_limit = 1ull << 30;  // not-yet-uploaded bytes before writes wait
    std::uint64_t cache_limit = 8ull << 30;
    std::uint32_t flush_timeout_ms = 60000;    // strict flushes fail with EIO after this
    std::uint32_t lease_ttl_ms = 30000;        // a disk's writer lease; writes stop at 2/3 unrenewed
    std::uint32_t gc_interval_ms = 60000;      // compaction and garbage collection passes
    std::uint32_t gc_grace_ms = 600000;        // an unreferenced segment is deleted after this
    std::uint32_t checkpoint_mounts = 3;       // newest checkpoints mounted at /.sprite/checkpoints
    // s3:// keys; unset: $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, $AWS_REGION (host mode)
    std::string s3_access_key;
    std::string s3_secret_key;
    std::string s3_secret_key_file;  // read at boot; wins over s3_secret_key
    std::string s3_region;
  } storage;
  Level log_level = Level::info;
  std::uint32_t shutdown_timeout_ms = 10000;  // bound on each component's stop
};

using Overrides = std::vector<std::pair<std::string, std::string>>;

// Builds a Config from defaults, then the JSON text (may be empty: no file), then the
// overrides in order. Every error names the key: "config: api.listen: ...".
Result<Config> parse_config(std::string_view json_text, const Overrides& overrides);

// Parses "HOST:PORT" or "[V6]:PORT".
Result<ListenAddr> parse_listen(std::string_view s);

}  // namespace bp::init
