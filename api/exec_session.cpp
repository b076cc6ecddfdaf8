// api/exec_session.cpp — an exec session: spawn in the container, pump its output into
// the scrollback and to every attached socket, feed its stdin, end it when its last
// client has been gone too long (API.md 2.1, 2.2).
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "api/client_input.hpp"
#include "api/live_session.hpp"
#include "api/ports.hpp"
#include "api/spawn.hpp"
#include "common/log.hpp"
#include "common/log_exit.hpp"

namespace bp::api {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;
constexpr auto tuple_awaitable = asio::as_tuple(use_awaitable);

namespace {

constexpr std::size_t kReadChunk = 32 * 1024;         // output frames stay well under 64 KiB
constexpr std::size_t kScrollbackBytes = 256 * 1024;  // API.md 2.2 asks for at least 64 KiB
constexpr auto kDrainAfterExit = 1s;                  // a background child may hold the pipes open
constexpr std::int64_t kDefaultNonTtyLingerMs = 10000;
constexpr std::size_t kStdinFrames = 256, kStdinBytes = 1 << 20;  // then the client's reader waits

asio::posix::stream_descriptor nonblocking(asio::any_io_executor ex, int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return asio::posix::stream_descriptor(ex, fd);
}

std::string exit_json(int code) { return nlohmann::json{{"type", "exit"}, {"exit_code", code}}.dump(); }
std::string port_json(const char* type, const OpenPort& p) {
  return nlohmann::json{{"type", type}, {"port", p.port}, {"address", p.address}, {"pid", p.pid}}.dump();
}

std::string exit_frame(int code) { return std::string{'\x03', static_cast<char>(code & 0xff)}; }

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& a : v) out += (out.empty() ? "" : " ") + a;
  return out;
}

}  // namespace

