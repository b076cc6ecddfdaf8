// api/server.cpp — HTTP/1.1 on Beast with C++20 coroutines: limits, keep-alive, stop.
#include "api/server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <array>
#include <deque>
#include <list>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

#include "api/chunked.hpp"
#include "api/errors.hpp"
#include "api/exec_params.hpp"
#include "api/exec_session_async.hpp"
#include "api/outbox.hpp"
#include "api/query.hpp"
#include "common/log.hpp"
#include "common/log_exit.hpp"
#include "common/pipe_bytes.hpp"
#include "common/offload.hpp"

namespace bp::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto tuple_awaitable = asio::as_tuple(use_awaitable);

struct StreamPipe;  // run_streamed

struct Server::Impl {
  Impl(asio::io_context& io, ServerConfig cfg, const Router& router, asio::thread_pool& blocking,
       const ExecDeps* exec, SessionTable* sessions)
      : io_(io), cfg_(std::move(cfg)), router_(router), blocking_(blocking), exec_(exec), sessions_(sessions),
        acceptor_(io) {}

  awaitable<void> accept_loop();
  awaitable<void> session(tcp::socket sock);
  awaitable<void> run_streamed(beast::tcp_stream& stream, std::function<Response(const Emit&)> work);
  awaitable<void> write_streamed(beast::tcp_stream& stream, std::shared_ptr<StreamPipe> pipe,
                                 std::shared_ptr<asio::steady_timer> bell, std::string version);
  awaitable<void> tls_relay(tcp::socket sock);
  http::response<http::string_body> to_beast(const Response& r, unsigned version, bool keep_alive,
                                             bool head) const;

  asio::io_context& io_;
  ServerConfig cfg_;
  const Router& router_;
  asio::thread_pool& blocking_;
  const ExecDeps* exec_;
  SessionTable* sessions_;
  tcp::acceptor acceptor_;
  std::optional<asio::ssl::context> tls_;  // set: every accepted connection is TLS
  // Every open connection, so stop() can end them: a WebSocket with a 1001 close frame
  // through its writer (API.md 1.7), anything else (and, after kGoingAway, everything
  // left) by closing its socket.
  struct Live {
    beast::tcp_stream* stream;
    std::shared_ptr<Outbox> ws_out;
  };
  std::list<Live> live_;
  std::optional<asio::steady_timer> going_away_;
  bool stopped_ = false;
  Logger log_{"api.server"};
};

Server::Server(asio::io_context& io, ServerConfig cfg, const Router& router, asio::thread_pool& blocking,
               const ExecDeps* exec, SessionTable* sessions)
    : impl_(std::make_unique<Impl>(io, std::move(cfg), router, blocking, exec, sessions)) {}

Server::~Server() = default;

Status Server::start() {
  if (!impl_->cfg_.tls_cert.empty()) {
    auto& ctx = impl_->tls_.emplace(asio::ssl::context::tls_server);
    boost::system::error_code ec;
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    if (ctx.use_certificate_chain_file(impl_->cfg_.tls_cert, ec); ec)
      return make_error("api: TLS certificate " + impl_->cfg_.tls_cert + ": " + ec.message(), EINVAL);
    if (ctx.use_private_key_file(impl_->cfg_.tls_key, asio::ssl::context::pem, ec); ec)
      return make_error("api: TLS key " + impl_->cfg_.tls_key + ": " + ec.message(), EINVAL);
  }
  auto& a = impl_->acceptor_;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(impl_->cfg_.host, ec);
  if (ec) return make_error("api: listen address '" + impl_->cfg_.host + "': " + ec.message());
  tcp::endpoint ep(addr, impl_->cfg_.port);
  std::string where = impl_->cfg_.host + ":" + std::to_string(impl_->cfg_.port);
  if (a.open(ep.protocol(), ec); ec) return make_error("api: socket(" + where + "): " + ec.message(), ec.value());
  if (a.set_option(asio::socket_base::reuse_address(true), ec); ec)
    return make_error("api: setsockopt(SO_REUSEADDR): " + ec.message(), ec.value());
  if (a.bind(ep, ec); ec) return make_error("api: bind(" + where + "): " + ec.message(), ec.value());
  if (a.listen(asio::socket_base::max_listen_connections, ec); ec)
    return make_error("api: listen(" + where + "): " + ec.message(), ec.value());
  // Asio opens sockets without SOCK_CLOEXEC; children must never inherit the listener.
  ::fcntl(a.native_handle(), F_SETFD, FD_CLOEXEC);
  asio::co_spawn(impl_->io_, [this] { return impl_->accept_loop(); }, log_exit("api.server"));
  return {};
}

