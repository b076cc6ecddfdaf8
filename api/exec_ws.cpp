// api/exec_ws.cpp — the WebSocket side of exec: a socket's one writer behind a bounded
// queue, keepalive, and the readers of /exec, /exec/{id} and /control (API.md 2.1,
// 2.2, 2.6).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

#include "api/client_input.hpp"
#include "api/control_args.hpp"
#include "api/exec_session_async.hpp"
#include "api/live_session.hpp"
#include "common/log.hpp"

namespace bp::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

constexpr auto kKeepalive = 15s;  // the JS SDK aborts an exec after 45 s without a message

// The only writer to the socket (Beast allows one write in flight). Ends after a close
// frame or a failed write, and then closes the queue so producers stop waiting on it.
awaitable<void> writer(WsStream& ws, Outbox& out) {
  for (;;) {
    std::optional<Frame> f = co_await out.pop();
    if (!f) break;
    if (f->kind == Frame::close) {
      co_await ws.async_close(websocket::close_reason(f->close_code), tuple_awaitable);
      break;
    }
    ws.binary(f->kind == Frame::binary);
    auto [ec, n] = co_await ws.async_write(asio::buffer(f->data), tuple_awaitable);
    if (ec) break;
  }
  out.close();
}

// An empty binary frame after kKeepalive without any frame, while *op runs (API.md 1.7:
// JS and Go ignore it; WebSocket pings do not reset the SDK's timer).
awaitable<void> keepalive(Outbox& out, const std::shared_ptr<Attachment>* op) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  auto last = std::chrono::steady_clock::now();
  for (;;) {
    last = std::max(last, out.last_put());
    t.expires_at(last + kKeepalive);
    auto [ec] = co_await t.async_wait(tuple_awaitable);
    if (ec) co_return;
    if (std::chrono::steady_clock::now() < std::max(last, out.last_put()) + kKeepalive) continue;
    last = std::chrono::steady_clock::now();
    // Never ends on its own: the writer (which it runs beside) may still owe a close frame.
    if (*op && !(*op)->finished && !out.closed()) {
      co_await out.room();
      if (*op && !(*op)->finished) out.put(Frame{Frame::binary, {}});  // it may have ended meanwhile
    }
  }
}

std::string_view payload(const beast::flat_buffer& buf) {
  auto data = buf.cdata();
  return {static_cast<const char*>(data.data()), data.size()};
}

// Reads the client of an exec or attach socket: input to the session until the socket
// ends; then the client has detached.
awaitable<void> exec_reader(WsStream& ws, std::shared_ptr<ExecSession> s, std::shared_ptr<Attachment> a) {
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf, tuple_awaitable);
    if (ec) break;
    std::string_view bytes = payload(buf);
    if (!a->finished) {
      if (auto chunk = s->input(ws.got_text(), bytes, false)) {
        // A process that does not read its stdin stops this reader; the socket's end
        // (its writer fails, keepalives included) must still end the wait.
        auto woke = co_await (s->stdin_room() || a->out->wait_closed());  // never inside the if: GCC 12
        if (woke.index() == 1) break;
        s->stdin_put(std::move(*chunk));
      }
    }
    buf.consume(buf.size());
  }
  s->detach(a);
  a->out->close();
}

awaitable<void> serve(WsStream& ws, std::shared_ptr<ExecSession> s, std::shared_ptr<Attachment> a) {
  co_await (exec_reader(ws, s, a) && (writer(ws, *a->out) || keepalive(*a->out, &a)));
}

}  // namespace

awaitable<void> run_exec(WsStream& ws, std::shared_ptr<Outbox> out, ExecParams p, std::string sprite, SessionTable& sessions,
                         const ExecDeps& deps, asio::thread_pool& blocking) {
  auto s = co_await ExecSession::start(std::move(p), sprite, sessions, deps, blocking);
  auto a = std::make_shared<Attachment>();
  a->out = out;
  s->attach(a, true);
  co_await serve(ws, s, a);
}

awaitable<void> run_attach(WsStream& ws, std::shared_ptr<Outbox> out, std::shared_ptr<ExecSession> s) {
  auto a = std::make_shared<Attachment>();
  a->out = out;
  s->attach(a, false);
  Logger("api.exec").info("session attached", {{"session", s->id()}});
  co_await serve(ws, s, a);
}

