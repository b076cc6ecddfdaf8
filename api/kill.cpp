// api/kill.cpp — POST /exec/{id}/kill (API.md 2.4): signal, wait, escalate, with each
// step streamed as an NDJSON line as it happens.
#include <signal.h>
#include <string.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>

#include "api/chunked.hpp"
#include "api/exec_session_async.hpp"

namespace bp::api {

namespace asio = boost::asio;
using asio::awaitable;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

constexpr auto kPoll = std::chrono::milliseconds(20);
constexpr std::int64_t kAfterKillMs = 5000;

std::string line(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"; }

// The session's exit code once it has exited within ms, else nullopt. The table is
// updated on this thread by the reaper's callback; polling it covers HTTP execs too.
awaitable<std::optional<int>> wait_exit(SessionTable& sessions, const KillRequest& k, std::int64_t ms) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    auto cur = sessions.get(k.sprite, k.id);
    if (cur && cur->exited) co_return cur->exit_code;
    if (!cur || std::chrono::steady_clock::now() >= deadline) co_return std::nullopt;
    t.expires_after(kPoll);
    co_await t.async_wait(tuple_awaitable);
  }
}

}  // namespace

awaitable<bool> run_kill(boost::beast::tcp_stream& stream, KillRequest k, SessionTable& sessions,
                         std::string version) {
  // No co_await inside a condition: GCC 12 miscompiled `if (!co_await ...)` (crash seen
  // in api/watch.cpp), so each result is named first.
  bool sent = false;
  sent = co_await write_stream_head(stream, "application/x-ndjson", version);
  if (!sent) co_return false;
  const char* abbrev = sigabbrev_np(k.signal);
  std::string sig = abbrev ? std::string("SIG") + abbrev : std::to_string(k.signal);
  pid_t pid = -1;
  if (auto cur = sessions.get(k.sprite, k.id)) pid = cur->pid;
  std::string out;
  if (!sessions.signal(k.sprite, k.id, k.signal)) {
    out = line({{"type", "error"}, {"message", "the session exited before the signal"}});
    sent = co_await write_chunk(stream, out);
    if (!sent) co_return false;
  } else {
    out = line({{"type", "signal"}, {"signal", sig}, {"pid", pid},
                {"message", "sent " + sig + " to session " + std::to_string(k.id)}});
    sent = co_await write_chunk(stream, out);
    if (!sent) co_return false;
    if (k.timeout_ms > 0) {
      auto code = co_await wait_exit(sessions, k, k.timeout_ms);
      if (!code) {
        out = line({{"type", "timeout"},
                    {"message", "session did not exit within " + std::to_string(k.timeout_ms) + " ms"}});
        sent = co_await write_chunk(stream, out);
        if (!sent) co_return false;
        if (sessions.signal(k.sprite, k.id, SIGKILL)) {
          out = line({{"type", "killed"}, {"signal", "SIGKILL"}, {"pid", pid}});
          sent = co_await write_chunk(stream, out);
          if (!sent) co_return false;
        }
        code = co_await wait_exit(sessions, k, kAfterKillMs);
      }
      if (code) {
        out = line({{"type", "exited"}, {"exit_code", *code}, {"message", "session exited"}});
        sent = co_await write_chunk(stream, out);
        if (!sent) co_return false;
      }
    }
  }
  out = line({{"type", "complete"}});
  sent = co_await write_chunk(stream, out);
  if (!sent) co_return false;
  sent = co_await write_last_chunk(stream);
  co_return sent;
}

}  // namespace bp::api