void Server::stop() {
  if (impl_->stopped_) return;
  impl_->stopped_ = true;
  boost::system::error_code ec;
  impl_->acceptor_.close(ec);
  for (auto& c : impl_->live_) {
    if (c.ws_out) c.ws_out->close_with(1001);
    else c.stream->socket().close(ec);
  }
  constexpr auto kGoingAway = std::chrono::seconds(2);  // for the close handshakes
  impl_->going_away_.emplace(impl_->io_, kGoingAway);
  impl_->going_away_->async_wait([impl = impl_.get()](boost::system::error_code e) {
    if (e) return;
    boost::system::error_code ec;
    for (auto& c : impl->live_) c.stream->socket().close(ec);
  });
}

std::uint16_t Server::port() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor_.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

std::size_t Server::connections() const { return impl_->live_.size(); }

bool Server::tls() const { return impl_->tls_.has_value(); }

namespace {
Response too_many_sessions(std::size_t limit) {
  Response r = json_error(429, "too_many_sessions",
                          "this runtime runs at most " + std::to_string(limit) +
                              " exec sessions at once; end some (see GET .../exec) and try again");
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

// /v1/sprites/{name}/exec, with or without a query.
bool is_exec_path(const std::string& target) {
  auto seg = split_path(target);
  return seg && seg->size() == 4 && (*seg)[0] == "v1" && (*seg)[1] == "sprites" && (*seg)[3] == "exec";
}
}  // namespace

awaitable<void> Server::Impl::accept_loop() {
  while (!stopped_) {
    auto [ec, sock] = co_await acceptor_.async_accept(tuple_awaitable);
    if (stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE and friends: the listener must outlive a burst, so wait and go on.
      log_.warn("accept failed", {{"err", ec.message()}});
      asio::steady_timer t(io_, std::chrono::milliseconds(100));
      co_await t.async_wait(tuple_awaitable);
      continue;
    }
    ::fcntl(sock.native_handle(), F_SETFD, FD_CLOEXEC);
    // No Nagle: small frames (an exec's exit, a keystroke's echo) go out at once, and
    // HTTP exec's paced frames stay separate reads for the client (API.md 2.5).
    boost::system::error_code nd;
    sock.set_option(tcp::no_delay(true), nd);
    if (tls_) {
      asio::co_spawn(io_, [this, sock = std::move(sock)]() mutable { return tls_relay(std::move(sock)); },
                     log_exit("api.tls"));
    } else {
      asio::co_spawn(io_, [this, sock = std::move(sock)]() mutable { return session(std::move(sock)); },
                     log_exit("api.session"));
    }
  }
}

// TLS in front of the plain server: the handshake, then the decrypted bytes go through
// a socket pair to session(), which cannot tell the difference. One copy per byte buys
// one implementation of HTTP, WebSocket, limits and shutdown for both.
awaitable<void> Server::Impl::tls_relay(tcp::socket sock) {
  using namespace asio::experimental::awaitable_operators;
  asio::ssl::stream<tcp::socket> tls(std::move(sock), *tls_);
  asio::steady_timer deadline(io_, std::chrono::seconds(10));
  auto hs = co_await (tls.async_handshake(asio::ssl::stream_base::server, tuple_awaitable) ||
                      deadline.async_wait(tuple_awaitable));
  if (hs.index() != 0 || std::get<0>(std::get<0>(hs))) co_return;  // slow or failed: dropped
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    log_.warn("socketpair failed", {{"errno", errno}});
    co_return;
  }
  boost::system::error_code ec1, ec2;
  tcp::socket inner(io_);
  inner.assign(tcp::v4(), sv[0], ec1);  // a stream socket is a stream socket to Beast
  asio::local::stream_protocol::socket outer(io_);
  outer.assign(asio::local::stream_protocol(), sv[1], ec2);
  if (ec1 || ec2) {
    if (ec1) ::close(sv[0]);
    if (ec2) ::close(sv[1]);
    co_return;  // the sockets that were assigned close with their objects
  }
  asio::co_spawn(io_, [this, inner = std::move(inner)]() mutable { return session(std::move(inner)); },
                 log_exit("api.session"));
  // Client to server; its end (or a reset) ends the server side's input.
  auto upstream = [&]() -> awaitable<void> {
    co_await pipe_bytes(tls, outer);
    boost::system::error_code e;
    outer.shutdown(asio::socket_base::shutdown_send, e);
  };
  // Server to client; when the server is done, TLS says goodbye and the socket closes.
  auto downstream = [&]() -> awaitable<void> {
    co_await pipe_bytes(outer, tls);
    deadline.expires_after(std::chrono::seconds(2));
    co_await (tls.async_shutdown(tuple_awaitable) || deadline.async_wait(tuple_awaitable));
    boost::system::error_code e;
    tls.lowest_layer().close(e);
  };
  co_await (upstream() && downstream());
}

