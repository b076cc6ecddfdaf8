// tests/fuzz/fuzz_router.cpp — the request router on arbitrary requests: method, target,
// authorization and body from the input. Every route, upgrade and kill decision must
// be an answer (never a crash), and a refused request must change nothing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/registry.hpp"
#include "api/router.hpp"
#include "api/sessions.hpp"

namespace {

const std::string kToken = "0123456789abcdef0123456789abcdef";

// Creates and deletes in memory, like the real SpriteManager's contract.
struct Control : bp::agent::SpriteControl {
  explicit Control(bp::agent::Registry& r) : reg(r) {}
  bp::Result<bp::agent::SpriteRecord> create(const std::string& name) override {
    if (reg.get(name)) return bp::make_error("exists", EEXIST);
    bp::agent::SpriteRecord rec{"id-" + name, name, "running", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"};
    reg.add(rec);
    return rec;
  }
  bp::Status destroy(const std::string& name) override {
    return reg.remove(name) ? bp::Status{} : bp::Status(bp::make_error("no such sprite", ENOENT));
  }
  bp::Result<bp::agent::SpriteRecord> update(const std::string& name,
                                             const std::optional<std::vector<std::string>>& labels,
                                             const std::optional<std::string>& auth) override {
    auto rec = reg.get(name);
    if (!rec) return bp::make_error("no such sprite", ENOENT);
    if (labels) rec->labels = *labels;
    if (auth) rec->url_auth = *auth;
    reg.replace(*rec);
    return *rec;
  }
  bp::Status restart(const std::string&) override { return {}; }
  bp::Result<std::int64_t> check(const std::string&) override { return std::int64_t{1}; }
  bool single_sprite() const override { return false; }
  std::optional<std::uint64_t> disk_used(const std::string&) override { return std::nullopt; }
  bp::agent::Registry& reg;
};

// Splits data on '\n' into up to four fields.
std::string_view take(std::string_view& in) {
  auto nl = in.find('\n');
  std::string_view field = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return field;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  bp::agent::Registry reg;
  Control ctl(reg);
  bp::api::SessionTable sessions;
  (void)ctl.create("box");
  sessions.add({sessions.next_id(), "box", "sleep 5", "/", 1767609000, 0, 0, false, 1, false, -1});
  bp::api::Router router({kToken, "local", "0.1.0", "http://127.0.0.1:1"}, reg, &ctl, &sessions);

  bp::api::Request req;
  req.method = std::string(take(in));
  req.target = std::string(take(in));
  std::string_view auth = take(in);
  // Mostly the right token, so the fuzzer gets past the 401.
  req.authorization = auth == "-" ? std::string() : auth.empty() ? "Bearer " + kToken : std::string(auth);
  req.body = std::string(in);

  auto routed = router.route(req);
  bp::api::Response res = routed.blocking ? routed.blocking() : routed.response;
  if (res.status < 100 || res.status > 599) __builtin_trap();
  if (res.status == 401 && reg.size() != 1) __builtin_trap();  // refused, and nothing changed
  (void)router.route_upgrade(req);
  if (bp::api::Router::is_kill(req)) (void)router.kill_request(req);
  return 0;
}