namespace {

// One control socket: at most one operation (op) at a time on one outbox.
struct Control {
  WsStream& ws;
  std::string sprite;
  SessionTable& sessions;
  const ExecDeps& deps;
  asio::thread_pool& blocking;
  std::shared_ptr<Outbox> out;
  std::shared_ptr<ExecSession> session;
  std::shared_ptr<Attachment> op;  // the running operation's attachment

  bool busy() const { return op && !op->finished; }

  void reply_error(bool prefixed, const std::string& id, const std::string& opname, const char* code,
                   const std::string& message) {
    // Echoed client strings are cut short: a reply is never much bigger than a line.
    constexpr std::size_t kEcho = 256;
    nlohmann::json j{{"type", "op.error"},
                     {"op", opname.substr(0, kEcho)},
                     {"args", {{"code", code}, {"message", message.substr(0, 4 * kEcho)}, {"error", message.substr(0, 4 * kEcho)}}}};
    if (!id.empty()) j["id"] = id.substr(0, kEcho);
    out->put(Frame{Frame::text, control_envelope(prefixed, j)});
  }

  // op.start: starts the operation before the next frame is read, so the frames that
  // follow it (JS sends the stdin EOF right behind) belong to it.
  awaitable<void> start(Envelope env) {
    if (env.id.size() > 256) env.id.resize(256);  // echoed in every reply
    if (busy()) {
      reply_error(env.prefixed, env.id, env.op, "op.busy", "an operation is already running on this socket");
      co_return;
    }
    if (env.op == "exec" && sessions.full()) {
      reply_error(env.prefixed, env.id, env.op, "too_many_sessions",
                  "this runtime runs at most " + std::to_string(sessions.limit()) + " exec sessions at once");
      co_return;
    }
    if (env.op != "exec") {
      reply_error(env.prefixed, env.id, env.op, "op.not_found",
                  "operation '" + env.op.substr(0, 64) + "' is not available here");
      co_return;
    }
    auto q = control_args_query(env.args);
    auto params = q ? parse_exec_params(*q) : Result<ExecParams>(make_error("args must be an object or a query string"));
    if (!params) {
      reply_error(env.prefixed, env.id, env.op, "op.invalid", params.error().what);
      co_return;
    }
    session = co_await ExecSession::start(std::move(*params), sprite, sessions, deps, blocking);
    op = std::make_shared<Attachment>();
    op->out = out;
    op->control = true;
    op->prefixed = env.prefixed;
    op->op_id = env.id;
    if (env.prefixed) {
      nlohmann::json ack{{"type", "op.ack"}};
      if (!env.id.empty()) ack["id"] = env.id;
      out->put(Frame{Frame::text, control_envelope(true, ack)});
    }
    session->attach(op, true);
    Logger("api.control").info("control op started", {{"sprite", sprite}, {"op", env.op}, {"session", session->id()}});
  }

  awaitable<void> reader() {
    beast::flat_buffer buf;
    for (;;) {
      auto [ec, n] = co_await ws.async_read(buf, tuple_awaitable);
      if (ec) break;
      std::string_view bytes = payload(buf);
      auto env = ws.got_text() ? parse_envelope(bytes) : std::nullopt;
      if (env) {
        // release (and anything else a client may send) needs no reply. A reply waits
        // for room like any frame: a client that sends and never reads gets nowhere.
        if (env->type == "op.start") {
          co_await out->room();
          co_await start(std::move(*env));
        }
      } else if (busy()) {
        if (auto chunk = session->input(ws.got_text(), bytes, true)) {
          auto woke = co_await (session->stdin_room() || out->wait_closed());
          if (woke.index() == 1) break;
          session->stdin_put(std::move(*chunk));
        }
      }  // data while idle: dropped (API.md 2.6)
      buf.consume(buf.size());
    }
    if (busy()) session->detach(op);
    out->close();
  }
};

}  // namespace

awaitable<void> run_control(WsStream& ws, std::shared_ptr<Outbox> out, std::string sprite, SessionTable& sessions, const ExecDeps& deps,
                            asio::thread_pool& blocking) {
  Control c{ws, sprite, sessions, deps, blocking, out, nullptr, nullptr};
  co_await (c.reader() && (writer(ws, *c.out) || keepalive(*c.out, &c.op)));
}

}  // namespace bp::api