std::string control_envelope(bool prefixed, const nlohmann::json& j) {
  return (prefixed ? "control:" : "") + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ExecSession::ExecSession(asio::any_io_executor ex, SessionTable& table)
    : ex_(ex), table_(table), exit_timer_(ex), linger_timer_(ex), stdin_q_(ex, kStdinFrames, kStdinBytes) {
  exit_timer_.expires_at(asio::steady_timer::time_point::max());
}

awaitable<std::shared_ptr<ExecSession>> ExecSession::start(ExecParams p, std::string sprite, SessionTable& table,
                                                          const ExecDeps& deps, asio::thread_pool& blocking) {
  Logger log("api.exec");
  auto ex = co_await asio::this_coro::executor;
  auto s = std::make_shared<ExecSession>(ex, table);
  s->id_ = table.next_id();
  s->sprite_ = sprite;
  s->command_ = join(p.argv);
  s->created_ = static_cast<std::int64_t>(std::time(nullptr));
  s->tty_ = p.tty;
  s->rows_ = p.rows;
  s->cols_ = p.cols;
  // API.md 2.2: a terminal (or a detachable session) runs on for ever once its client
  // has gone, to be attached again; anything else for 10 s; the client may say.
  s->linger_ms_ = p.max_run_after_disconnect_ms >= 0 ? p.max_run_after_disconnect_ms
                  : p.tty                           ? 0
                                                    : kDefaultNonTtyLingerMs;

  Spawned sp = co_await spawn_exec(p, sprite, deps, blocking);
  auto& proc = sp.proc;
  if (!proc) {
    // API.md 2.1.2: a spawn failure is reported through the stream, then 127 or 126.
    log.info("exec failed to start", {{"sprite", sprite}, {"session", s->id_}, {"err", proc.error().what}});
    std::string msg = "ballpoint: " + proc.error().what;
    s->record(p.tty ? msg + "\r\n" : "\x02" + msg + "\n");
    s->exited_ = s->ended_ = true;
    s->exit_code_ = spawn_failure_code(proc.error());
    co_return s;
  }
  // The descriptors Asio will own, made before the session is listed: a failure here
  // (EMFILE) ends the process at once instead of leaving a session that never ends.
  int dup_out = -1, dup_in = -1;
  if (p.tty) {
    dup_out = ::fcntl(proc->pty_master.get(), F_DUPFD_CLOEXEC, 3);
    if (p.stdin) dup_in = ::fcntl(proc->pty_master.get(), F_DUPFD_CLOEXEC, 3);
    if (dup_out < 0 || (p.stdin && dup_in < 0)) {
      log.warn("exec: out of descriptors; ending it", {{"sprite", sprite}, {"session", s->id_}, {"errno", errno}});
      ::kill(-proc->pid, SIGKILL);  // reaped by the watch below, like any exit
      if (dup_out >= 0) ::close(dup_out);
      if (dup_in >= 0) ::close(dup_in);
      dup_out = dup_in = -1;
    }
  }
  s->pid_ = proc->pid;
  table.add(SessionInfo{s->id_, sprite, s->command_, p.dir, s->created_, 0, 0, p.tty, proc->pid, false, -1, 0, s});
  deps.watch_exit(proc->pid, sp.ticket, [s](int code) {
    s->exited_ = true;
    s->exit_code_ = code;
    s->exit_timer_.cancel();
    s->table_.exited(s->id_, code);
    Logger("api.exec").debug("exec exited", {{"sprite", s->sprite_}, {"session", s->id_}, {"code", code}});
  });

  std::optional<asio::posix::stream_descriptor> out, err;
  if (p.tty) {
    s->pty_ = std::move(proc->pty_master);
    if (dup_out >= 0) out.emplace(nonblocking(ex, dup_out));
    if (dup_in >= 0) s->in_.emplace(nonblocking(ex, dup_in));
  } else {
    out.emplace(nonblocking(ex, sp.out_r.release()));
    err.emplace(nonblocking(ex, sp.err_r.release()));
    if (sp.in_w) s->in_.emplace(nonblocking(ex, sp.in_w.release()));
  }
  if (s->in_) {
    s->stdin_open_ = true;
    asio::co_spawn(ex, [s] { return s->feed_stdin(); }, log_exit("api.exec"));
  } else {
    s->stdin_q_.close();
  }
  log.info("exec started", {{"sprite", sprite}, {"session", s->id_}, {"pid", proc->pid}, {"tty", p.tty}});
  asio::co_spawn(ex, [s] { return s->watch_ports(); }, log_exit("api.exec"));
  asio::co_spawn(
      ex, [s, out = std::move(out), err = std::move(err)]() mutable { return s->run(std::move(out), std::move(err)); },
      log_exit("api.exec"));
  co_return s;
}

std::string ExecSession::info_json(bool owner) const {
  nlohmann::json info{{"type", "session_info"}, {"session_id", std::to_string(id_)}, {"command", command_},
                      {"created", created_},    {"tty", tty_},                      {"is_owner", owner}};
  if (tty_) {
    info["cols"] = cols_;
    info["rows"] = rows_;
  }
  return info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void ExecSession::attach(const std::shared_ptr<Attachment>& a, bool owner) {
  ++attach_gen_;           // a lingering kill of an earlier detach no longer applies
  linger_timer_.cancel();  // and its wait ends now
  a->out->put(Frame{Frame::text, info_json(owner)});
  for (const auto& f : scrollback_) a->out->put(Frame{Frame::binary, f});
  for (const auto& p : ports_) a->out->put(Frame{Frame::text, port_json("port_opened", p)});
  if (ended_) {
    finish(*a);
    return;
  }
  clients_.push_back(a);
}

void ExecSession::detach(const std::shared_ptr<Attachment>& a) {
  std::erase(clients_, a);
  if (!clients_.empty() || ended_ || exited_ || linger_ms_ == 0) return;
  std::uint64_t gen = ++attach_gen_;
  std::int64_t ms = linger_ms_;
  asio::co_spawn(ex_, [self = shared_from_this(), gen, ms] { return self->linger(gen, ms); }, log_exit("api.exec"));
}

// After the last client has gone, the process may run on for ms, then it gets SIGTERM
// and, 5 s later, SIGKILL. Ends as soon as the process does or a client attaches.
awaitable<void> ExecSession::linger(std::uint64_t gen, std::int64_t ms) {
  // One member timer: an attach cancels it, a later detach re-arms it (ending the wait
  // of the one before), so waits do not pile up however often clients come and go.
  linger_timer_.expires_after(std::chrono::milliseconds(ms));
  co_await (linger_timer_.async_wait(tuple_awaitable) || wait_exit());
  if (exited_ || gen != attach_gen_) co_return;
  asio::steady_timer t(ex_);
  Logger("api.exec").info("ending a session its client left", {{"session", id_}, {"after_ms", ms}});
  signal_group(SIGTERM);
  t.expires_after(5s);
  co_await (t.async_wait(tuple_awaitable) || wait_exit());
  if (!exited_) signal_group(SIGKILL);
}

// port_opened / port_closed (API.md 2.1.6) for the TCP ports the session's processes
// listen on, checked every kPortScan while someone is attached to hear about it.
awaitable<void> ExecSession::watch_ports() {
  constexpr auto kPortScan = 1s;
  asio::steady_timer t(ex_);
  std::vector<OpenPort>& known = ports_;
  while (!exited_) {
    t.expires_after(kPortScan);
    co_await (t.async_wait(tuple_awaitable) || wait_exit());
    if (exited_ || clients_.empty()) continue;
    const auto& by_session = processes_by_session();
    auto members = by_session.find(pid_);  // the process leads its own session
    std::vector<OpenPort> now;
    if (members != by_session.end()) now = listening_ports(members->second);
    std::vector<std::string> events;
    for (const auto& p : now)
      if (!std::binary_search(known.begin(), known.end(), p)) events.push_back(port_json("port_opened", p));
    for (const auto& p : known)
      if (!std::binary_search(now.begin(), now.end(), p)) events.push_back(port_json("port_closed", p));
    known = std::move(now);
    for (const auto& c : clients_)
      for (const auto& e : events) c->out->put(Frame{Frame::text, e});
  }
}

void ExecSession::signal_group(int sig) {
  if (!exited_ && pid_ > 0) ::kill(-pid_, sig);  // the process leads its own session and group
}

std::optional<Frame> ExecSession::input(bool text, std::string_view bytes, bool control) {
  if (ended_) return std::nullopt;
  ClientInput in = parse_client_frame(text, bytes, tty_, control);
  if (auto* r = std::get_if<Resize>(&in)) {
    winsize ws{};
    ws.ws_row = r->rows;
    ws.ws_col = r->cols;
    if (tty_ && pty_ && ::ioctl(pty_.get(), TIOCSWINSZ, &ws) == 0) {  // the kernel sends SIGWINCH
      rows_ = r->rows;  // what a later attach's session_info reports
      cols_ = r->cols;
    }
  } else if (auto* sig = std::get_if<Signal>(&in)) {
    signal_group(sig->sig);
  } else if (auto* data = std::get_if<Stdin>(&in); data && stdin_open_) {
    return Frame{Frame::binary, std::string(data->data)};
  } else if (std::holds_alternative<StdinEof>(in) && stdin_open_) {
    stdin_open_ = false;  // later stdin is dropped; what is queued still goes first
    return Frame{Frame::close, {}};
  }
  return std::nullopt;
}

awaitable<void> ExecSession::stdin_room() { co_await stdin_q_.room(); }

void ExecSession::stdin_put(Frame&& f) { stdin_q_.put(std::move(f)); }

// The only writer to the process's stdin: input from every client, in order.
awaitable<void> ExecSession::feed_stdin() {
  for (;;) {
    auto f = co_await stdin_q_.pop();
    if (!f || f->kind == Frame::close) break;
    auto [ec, n] = co_await asio::async_write(*in_, asio::buffer(f->data), tuple_awaitable);
    if (ec) break;  // the process closed its stdin: later input has nowhere to go
  }
  stdin_open_ = false;
  stdin_q_.close();
  in_.reset();  // EOF for the process (for a TTY only our copy of the master goes)
}

void ExecSession::record(const std::string& frame) {
  scrollback_.push_back(frame);
  scrollback_bytes_ += frame.size();
  while (scrollback_bytes_ > kScrollbackBytes && scrollback_.size() > 1) {
    scrollback_bytes_ -= scrollback_.front().size();
    scrollback_.pop_front();
  }
}

awaitable<void> ExecSession::pump(asio::posix::stream_descriptor fd, char stream_byte) {
  std::array<char, kReadChunk> buf;
  for (;;) {
    auto [ec, n] = co_await fd.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (ec) co_return;  // EOF; EIO on a PTY whose last holder is gone; cancelled after exit
    std::string frame;
    frame.reserve(n + 1);
    if (stream_byte) frame.push_back(stream_byte);
    frame.append(buf.data(), n);
    table_.activity(id_, n);
    record(frame);
    // With no one attached the output only feeds the scrollback: the process is never
    // blocked on it. An attached client that does not read pauses it (backpressure).
    auto clients = clients_;  // clients may come and go while this waits
    for (const auto& c : clients) {
      if (c->finished) continue;
      ++pumps_waiting_;
      co_await c->out->room();
      --pumps_waiting_;
      c->out->put(Frame{Frame::binary, frame});
    }
  }
}

awaitable<void> ExecSession::wait_exit() {
  if (!exited_) co_await exit_timer_.async_wait(tuple_awaitable);
}

// After the exit, the streams get kDrainAfterExit to reach EOF (a background child may
// hold them open), counted only while no output waits for a slow client.
awaitable<void> ExecSession::exit_then_grace() {
  co_await wait_exit();
  asio::steady_timer t(ex_);
  do {
    t.expires_after(kDrainAfterExit);
    co_await t.async_wait(tuple_awaitable);
  } while (pumps_waiting_ > 0);
}

// Output until the process has exited and its streams are drained (or kDrainAfterExit
// has passed), then the exit goes to every client.
awaitable<void> ExecSession::run(std::optional<asio::posix::stream_descriptor> out,
                                 std::optional<asio::posix::stream_descriptor> err) {
  if (!out) {
    co_await wait_exit();  // no output to read (see start: out of descriptors)
  } else if (tty_) {
    co_await (pump(std::move(*out), 0) || exit_then_grace());
  } else {
    co_await ((pump(std::move(*out), 0x01) && pump(std::move(*err), 0x02)) || exit_then_grace());
  }
  co_await wait_exit();
  end();
}

void ExecSession::finish(Attachment& a) {
  int code = exit_code_ & 0xff;
  if (tty_) a.out->put(Frame{Frame::text, exit_json(code)});
  else a.out->put(Frame{Frame::binary, exit_frame(code)});
  if (a.control) {
    nlohmann::json done{{"type", "op.complete"}, {"args", {{"ok", true}, {"exitCode", code}}}};
    if (!a.op_id.empty()) done["id"] = a.op_id;
    a.out->put(Frame{Frame::text, control_envelope(a.prefixed, done)});
  } else {
    auto close_code = static_cast<std::uint16_t>(tty_ && code != 0 ? 4000 + code : 1000);
    a.out->put(Frame{Frame::close, {}, close_code});
  }
  a.finished = true;
}

void ExecSession::end() {
  ended_ = true;
  // Delivered only to a socket still there: after a network drop the session stays
  // attachable, so its user can still learn how it ended.
  bool delivered = std::any_of(clients_.begin(), clients_.end(), [](const auto& c) { return !c->out->closed(); });
  for (const auto& c : clients_) finish(*c);
  clients_.clear();
  stdin_open_ = false;
  stdin_q_.close();
  if (in_) in_->cancel();  // a write a background holder of stdin never reads must not keep us
  pty_.reset();
  // Kept for attaching only when nobody saw the end (API.md 2.2).
  table_.ended(id_, delivered ? nullptr : shared_from_this());
}

}  // namespace bp::api
