// api/http_exec.cpp — exec over plain HTTP (API.md 2.5): the request body is stdin, the
// response is the non-TTY frames, one frame per chunk, paced so clients that read one
// frame per chunk (the JS SDK) never see two frames glued together.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <ctime>
#include <memory>
#include <optional>

#include "api/chunked.hpp"
#include "api/exec_session_async.hpp"
#include "api/spawn.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/log_exit.hpp"

namespace bp::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

constexpr std::size_t kMaxPending = 1 << 20;  // per stream; then the pump waits
constexpr auto kPace = 10ms;                   // between frames
constexpr auto kBeforeExit = 20ms;             // before the exit frame
constexpr auto kDrainAfterExit = 1s;

struct HttpExec {
  explicit HttpExec(asio::any_io_executor ex) : exit_timer(ex) {
    exit_timer.expires_at(asio::steady_timer::time_point::max());
  }
  std::optional<asio::posix::stream_descriptor> streams[2];  // stdout, stderr
  std::string pending[2];  // adjacent output of one stream, merged into one frame
  int open_streams = 0;
  bool exited = false;
  int exit_code = -1;
  pid_t pid = -1;
  asio::steady_timer exit_timer;
  SessionTable* sessions = nullptr;
  std::uint64_t session_id = 0;
};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& a : v) out += (out.empty() ? "" : " ") + a;
  return out;
}

// Reads one stream into its pending buffer until EOF (or until closed by the writer).
awaitable<void> pump(std::shared_ptr<HttpExec> x, int which) {
  std::array<char, 32768> buf;
  asio::steady_timer wait(co_await asio::this_coro::executor);
  for (;;) {
    while (x->pending[which].size() >= kMaxPending) {  // the client is slow: so is the process
      wait.expires_after(kPace);
      co_await wait.async_wait(tuple_awaitable);
    }
    if (!x->streams[which]) break;
    auto [ec, n] = co_await x->streams[which]->async_read_some(asio::buffer(buf), tuple_awaitable);
    if (ec) break;
    x->pending[which].append(buf.data(), n);
    if (x->sessions) x->sessions->activity(x->session_id, n);
  }
  --x->open_streams;
}

awaitable<void> feed_stdin(std::shared_ptr<HttpExec> x, int fd, std::shared_ptr<const std::string> body) {
  asio::posix::stream_descriptor in(co_await asio::this_coro::executor, fd);
  co_await asio::async_write(in, asio::buffer(*body), tuple_awaitable);
  (void)x;  // keeps the state alive as long as the other coroutines
}  // closing `in` is the EOF

// The only writer of the body: flushes pending output as frames every kPace until both
// streams have ended and the process has exited (or kDrainAfterExit after the exit).
// False when the client went away.
awaitable<bool> frames(beast::tcp_stream& stream, HttpExec& x) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  std::optional<std::chrono::steady_clock::time_point> drain_until;
  for (;;) {
    for (int i = 0; i < 2; ++i) {
      if (x.pending[i].empty()) continue;
      std::string frame(1, static_cast<char>(i + 1));
      frame += x.pending[i];
      x.pending[i].clear();
      auto [ec, n] = co_await asio::async_write(stream, http::make_chunk(asio::buffer(frame)), tuple_awaitable);
      if (ec) co_return false;
      t.expires_after(kPace);
      co_await t.async_wait(tuple_awaitable);
    }
    bool idle = x.pending[0].empty() && x.pending[1].empty();
    if (x.exited && x.open_streams == 0 && idle) co_return true;
    if (x.exited && !drain_until) drain_until = std::chrono::steady_clock::now() + kDrainAfterExit;
    if (drain_until && std::chrono::steady_clock::now() >= *drain_until && idle) co_return true;
    t.expires_after(kPace);
    co_await t.async_wait(tuple_awaitable);
  }
}

void list(SessionTable& sessions, std::uint64_t id, const std::string& sprite, const ExecParams& p, pid_t pid) {
  sessions.add(SessionInfo{id, sprite, join(p.argv), p.dir, static_cast<std::int64_t>(std::time(nullptr)), 0, 0, false,
                           pid, false, -1, 0, nullptr});
}

