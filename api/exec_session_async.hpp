// api/exec_session_async.hpp — the exec endpoints that hold a connection: WebSocket
// exec, attach and control, HTTP exec, and the streamed kill. Private to api/.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <cstdint>
#include <memory>

#include "api/exec_params.hpp"
#include "api/exec_session.hpp"
#include "api/router.hpp"
#include "api/sessions.hpp"

namespace bp::api {

using WsStream = boost::beast::websocket::stream<boost::beast::tcp_stream>;
class Outbox;

// The queue in front of a WebSocket's one writer: a client that does not read pauses
// the producers (API.md 1.7) once it holds this much.
constexpr std::size_t kWsOutFrames = 64, kWsOutBytes = 2 << 20;

// A new exec on an accepted WebSocket (API.md 2.1): the socket is its owner until the
// exit has been delivered or the client has gone (the session may run on, 2.2).
// `out` is the socket's queue; its owner may close it with a close frame at any time.
boost::asio::awaitable<void> run_exec(WsStream& ws, std::shared_ptr<Outbox> out, ExecParams params, std::string sprite, SessionTable& sessions,
                                      const ExecDeps& deps, boost::asio::thread_pool& blocking);

// Attach to a session (API.md 2.2): session_info, scrollback, live output, exit.
boost::asio::awaitable<void> run_attach(WsStream& ws, std::shared_ptr<Outbox> out,
                                        std::shared_ptr<ExecSession> session);

// The control channel (API.md 2.6): exec operations one at a time until the client closes.
boost::asio::awaitable<void> run_control(WsStream& ws, std::shared_ptr<Outbox> out, std::string sprite, SessionTable& sessions,
                                         const ExecDeps& deps, boost::asio::thread_pool& blocking);

// Exec over plain HTTP (API.md 2.5) on a connection whose request has been read: the
// body is stdin, the response the non-TTY frames. False when the client went away.
boost::asio::awaitable<bool> run_http_exec(boost::beast::tcp_stream& stream, std::string body, ExecParams params,
                                           std::string sprite, std::string version, SessionTable& sessions,
                                           const ExecDeps& deps, boost::asio::thread_pool& blocking);

// POST /exec/{id}/kill (API.md 2.4), checked by the router: streams the NDJSON events
// as they happen. False when the client went away.
boost::asio::awaitable<bool> run_kill(boost::beast::tcp_stream& stream, KillRequest k, SessionTable& sessions,
                                      std::string version);

struct WatchRequest {
  std::string org, version, prefix;
  int max_sprites = 0;
};

// GET /v1/sprites as an NDJSON watch (API.md 3.3), authorized by the router; runs
// until the client leaves or the server stops. w must outlive the call.
boost::asio::awaitable<bool> run_watch(boost::beast::tcp_stream& stream, const agent::Registry& registry,
                                       const WatchRequest& w);

}  // namespace bp::api
