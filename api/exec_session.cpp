// api/exec_session.cpp — one exec over a WebSocket: spawn in the container, frame the
// streams (API.md 2.1.4-2.1.7), one writer behind a bounded queue, exit, close.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <optional>
#include <nlohmann/json.hpp>

#include "api/exec_session_async.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/log_exit.hpp"
#include "common/offload.hpp"
#include "init/container/container.hpp"

namespace bp::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::awaitable;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;
constexpr auto tuple_awaitable = asio::as_tuple(use_awaitable);

namespace {

constexpr std::size_t kOutboxFrames = 64;       // then producers wait: a slow client slows the process
constexpr std::size_t kReadChunk = 32 * 1024;   // output frames stay well under 64 KiB
constexpr auto kKeepalive = 15s;                // the JS SDK aborts after 45 s of silence
constexpr auto kDrainAfterExit = 1s;            // a background child may hold the pipes open
constexpr int kDefaultNonTtyLingerMs = 10000;   // API.md 2.2: the non-TTY run-after-disconnect

struct Frame {
  enum Kind { binary, text, close } kind = binary;
  std::string data;
  std::uint16_t close_code = 1000;
};

// The bounded queue between producers and the one writer: a deque and two timers used
// as wake-ups. Producers `co_await room()` and then `put()` a frame, so no frame is ever
// an argument of a coroutine: GCC 12 destroys temporaries bound to a coroutine's
// reference parameter before the coroutine runs, and a prvalue given to a by-value one
// twice (seen here under ASan; GCC PR 100611).
class Outbox {
 public:
  Outbox(asio::any_io_executor ex, std::size_t capacity) : cap_(capacity), has_frames_(ex), has_room_(ex) {
    has_frames_.expires_at(asio::steady_timer::time_point::max());
    has_room_.expires_at(asio::steady_timer::time_point::max());
  }
  // Waits until put() has room (or the queue is closed).
  awaitable<void> room() {
    while (!closed_ && q_.size() >= cap_) co_await has_room_.async_wait(tuple_awaitable);
  }
  // Queues f; false (f dropped) once closed. Call after room(): it never blocks.
  bool put(Frame&& f) {
    if (closed_) return false;
    q_.push_back(std::move(f));
    has_frames_.cancel();
    return true;
  }
  // The next frame, or nullopt once closed and drained.
  awaitable<std::optional<Frame>> pop() {
    while (q_.empty() && !closed_) co_await has_frames_.async_wait(tuple_awaitable);
    if (q_.empty()) co_return std::nullopt;
    Frame f = std::move(q_.front());
    q_.pop_front();
    has_room_.cancel();
    co_return f;
  }
  void close() {
    closed_ = true;
    q_.clear();
    has_frames_.cancel();
    has_room_.cancel();
  }

 private:
  std::size_t cap_;
  std::deque<Frame> q_;
  bool closed_ = false;
  asio::steady_timer has_frames_, has_room_;
};

// State shared by the session's coroutines, all on the loop thread.
struct Session {
  explicit Session(asio::any_io_executor ex)
      : out(ex, kOutboxFrames), exit_timer(ex), last_send(std::chrono::steady_clock::now()) {
    exit_timer.expires_at(asio::steady_timer::time_point::max());
  }
  Outbox out;
  asio::steady_timer exit_timer;  // cancelled when the exit is known
  std::chrono::steady_clock::time_point last_send;
  pid_t pid = -1;
  bool exited = false;
  int exit_code = -1;
  bool client_gone = false;
  int pumps_waiting = 0;  // pumps holding output the queue has no room for yet
  SessionTable* sessions = nullptr;
  std::uint64_t session_id = 0;
  std::optional<asio::posix::stream_descriptor> in;  // stdin pipe, or the PTY master
  UniqueFd pty;                                      // the PTY master, for resize
  bool tty = false;
  bool stdin_open = false;
};

asio::posix::stream_descriptor nonblocking(asio::any_io_executor ex, int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return asio::posix::stream_descriptor(ex, fd);
}

bool put(Session& s, Frame&& f) {
  s.last_send = std::chrono::steady_clock::now();
  return s.out.put(std::move(f));
}

// The only writer to the socket (Beast allows one write in flight).
awaitable<void> writer(WsStream& ws, Session& s) {
  for (;;) {
    std::optional<Frame> f = co_await s.out.pop();
    if (!f) break;
    if (f->kind == Frame::close) {
      co_await ws.async_close(websocket::close_reason(f->close_code), tuple_awaitable);
      break;
    }
    ws.binary(f->kind == Frame::binary);
    auto [wec, n] = co_await ws.async_write(asio::buffer(f->data), tuple_awaitable);
    if (wec) {
      s.client_gone = true;
      break;
    }
  }
  s.out.close();  // producers blocked on a full queue give up instead of waiting forever
}

void signal_group(Session& s, int sig) {
  if (!s.exited && s.pid > 0) ::kill(-s.pid, sig);  // the process leads its own session and group
}

std::string str_field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<long long>());
  return {};
}