// Completes when the client closes its side or resets: an HTTP exec takes no more input.
awaitable<void> client_gone(beast::tcp_stream& stream) {
  char byte;
  co_await stream.socket().async_read_some(asio::buffer(&byte, 1), tuple_awaitable);
}

// The exchange once the process runs; the session leaves the list when it ends.
awaitable<bool> serve(beast::tcp_stream& stream, std::shared_ptr<HttpExec> x, const std::string& version);

}  // namespace

awaitable<bool> run_http_exec(beast::tcp_stream& stream, std::string body, ExecParams p, std::string sprite,
                              std::string version, SessionTable& sessions, const ExecDeps& deps,
                              asio::thread_pool& blocking) {
  auto ex = co_await asio::this_coro::executor;
  std::uint64_t session_id = 0;
  auto x = std::make_shared<HttpExec>(ex);
  Spawned sp = co_await spawn_exec(p, sprite, deps, blocking);  // p.tty is false here (400 before)
  auto& proc = sp.proc;

  if (!proc) {
    x->pending[1] = "ballpoint: " + proc.error().what + "\n";
    x->exited = true;
    x->exit_code = spawn_failure_code(proc.error());
  } else {
    x->pid = proc->pid;
    // Listed and killable like any session (API.md 2.3, 2.4); there is nothing to attach to.
    session_id = sessions.next_id();
    x->session_id = session_id;
    x->sessions = &sessions;
    list(sessions, session_id, sprite, p, proc->pid);
    deps.watch_exit(proc->pid, sp.ticket, [x](int code) {
      x->exited = true;
      x->exit_code = code;
      x->exit_timer.cancel();
      x->sessions->exited(x->session_id, code);
    });
    for (int i = 0; i < 2; ++i) {
      int fd = (i == 0 ? sp.out_r : sp.err_r).release();
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      x->streams[i].emplace(ex, fd);
      ++x->open_streams;
      asio::co_spawn(ex, [x, i] { return pump(x, i); }, log_exit("api.http_exec"));
    }
    if (sp.in_w) {
      int fd = sp.in_w.release();
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      auto data = std::make_shared<const std::string>(std::move(body));
      asio::co_spawn(ex, [x, fd, data] { return feed_stdin(x, fd, data); }, log_exit("api.http_exec"));
    }
  }
  bool ok = co_await serve(stream, x, version);
  if (session_id) sessions.ended(session_id, nullptr);
  co_return ok;
}

namespace {

awaitable<bool> serve(beast::tcp_stream& stream, std::shared_ptr<HttpExec> x, const std::string& version) {
  auto ex = co_await asio::this_coro::executor;
  // Headers at once, before any output (API.md 1.6 and 2.5).
  bool head_sent = co_await write_stream_head(stream, "application/octet-stream", version);
  if (!head_sent) {
    if (!x->exited && x->pid > 0) ::kill(-x->pid, SIGKILL);
    co_return false;
  }
  // A client that leaves is noticed at once, not at the next write (a silent command
  // writes nothing): the request is whole, so anything read now is its end.
  auto race = co_await (frames(stream, *x) || client_gone(stream));
  bool ok = race.index() == 0 && std::get<0>(race);
  for (auto& st : x->streams)
    if (st) st->close();  // a background child may still hold the pipes: we are done reading
  if (!ok) {
    if (!x->exited && x->pid > 0) ::kill(-x->pid, SIGKILL);  // the client went away: so does the process
    co_return false;
  }
  asio::steady_timer t(ex, kBeforeExit);
  co_await t.async_wait(tuple_awaitable);
  std::string exit_frame{'\x03', static_cast<char>(x->exit_code & 0xff)};
  bool sent = co_await write_chunk(stream, exit_frame);
  if (sent) sent = co_await write_last_chunk(stream);
  co_return sent;
}

}  // namespace

}  // namespace bp::api