http::response<http::string_body> Server::Impl::to_beast(const Response& r, unsigned version,
                                                         bool keep_alive, bool head) const {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "ballpoint");
  res.set("Sprite-Version", router_.config().version);
  res.set(http::field::content_type, r.content_type);
  for (const auto& [k, v] : r.headers) res.set(k, v);
  res.keep_alive(keep_alive);
  if (head) {
    res.content_length(r.body.size());
  } else {
    res.body() = r.body;
    res.prepare_payload();
  }
  return res;
}

awaitable<void> Server::Impl::session(tcp::socket sock) {
  beast::tcp_stream stream(std::move(sock));
  auto self = live_.insert(live_.end(), Live{&stream, nullptr});
  struct Unlist {
    std::list<Live>& l;
    std::list<Live>::iterator it;
    ~Unlist() { l.erase(it); }
  } unlist{live_, self};

  // An error that ends the connection (413, 431, 400, 503). Callers pass a named
  // Response: GCC 12 may destroy a temporary bound to a coroutine's reference
  // parameter before the coroutine body runs. Closing a socket with unread
  // input makes the kernel send a reset, which can destroy the response before the
  // client reads it: so half-close, then read and drop what is still coming, bounded.
  auto reply_and_close = [&](const Response& r) -> awaitable<void> {
    auto res = to_beast(r, 11, false, false);
    stream.expires_after(std::chrono::seconds(10));
    auto [wec, wn] = co_await http::async_write(stream, res, tuple_awaitable);
    if (wec) co_return;
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.expires_after(std::chrono::seconds(2));
    std::array<char, 16384> sink;
    for (std::size_t drained = 0; drained < cfg_.body_limit * 4;) {
      auto [rec, n] = co_await stream.async_read_some(asio::buffer(sink), tuple_awaitable);
      if (rec) break;
      drained += n;
    }
  };

  if (live_.size() > cfg_.max_connections) {
    Response busy = json_error(503, "too_many_connections", "the server has too many open connections");
    co_await reply_and_close(busy);
    co_return;
  }

  beast::flat_buffer buf;
  while (!stopped_) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(cfg_.header_limit);
    parser.body_limit(cfg_.body_limit);
    stream.expires_after(std::chrono::milliseconds(cfg_.idle_timeout_ms));
    auto [ec, n] = co_await http::async_read(stream, buf, parser, tuple_awaitable);
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof || stopped_)
      break;
    if (ec == http::error::body_limit) {
      Response err = json_error(413, "body_too_large", "request body exceeds " + std::to_string(cfg_.body_limit) + " bytes");
      co_await reply_and_close(err);
      break;
    }
    if (ec == http::error::header_limit) {
      Response err = json_error(431, "headers_too_large", "request headers are too large");
      co_await reply_and_close(err);
      break;
    }
    if (ec) {
      Response err = json_error(400, "bad_request", "malformed HTTP request: " + ec.message());
      co_await reply_and_close(err);
      break;
    }
    auto& msg = parser.get();
    Request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.authorization = std::string(msg[http::field::authorization]);
    req.accept = std::string(msg[http::field::accept]);
    req.body = std::move(msg.body());
    if (websocket::is_upgrade(msg)) {
      auto routed = router_.route_upgrade(req);
      if (auto* err = std::get_if<Response>(&routed)) {
        co_await reply_and_close(*err);  // refused before any upgrade (API.md 1.2)
        break;
      }
      auto target = std::get<WsRoute>(routed);
      std::optional<ExecParams> params;
      std::shared_ptr<ExecSession> attach_to;
      std::optional<Response> refuse;
      if (!exec_ || !sessions_ || !exec_->container(target.sprite)) {
        refuse = json_error(503, "unavailable", "sprite '" + target.sprite + "' is not running");
      } else if (target.kind == WsRoute::exec && sessions_->full()) {
        refuse = too_many_sessions(sessions_->limit());
      } else if (target.kind == WsRoute::exec) {
        auto p = parse_exec_params(parse_query(req.target).value_or(Query{}));
        if (p) params = std::move(*p);
        else refuse = json_error(400, "bad_request", p.error().what);
      } else if (target.kind == WsRoute::attach) {
        auto info = sessions_->get(target.sprite, target.session);
        attach_to = info ? info->live : nullptr;
        if (!attach_to) refuse = json_error(404, "not_found", "session " + std::to_string(target.session) + " not found");
      }
      if (refuse) {
        co_await reply_and_close(*refuse);
        break;
      }
      WsStream ws(std::move(stream));
      // stop() now closes the WebSocket through its writer.
      auto out = std::make_shared<Outbox>(ws.get_executor(), kWsOutFrames, kWsOutBytes);
      *self = Live{&ws.next_layer(), out};
      // The HTTP idle deadline must not end a quiet exec: the WebSocket has its own.
      ws.next_layer().expires_never();
      ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
      ws.read_message_max(4 * 1024 * 1024);
      std::string version = router_.config().version;
      bool exec_caps = target.kind != WsRoute::control;
      ws.set_option(websocket::stream_base::decorator([version, exec_caps](websocket::response_type& res) {
        res.set(http::field::server, "ballpoint");
        res.set("Sprite-Version", version);
        if (exec_caps) res.set("X-Sprite-Capabilities", "signal");
      }));
      auto [aec] = co_await ws.async_accept(parser.release(), tuple_awaitable);
      if (aec) co_return;
      if (target.kind == WsRoute::exec) co_await run_exec(ws, out, std::move(*params), target.sprite, *sessions_, *exec_, blocking_);
      else if (target.kind == WsRoute::attach) co_await run_attach(ws, out, attach_to);
      else co_await run_control(ws, out, target.sprite, *sessions_, *exec_, blocking_);
      co_return;
    }
    if (Router::is_watch(req)) {
      if (auto refused = router_.refuse_watch(req)) {
        co_await reply_and_close(*refused);
        break;
      }
      auto q = parse_query(req.target).value_or(Query{});
      const auto& rc = router_.config();
      WatchRequest w{rc.org, rc.version, query_get(q, "prefix").value_or(""), rc.max_sprites};
      stream.expires_never();  // the request's read deadline must not cut a long stream
      co_await run_watch(stream, router_.registry(), w);
      break;
    }
    if (Router::is_kill(req) && sessions_) {
      auto routed = router_.kill_request(req);
      if (auto* err = std::get_if<Response>(&routed)) {
        co_await reply_and_close(*err);
        break;
      }
      stream.expires_never();
      co_await run_kill(stream, std::get<KillRequest>(routed), *sessions_, router_.config().version);
      break;
    }
    if (req.method == "POST" && is_exec_path(req.target)) {
      // Exec over plain HTTP streams its answer: it cannot go through route(). Routed
      // by its path alone (with ?id= route_upgrade() would look for a session).
      Request path_only{req.method, req.target.substr(0, req.target.find('?')), req.authorization, req.accept, {}};
      auto routed = router_.route_upgrade(path_only);
      auto params = parse_exec_params(parse_query(req.target).value_or(Query{}));
      std::optional<Response> err;
      auto q = parse_query(req.target).value_or(Query{});
      if (auto* e = std::get_if<Response>(&routed)) err = *e;
      else if (query_get(q, "tty") || query_get(q, "id") || query_get(q, "detachable") || query_get(q, "cc"))
        err = json_error(400, "bad_request", "HTTP exec runs without a terminal and cannot attach; use the WebSocket");
      else if (!params) err = json_error(400, "bad_request", params.error().what);
      else if (sessions_ && sessions_->full()) err = too_many_sessions(sessions_->limit());
      else if (!exec_ || !sessions_ || !exec_->container(std::get<WsRoute>(routed).sprite))
        err = json_error(503, "unavailable", "the sprite is not running");
      if (err) {
        co_await reply_and_close(*err);
        break;
      }
      stream.expires_never();
      co_await run_http_exec(stream, std::move(req.body), std::move(*params), std::get<WsRoute>(routed).sprite,
                             router_.config().version, *sessions_, *exec_, blocking_);
      break;
    }
    Routed routed = router_.route(req);
    if (routed.streaming) {
      co_await run_streamed(stream, std::move(routed.streaming));
      break;
    }
    Response r = std::move(routed.response);
    if (routed.blocking) {
      try {
        r = co_await offload(blocking_, std::move(routed.blocking));
      } catch (const std::exception& e) {
        log_.error("request failed", {{"target", req.target}, {"err", e.what()}});
        r = json_error(500, "internal_error", e.what());
      }
    }
    bool keep = msg.keep_alive();
    auto res = to_beast(r, msg.version(), keep, req.method == "HEAD");
    stream.expires_after(std::chrono::seconds(30));
    auto [wec, wn] = co_await http::async_write(stream, res, tuple_awaitable);
    if (wec || !keep) break;
  }
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.socket().close(ec);
}