int int_field(const nlohmann::json& j, const char* key) {
  std::string v = str_field(j, key);  // numbers, or their string forms
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  return v.empty() || *end || n <= 0 || n > 65535 ? 0 : static_cast<int>(n);
}

// Client text messages. Anything malformed is ignored (API.md 2.1.6), never thrown.
void on_text(Session& s, std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return;
  std::string type = str_field(j, "type");
  if (type == "resize" && s.tty && s.pty) {
    winsize ws{};
    ws.ws_row = static_cast<unsigned short>(int_field(j, "rows"));
    ws.ws_col = static_cast<unsigned short>(int_field(j, "cols"));
    if (ws.ws_row && ws.ws_col) ::ioctl(s.pty.get(), TIOCSWINSZ, &ws);  // the kernel sends SIGWINCH
  } else if (type == "signal") {
    if (int sig = parse_signal(str_field(j, "signal"))) signal_group(s, sig);
  }
}

awaitable<void> wait_exit(Session& s);

// After the client has gone, the process may run on for max_ms (0: for ever), then it
// gets SIGTERM and, 5 s later, SIGKILL. Ends as soon as the process does.
awaitable<void> linger(std::shared_ptr<Session> s, std::int64_t max_ms) {
  if (max_ms == 0) co_return;
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer t(ex, std::chrono::milliseconds(max_ms));
  if ((co_await (t.async_wait(tuple_awaitable) || wait_exit(*s))).index() == 1) co_return;
  signal_group(*s, SIGTERM);
  t.expires_after(5s);
  if ((co_await (t.async_wait(tuple_awaitable) || wait_exit(*s))).index() == 1) co_return;
  signal_group(*s, SIGKILL);
}

awaitable<void> reader(WsStream& ws, std::shared_ptr<Session> s, std::int64_t linger_ms) {
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf, tuple_awaitable);
    if (ec) {
      if (ec != websocket::error::closed || !s->exited) {
        s->client_gone = true;
        s->out.close();
        // A terminal whose user has gone hangs up, as a terminal does.
        if (s->tty) signal_group(*s, SIGHUP);
        if (!s->exited)
          asio::co_spawn(ws.get_executor(), [s, linger_ms] { return linger(s, linger_ms); }, log_exit("api.exec"));
      }
      co_return;
    }
    auto data = buf.cdata();
    std::string_view bytes(static_cast<const char*>(data.data()), data.size());
    if (ws.got_text()) {
      on_text(*s, bytes);
    } else if (s->tty) {
      if (s->stdin_open && !bytes.empty()) co_await asio::async_write(*s->in, asio::buffer(bytes), tuple_awaitable);
    } else if (!bytes.empty() && bytes[0] == 0x00 && s->stdin_open) {
      bytes.remove_prefix(1);
      auto [wec, wn] = co_await asio::async_write(*s->in, asio::buffer(bytes), tuple_awaitable);
      if (wec) {  // the process closed its stdin: later input has nowhere to go
        s->stdin_open = false;
        s->in.reset();
      }
    } else if (!bytes.empty() && bytes[0] == 0x04 && s->stdin_open) {
      s->stdin_open = false;
      s->in.reset();  // EOF for the process; later 0x00 frames are dropped
    }
    buf.consume(buf.size());
  }
}

awaitable<void> pump(asio::posix::stream_descriptor fd, Session& s, char stream_byte) {
  std::array<char, kReadChunk> buf;
  for (;;) {
    auto [ec, n] = co_await fd.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (ec) co_return;  // EOF; EIO on a PTY whose last holder is gone; cancelled after exit
    Frame f;
    if (stream_byte) f.data.push_back(stream_byte);
    f.data.append(buf.data(), n);
    if (s.sessions) s.sessions->activity(s.session_id, n);
    if (s.client_gone) continue;  // keep draining so the process is never blocked on output
    ++s.pumps_waiting;
    co_await s.out.room();
    --s.pumps_waiting;
    put(s, std::move(f));
  }
}

