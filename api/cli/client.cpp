// api/cli/client.cpp — HTTP and WebSocket exec for the CLI, on Beast.
#include "api/cli/client.hpp"

#include "common/pipe_bytes.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

namespace bp::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

struct HostPort {
  std::string host, port;
  bool tls = false;
};

HostPort split_url(const std::string& url) {
  std::string rest = url;
  bool tls = false;
  if (rest.rfind("http://", 0) == 0) rest.erase(0, 7);
  else if (rest.rfind("https://", 0) == 0) rest.erase(0, 8), tls = true;
  else throw std::runtime_error("endpoints are http:// or https:// URLs, got " + url);
  if (auto slash = rest.find('/'); slash != std::string::npos) rest.erase(slash);
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || rest.back() == ']') return {rest, tls ? "443" : "80", tls};
  std::string host = rest.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return {host, rest.substr(colon + 1), tls};
}

// TLS for the CLI: the handshake here, then a thread relays between the TLS connection
// and one end of a socket pair, so the HTTP and WebSocket code stays plain. The server
// is verified against the system's CAs and $BALLPOINT_CA_CERT (a PEM file), by name or IP.
class TlsRelay {
 public:
  TlsRelay(const HostPort& hp, int plain_fd) : ctx_(asio::ssl::context::tls_client), tls_(io_, ctx_) {
    ctx_.set_default_verify_paths();
    if (const char* ca = std::getenv("BALLPOINT_CA_CERT"); ca && *ca) ctx_.load_verify_file(ca);
    tls_.set_verify_mode(asio::ssl::verify_peer);
    tls_.set_verify_callback(asio::ssl::host_name_verification(hp.host));
    boost::system::error_code ec;
    asio::ip::make_address(hp.host, ec);
    if (ec) ::SSL_set_tlsext_host_name(tls_.native_handle(), hp.host.c_str());  // SNI for names only
    asio::connect(tls_.next_layer(), tcp::resolver(io_).resolve(hp.host, hp.port));
    tls_.handshake(asio::ssl::stream_base::client, ec);
    if (ec)
      throw std::runtime_error("TLS with " + hp.host + ":" + hp.port + " failed: " + ec.message() +
                               " (a self-signed server? set BALLPOINT_CA_CERT to its certificate)");
    plain_.assign(asio::local::stream_protocol(), plain_fd);
    // Ours to the server; at its end TLS says goodbye.
    asio::co_spawn(io_, [this]() -> awaitable<void> {
      co_await pipe_bytes(plain_, tls_);
      co_await tls_.async_shutdown(tuple_awaitable);
      boost::system::error_code e;
      tls_.lowest_layer().close(e);
    }, asio::detached);
    // The server's to us; at its end we read EOF.
    asio::co_spawn(io_, [this]() -> awaitable<void> {
      co_await pipe_bytes(tls_, plain_);
      boost::system::error_code e;
      plain_.shutdown(asio::socket_base::shutdown_send, e);
    }, asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TlsRelay() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  asio::io_context io_;
  asio::ssl::context ctx_;
  asio::ssl::stream<tcp::socket> tls_;
  asio::local::stream_protocol::socket plain_{io_};
  std::thread thread_;
};

// A connected stream to the endpoint: TCP for http://, a socket pair into a TlsRelay
// for https:// (the relay lives as long as `relay`).
tcp::socket connect_to(asio::io_context& io, const HostPort& hp, std::unique_ptr<TlsRelay>& relay) {
  tcp::socket sock(io);
  if (!hp.tls) {
    asio::connect(sock, tcp::resolver(io).resolve(hp.host, hp.port));
    return sock;
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair failed");
  sock.assign(tcp::v4(), sv[0]);
  relay = std::make_unique<TlsRelay>(hp, sv[1]);
  return sock;
}

// The terminal in raw mode for as long as this lives.
class RawTerminal {
 public:
  explicit RawTerminal(bool enable) {
    if (!enable || !::isatty(0) || ::tcgetattr(0, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(0, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() { restore(); }
  void restore() {
    if (active_) ::tcsetattr(0, TCSANOW, &saved_);
    active_ = false;
  }

 private:
  termios saved_{};
  bool active_ = false;
};

// Blocks until everything is written: a terminal that falls behind says EAGAIN when
// someone made it non-blocking, and dropping output then would be silent data loss.
void write_all_fd(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      pollfd pf{fd, POLLOUT, 0};
      ::poll(&pf, 1, -1);
      continue;
    }
    if (w <= 0) return;  // the reader is gone (EPIPE): nothing more to do
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Our own open file description of stdin, so that making it non-blocking for Asio does
// not make the user's terminal (shared with stdout and the shell) non-blocking too.
int own_stdin() {
  int fd = ::open("/proc/self/fd/0", O_RDONLY | O_CLOEXEC | O_NOCTTY);
  return fd >= 0 ? fd : ::fcntl(0, F_DUPFD_CLOEXEC, 3);  // sockets cannot be reopened
}

using Ws = websocket::stream<beast::tcp_stream>;

constexpr char kDetachKey = 0x1c;  // Ctrl+\ in a raw terminal

struct ExecState {
  int exit_code = -1;
  bool done = false;
  bool detached = false;
  std::string session_id;
};

awaitable<void> receive(Ws& ws, ExecState& st, bool tty) {
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf, tuple_awaitable);
    if (ec) {
      if (st.exit_code < 0) {
        auto code = ws.reason().code;
        st.exit_code = code == 1000 ? 0 : code >= 4000 && code <= 4255 ? code - 4000 : 255;
      }
      break;
    }
    auto d = buf.cdata();
    const char* p = static_cast<const char*>(d.data());
    std::size_t len = d.size();
    if (ws.got_text()) {
      auto j = nlohmann::json::parse(std::string(p, len), nullptr, false);
      if (j.is_object() && j["type"] == "exit" && j["exit_code"].is_number_integer())
        st.exit_code = j["exit_code"].get<int>();
      if (j.is_object() && j["type"] == "session_info" && j["session_id"].is_string())
        st.session_id = j["session_id"].get<std::string>();
    } else if (tty) {
      write_all_fd(1, p, len);
    } else if (len > 0) {
      if (p[0] == 0x01) write_all_fd(1, p + 1, len - 1);
      else if (p[0] == 0x02) write_all_fd(2, p + 1, len - 1);
      else if (p[0] == 0x03 && len == 2) st.exit_code = static_cast<unsigned char>(p[1]);
    }
    buf.consume(buf.size());
  }
  st.done = true;
}

// Our stdin to the process: raw bytes with a terminal, else 0x00-prefixed frames and a
// final 0x04 (EOF). Sends go through the one writer: this coroutine.
awaitable<void> send_input(Ws& ws, ExecState& st, bool tty, bool detach_key, bool send_eof) {
  struct stat sb {};
  ::fstat(0, &sb);
  // epoll cannot wait on a regular file: read those directly (they never block long).
  bool pollable = !S_ISREG(sb.st_mode);
  std::optional<asio::posix::stream_descriptor> in;
  if (pollable) in.emplace(co_await asio::this_coro::executor, own_stdin());
  std::array<char, 32768> buf;
  // SIGWINCH through a signalfd, so the resize goes out from this coroutine too.
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  std::optional<asio::posix::stream_descriptor> sig;
  if (tty) {
    ::sigprocmask(SIG_BLOCK, &winch, nullptr);
    sig.emplace(co_await asio::this_coro::executor, ::signalfd(-1, &winch, SFD_CLOEXEC | SFD_NONBLOCK));
  }
  auto send_resize = [&]() -> awaitable<void> {
    winsize w{};
    if (::ioctl(1, TIOCGWINSZ, &w) != 0 || !w.ws_row) co_return;
    std::string msg = nlohmann::json{{"type", "resize"}, {"rows", w.ws_row}, {"cols", w.ws_col}}.dump();
    ws.text(true);
    co_await ws.async_write(asio::buffer(msg), tuple_awaitable);
  };
  for (;;) {
    if (st.done) co_return;
    std::size_t n = 0;
    boost::system::error_code ec;
    if (!pollable) {
      ssize_t r = ::read(0, buf.data(), buf.size());
      if (r <= 0) ec = asio::error::eof;
      else n = static_cast<std::size_t>(r);
    } else if (sig) {
      signalfd_siginfo si;
      auto r = co_await (in->async_read_some(asio::buffer(buf), tuple_awaitable) ||
                         sig->async_wait(asio::posix::descriptor_base::wait_read, tuple_awaitable));
      if (r.index() == 1) {
        while (::read(sig->native_handle(), &si, sizeof si) > 0) {
        }
        co_await send_resize();
        continue;
      }
      std::tie(ec, n) = std::get<0>(r);
    } else {
      std::tie(ec, n) = co_await in->async_read_some(asio::buffer(buf), tuple_awaitable);
    }
    if (ec) {
      if (!tty && send_eof) {
        char eof = 0x04;
        ws.binary(true);
        co_await ws.async_write(asio::buffer(&eof, 1), tuple_awaitable);
      }
      co_return;
    }
    std::string frame;
    if (!tty) frame.push_back(0x00);
    std::string_view got(buf.data(), n);
    std::size_t key = detach_key ? got.find(kDetachKey) : std::string_view::npos;
    frame.append(got.substr(0, key));
    ws.binary(true);
    if (frame.size() > (tty ? 0u : 1u)) {
      auto [wec, wn] = co_await ws.async_write(asio::buffer(frame), tuple_awaitable);
      if (wec) co_return;
    }
    if (key != std::string_view::npos) {
      // Detach: the session runs on; closing the socket is all it takes (API.md 2.2).
      st.detached = true;
      co_await ws.async_close(websocket::close_code::normal, tuple_awaitable);
      co_return;
    }
  }
}

}  // namespace

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

Reply request(const Endpoint& ep, const std::string& method, const std::string& target, const std::string& body) {
  asio::io_context io;
  auto hp = split_url(ep.url);
  std::unique_ptr<TlsRelay> relay;
  beast::tcp_stream stream(connect_to(io, hp, relay));
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, hp.host);
  req.set(http::field::authorization, "Bearer " + ep.token);
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return {static_cast<int>(res.result_int()), res.body()};
}

namespace {

Ws open_socket(asio::io_context& io, const Endpoint& ep, const std::string& target,
               std::unique_ptr<TlsRelay>& relay) {
  auto hp = split_url(ep.url);
  Ws ws(connect_to(io, hp, relay));
  ws.set_option(websocket::stream_base::decorator(
      [token = ep.token](websocket::request_type& req) { req.set(http::field::authorization, "Bearer " + token); }));
  websocket::response_type res;
  beast::error_code ec;
  ws.handshake(res, hp.host, target, ec);
  if (ec) {
    auto j = nlohmann::json::parse(res.body(), nullptr, false);
    std::string why = j.is_object() && j["message"].is_string() ? j["message"].get<std::string>()
                      : res.body().empty()                       ? ec.message()
                                                                 : res.body();
    throw std::runtime_error(std::to_string(res.result_int()) + ": " + why);
  }
  ws.read_message_max(8 << 20);
  return ws;
}

// This process's stdio on the socket until the session's exit arrives or we detach.
// An attached client's end of input is not the session's: send_eof only for our own exec.
int run_socket(asio::io_context& io, Ws& ws, bool tty, bool detach_key, bool send_eof, const std::string& sprite,
               ExecState& st) {
  RawTerminal raw(tty);
  // Input runs beside the output; the session ends with the output (the server closes
  // after the exit indication), whatever the input is doing then (a terminal never ends).
  asio::co_spawn(io, [&]() -> awaitable<void> { co_await send_input(ws, st, tty, detach_key, send_eof); }, asio::detached);
  asio::co_spawn(io, [&]() -> awaitable<void> {
    co_await receive(ws, st, tty);
    io.stop();
  }, asio::detached);
  io.run();
  raw.restore();
  if (st.detached) {
    std::fprintf(stderr, "\nballpoint: detached from session %s; it runs on. Back with: ballpoint sessions attach %s %s\n",
                 st.session_id.c_str(), sprite.c_str(), st.session_id.c_str());
    return 0;
  }
  return st.exit_code < 0 ? 255 : st.exit_code;
}

}  // namespace

int run_exec(const Endpoint& ep, const ExecOptions& o) {
  asio::io_context io;
  std::string target = "/v1/sprites/" + url_encode(o.sprite) + "/exec?";
  for (const auto& a : o.argv) target += "cmd=" + url_encode(a) + "&";
  target += "path=" + url_encode(o.argv[0]) + "&stdin=true";
  if (o.tty) {
    winsize w{};
    if (::ioctl(1, TIOCGWINSZ, &w) == 0 && w.ws_row)
      target += "&tty=true&rows=" + std::to_string(w.ws_row) + "&cols=" + std::to_string(w.ws_col);
    else
      target += "&tty=true";
  }
  if (o.detachable) target += "&detachable=true";
  std::unique_ptr<TlsRelay> relay;
  Ws ws = open_socket(io, ep, target, relay);
  ExecState st;
  return run_socket(io, ws, o.tty, o.detachable && o.tty, true, o.sprite, st);
}

int attach_session(const Endpoint& ep, const std::string& sprite, const std::string& id) {
  asio::io_context io;
  std::unique_ptr<TlsRelay> relay;
  Ws ws = open_socket(io, ep, "/v1/sprites/" + url_encode(sprite) + "/exec/" + url_encode(id) + "?stdin=true", relay);
  // The first message says whether the session has a terminal (API.md 2.2).
  beast::flat_buffer buf;
  ws.read(buf);
  auto d = buf.cdata();
  auto info = nlohmann::json::parse(std::string(static_cast<const char*>(d.data()), d.size()), nullptr, false);
  if (!ws.got_text() || !info.is_object() || info.value("type", "") != "session_info")
    throw std::runtime_error("the server did not start the attach with session_info");
  bool tty = info.value("tty", false);
  ExecState st;
  st.session_id = id;
  if (tty) {
    // Our terminal's size, so the program redraws for it.
    winsize w{};
    if (::ioctl(1, TIOCGWINSZ, &w) == 0 && w.ws_row) {
      std::string msg = nlohmann::json{{"type", "resize"}, {"rows", w.ws_row}, {"cols", w.ws_col}}.dump();
      ws.text(true);
      ws.write(asio::buffer(msg));
    }
  }
  return run_socket(io, ws, tty, tty, false, sprite, st);
}

}  // namespace bp::cli