// Streamed blocking work (Routed::streaming): the work runs on the blocking pool and
// hands its lines over through a queue; a timer that the work cancels (on this loop,
// through post) wakes the writer. The loop is one thread, so a wake-up posted after the
// writer's last look at the queue runs only once it waits: none is lost.
struct StreamPipe {
  std::mutex mu;
  std::deque<std::string> lines;
  bool done = false;
  Response final;  // the answer, when the work emitted no line
};

// Not a coroutine: GCC 12 destroys a coroutine's by-value parameter twice when it is
// moved into a lambda capture (see common/offload.hpp), so work goes straight into the
// job and the coroutine gets only the shared pipe and bell.
awaitable<void> Server::Impl::run_streamed(beast::tcp_stream& stream, std::function<Response(const Emit&)> work) {
  auto pipe = std::make_shared<StreamPipe>();
  auto bell = std::make_shared<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
  auto ring = [bell] { asio::post(bell->get_executor(), [bell] { bell->cancel(); }); };
  Emit emit = [pipe, ring](std::string line) {
    {
      std::lock_guard lk(pipe->mu);
      pipe->lines.push_back(std::move(line));
    }
    ring();
  };
  asio::post(blocking_, [pipe, ring, emit, work = std::move(work)] {
    Response r;
    try {
      r = work(emit);
    } catch (const std::exception& e) {
      // After the first line the answer is the stream: the failure goes into it.
      emit(nlohmann::json{{"type", "error"}, {"error", std::string("internal error: ") + e.what()}}.dump() + "\n");
      r = json_error(500, "internal_error", e.what());
    }
    {
      std::lock_guard lk(pipe->mu);
      pipe->done = true;
      pipe->final = std::move(r);
    }
    ring();
  });
  return write_streamed(stream, pipe, bell, router_.config().version);
}