awaitable<void> wait_exit(Session& s) {
  if (!s.exited) co_await s.exit_timer.async_wait(tuple_awaitable);
}

// After the exit, the streams get kDrainAfterExit to reach EOF (a background child may
// hold them open), counted only while no output waits for a slow client.
awaitable<void> exit_then_grace(Session& s) {
  co_await wait_exit(s);
  asio::steady_timer t(co_await asio::this_coro::executor);
  do {
    t.expires_after(kDrainAfterExit);
    co_await t.async_wait(tuple_awaitable);
  } while (s.pumps_waiting > 0);
}

awaitable<void> keepalive(Session& s) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (;;) {
    t.expires_at(s.last_send + kKeepalive);
    auto [ec] = co_await t.async_wait(tuple_awaitable);
    if (ec) co_return;
    if (std::chrono::steady_clock::now() - s.last_send < kKeepalive) continue;
    co_await s.out.room();
    put(s, Frame{Frame::binary, std::string()});
  }
}

// Built outside coroutines: GCC 12 rejects braced arrays of literals kept in a frame.
std::string exit_json(int code) { return nlohmann::json{{"type", "exit"}, {"exit_code", code}}.dump(); }
std::string exit_frame(int code) { return std::string{'\x03', static_cast<char>(code & 0xff)}; }

// Output until the process has exited and its streams are drained (or kDrainAfterExit
// has passed), then the exit indication and the close.
awaitable<void> produce(Session& s, std::optional<asio::posix::stream_descriptor> out,
                        std::optional<asio::posix::stream_descriptor> err) {
  if (s.tty) {
    co_await (pump(std::move(*out), s, 0) || exit_then_grace(s));
  } else {
    co_await ((pump(std::move(*out), s, 0x01) && pump(std::move(*err), s, 0x02)) || exit_then_grace(s));
  }
  co_await wait_exit(s);
  int code = s.exit_code & 0xff;
  if (s.tty) {
    co_await s.out.room();
    put(s, Frame{Frame::text, exit_json(code)});
    co_await s.out.room();
    put(s, Frame{Frame::close, std::string(), static_cast<std::uint16_t>(code == 0 ? 1000 : 4000 + code)});
  } else {
    co_await s.out.room();
    put(s, Frame{Frame::binary, exit_frame(code)});
    co_await s.out.room();
    put(s, Frame{Frame::close, std::string(), 1000});
  }
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& a : v) out += (out.empty() ? "" : " ") + a;
  return out;
}

}  // namespace

