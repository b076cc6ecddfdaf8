// api/watch.cpp — GET /v1/sprites as an NDJSON watch (API.md 3.3): every sprite's state
// at once, then a line per change, and a heartbeat at least every 60 s. It never ends
// on its own: the client leaves, or the server stops.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <ctime>
#include <map>

#include "agent/registry.hpp"
#include "api/chunked.hpp"
#include "api/exec_session_async.hpp"
#include "api/query.hpp"
#include "api/sprite_json.hpp"

namespace bp::api {

namespace asio = boost::asio;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

constexpr auto kPoll = 250ms;      // how soon a change is seen
constexpr auto kHeartbeat = 30s;   // the SDK expects one at least every 60 s

awaitable<bool> stream_changes(boost::beast::tcp_stream& stream, const agent::Registry& reg, const WatchRequest& w) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  std::map<std::string, std::string> seen;  // name -> the status last sent
  std::uint64_t gen = 0;
  bool first = true;
  auto beat = std::chrono::steady_clock::now();
  for (;;) {
    std::string out;
    std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    if (first || reg.generation() != gen) {
      gen = reg.generation();
      auto all = reg.list();
      OrgCounts counts = org_counts(all, w.max_sprites);
      std::map<std::string, std::string> current;
      for (const auto& rec : all) {
        if (!rec.name.starts_with(w.prefix)) continue;
        current[rec.name] = rec.status;
        if (auto it = seen.find(rec.name); it == seen.end() || it->second != rec.status)
          out += sprite_event_json(rec, w.org, counts, w.version, now) + "\n";
      }
      for (const auto& [name, status] : seen) {
        if (current.count(name)) continue;
        agent::SpriteRecord gone;
        gone.name = name;
        gone.status = "deleted";  // not a state of a sprite: the end of this one
        out += sprite_event_json(gone, w.org, counts, w.version, now) + "\n";
      }
      seen = std::move(current);
      first = false;
    }
    if (out.empty() && std::chrono::steady_clock::now() - beat >= kHeartbeat)
      out = heartbeat_json(w.org, org_counts(reg.list(), w.max_sprites), now) + "\n";
    if (!out.empty()) {
      beat = std::chrono::steady_clock::now();
      bool sent = co_await write_chunk(stream, out);  // never inside the if: see api/kill.cpp
      if (!sent) co_return false;
    }
    if (!stream.socket().is_open()) co_return false;  // the server is stopping
    t.expires_after(kPoll);
    co_await t.async_wait(tuple_awaitable);
  }
}

// Completes when the client closes its side (or sends anything: a watch takes no input).
awaitable<void> client_gone(boost::beast::tcp_stream& stream) {
  char byte;
  co_await stream.socket().async_read_some(asio::buffer(&byte, 1), tuple_awaitable);
}

}  // namespace

awaitable<bool> run_watch(boost::beast::tcp_stream& stream, const agent::Registry& reg, const WatchRequest& w) {
  bool started = co_await write_stream_head(stream, "application/x-ndjson", w.version);
  if (started) co_await (stream_changes(stream, reg, w) || client_gone(stream));
  co_return false;  // a watch always ends its connection
}

}  // namespace bp::api