awaitable<void> Server::Impl::write_streamed(beast::tcp_stream& stream, std::shared_ptr<StreamPipe> pipe,
                                             std::shared_ptr<asio::steady_timer> bell, std::string version) {
  stream.expires_never();  // a restore may take a while; the stream ends with the work
  bool started = false, sent = true;
  for (;;) {
    std::deque<std::string> lines;
    bool done;
    {
      std::lock_guard lk(pipe->mu);
      lines.swap(pipe->lines);
      done = pipe->done;
    }
    // No co_await inside a condition (GCC 12, see api/kill.cpp): each result is named.
    for (const std::string& line : lines) {
      if (!started) {
        started = true;
        sent = co_await write_stream_head(stream, "application/x-ndjson", version);
        if (!sent) co_return;
      }
      sent = co_await write_chunk(stream, line);
      if (!sent) co_return;  // the client left; the work goes on
    }
    if (done) {
      if (started) {
        sent = co_await write_last_chunk(stream);
      } else {
        Response r;
        {
          std::lock_guard lk(pipe->mu);
          r = std::move(pipe->final);
        }
        auto res = to_beast(r, 11, false, false);
        stream.expires_after(std::chrono::seconds(30));
        co_await http::async_write(stream, res, tuple_awaitable);
      }
      co_return;
    }
    {
      // What came while the writes above were suspended rang with nobody waiting: look
      // again, with no suspension between this look and the wait.
      std::lock_guard lk(pipe->mu);
      if (!pipe->lines.empty() || pipe->done) continue;
    }
    bell->expires_at(asio::steady_timer::time_point::max());
    co_await bell->async_wait(tuple_awaitable);
  }
}

}  // namespace bp::api