awaitable<void> run_exec(WsStream& ws, ExecParams p, std::string sprite, SessionTable& sessions,
                         const ExecDeps& deps, asio::thread_pool& blocking) {
  std::uint64_t session_id = sessions.next_id();
  Logger log("api.exec");
  auto ex = co_await asio::this_coro::executor;
  auto s = std::make_shared<Session>(ex);
  s->tty = p.tty;

  container::EnterSpec spec;
  spec.argv = p.argv;
  spec.path = p.path;
  spec.env = exec_environment(p);
  spec.cwd = p.dir;
  spec.tty = p.tty;
  spec.rows = p.rows;
  spec.cols = p.cols;
  // Non-TTY: three pipes (stdin only when asked for); the child ends go to enter().
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
  if (!p.tty) {
    int fds[2];
    if (p.stdin) {
      if (::pipe2(fds, O_CLOEXEC) == 0) in_r.reset(fds[0]), in_w.reset(fds[1]);
    }
    if (::pipe2(fds, O_CLOEXEC) == 0) out_r.reset(fds[0]), out_w.reset(fds[1]);
    if (::pipe2(fds, O_CLOEXEC) == 0) err_r.reset(fds[0]), err_w.reset(fds[1]);
    spec.stdin_fd = in_r.get();
    spec.stdout_fd = out_w.get();
    spec.stderr_fd = err_w.get();
  }

  auto info = nlohmann::json{{"type", "session_info"}, {"session_id", std::to_string(session_id)},
                             {"command", join(p.argv)},  {"created", static_cast<std::int64_t>(std::time(nullptr))},
                             {"tty", p.tty},             {"is_owner", true}};
  if (p.tty) {
    info["cols"] = p.cols;
    info["rows"] = p.rows;
  }

  auto container = deps.container(sprite);
  auto ticket = deps.ticket();
  Result<container::Process> proc = make_error("sprite '" + sprite + "' is not running", ESRCH);
  if (container) {
    if (!p.tty && (!out_r || !err_r || (p.stdin && !in_r))) proc = sys_error("pipe2");
    else proc = co_await offload(blocking, [&] { return container->enter(spec); });
  }
  in_r.reset();
  out_w.reset();
  err_w.reset();

  // API.md 2.2 lets a TTY run on for ever, to be attached again; this build has no
  // attach yet, so a detached terminal gets the non-TTY default instead of leaking.
  std::int64_t linger_ms =
      p.max_run_after_disconnect_ms >= 0 ? p.max_run_after_disconnect_ms : kDefaultNonTtyLingerMs;
  put(*s, Frame{Frame::text, info.dump()});  // the queue is empty: queued at once, written below
  if (!proc) {
    // API.md 2.1.2: the spawn failure is reported through the stream, then 127 or 126.
    log.info("exec failed to start", {{"sprite", sprite}, {"session", session_id}, {"err", proc.error().what}});
    // 127: no such program; 126: not executable, a bad dir, anything else.
    bool not_found = proc.error().code == ENOENT && proc.error().what.find("execve") != std::string::npos;
    int code = not_found ? 127 : 126;
    std::string msg = "ballpoint: " + proc.error().what + "\r\n";
    // A named closure: GCC 12 may destroy a temporary one before its coroutine runs.
    auto report = [&]() -> awaitable<void> {
      if (p.tty) {
        co_await s->out.room();
        put(*s, Frame{Frame::binary, msg});
        co_await s->out.room();
        put(*s, Frame{Frame::text, exit_json(code)});
        co_await s->out.room();
        put(*s, Frame{Frame::close, std::string(), static_cast<std::uint16_t>(4000 + code)});
      } else {
        co_await s->out.room();
        put(*s, Frame{Frame::binary, "\x02" + msg.substr(0, msg.size() - 2) + "\n"});
        co_await s->out.room();
        put(*s, Frame{Frame::binary, exit_frame(code)});
        co_await s->out.room();
        put(*s, Frame{Frame::close, std::string(), 1000});
      }
    };
    co_await (writer(ws, *s) && report());
    co_return;
  }
  s->pid = proc->pid;
  s->sessions = &sessions;
  s->session_id = session_id;
  std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  sessions.add(SessionInfo{session_id, sprite, join(p.argv), p.dir, now, 0, 0, p.tty, proc->pid, false, -1});
  struct Unlist {
    SessionTable& t;
    std::uint64_t id;
    ~Unlist() { t.remove(id); }
  } unlist{sessions, session_id};
  deps.watch_exit(proc->pid, ticket, [s, sprite, session_id](int code) {
    s->exited = true;
    s->exit_code = code;
    s->exit_timer.cancel();
    s->sessions->exited(session_id, code);
    Logger("api.exec").debug("exec exited", {{"sprite", sprite}, {"session", session_id}, {"code", code}});
  });

  std::optional<asio::posix::stream_descriptor> out, err;
  if (p.tty) {
    int dup_master = ::fcntl(proc->pty_master.get(), F_DUPFD_CLOEXEC, 3);
    s->pty = std::move(proc->pty_master);
    out.emplace(nonblocking(ex, dup_master));
    if (p.stdin) {
      s->in.emplace(nonblocking(ex, ::fcntl(s->pty.get(), F_DUPFD_CLOEXEC, 3)));
      s->stdin_open = true;
    }
  } else {
    out.emplace(nonblocking(ex, out_r.release()));
    err.emplace(nonblocking(ex, err_r.release()));
    if (in_w) {
      s->in.emplace(nonblocking(ex, in_w.release()));
      s->stdin_open = true;
    }
  }
  log.info("exec started", {{"sprite", sprite}, {"session", session_id}, {"pid", proc->pid}, {"tty", p.tty}});
  co_await (reader(ws, s, linger_ms) && writer(ws, *s) && (produce(*s, std::move(out), std::move(err)) || keepalive(*s)));
  // The client went away and the process outlived the wait for it: keep the session
  // state until the process has gone, so the lingering kill still finds it.
  co_await wait_exit(*s);
}

}  // namespace bp::api
