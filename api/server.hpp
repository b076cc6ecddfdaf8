// api/server.hpp — the HTTP API server, as init/main.cpp sees it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "api/exec_session.hpp"
#include "api/router.hpp"
#include "api/sessions.hpp"
#include "common/result.hpp"

namespace boost::asio {
class io_context;
class thread_pool;
}

namespace bp::api {

struct ServerConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: the kernel picks one; see Server::port()
  std::size_t max_connections = 1024;
  std::uint32_t header_limit = 16 * 1024;
  std::uint64_t body_limit = 1024 * 1024;
  std::uint32_t idle_timeout_ms = 60000;
  // Both set: every connection is TLS (PEM files, read at start()).
  std::string tls_cert, tls_key;
};

class Server {
 public:
  // Blocking work a route asks for (creating a sprite, say) runs on `blocking`.
  // exec (and sessions) may be null: then exec endpoints answer 503.
  Server(boost::asio::io_context& io, ServerConfig cfg, const Router& router, boost::asio::thread_pool& blocking,
         const ExecDeps* exec, SessionTable* sessions);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens, then spawns the accept loop.
  Status start();
  // Closes the listener and every connection; idempotent. Coroutines end on the
  // next turns of the loop.
  void stop();
  // The bound port (after start).
  std::uint16_t port() const;
  bool tls() const;
  std::size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bp::api
