// api/exec_session_async.hpp — the exec WebSocket session (API.md 2.1); private to api/.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "api/exec_params.hpp"
#include "api/exec_session.hpp"
#include "api/sessions.hpp"

namespace bp::api {

using WsStream = boost::beast::websocket::stream<boost::beast::tcp_stream>;

// Runs one exec on an accepted WebSocket until the process has exited and the exit has
// been delivered, or the client is gone and the process with it.
// The session is listed in `sessions` from the start of its process until its end.
boost::asio::awaitable<void> run_exec(WsStream& ws, ExecParams params, std::string sprite, SessionTable& sessions,
                                      const ExecDeps& deps, boost::asio::thread_pool& blocking);

// Exec over plain HTTP (API.md 2.5) on a connection whose request has been read: the
// body is stdin, the response the non-TTY frames. False when the client went away.
boost::asio::awaitable<bool> run_http_exec(boost::beast::tcp_stream& stream, std::string body, ExecParams params,
                                           std::string sprite, std::string version, const ExecDeps& deps,
                                           boost::asio::thread_pool& blocking);

}  // namespace bp::api
