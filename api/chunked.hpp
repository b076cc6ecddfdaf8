// api/chunked.hpp — streamed HTTP responses (NDJSON, HTTP exec): headers at once, then
// one chunk per write (API.md 1.6). Private to api/.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <string>

namespace bp::api {

// 200 with chunked transfer, Sprite-Version, no caching, no sniffing; the connection
// closes after the stream. False when the client has gone. content_type is a C string:
// a std::string temporary bound to a coroutine's reference parameter dies too early
// with GCC 12 (it crashed here).
boost::asio::awaitable<bool> write_stream_head(boost::beast::tcp_stream& stream, const char* content_type,
                                               const std::string& version);
// One chunk (data must not be empty: an empty chunk ends the body). Callers pass a
// named string: GCC 12 may destroy a temporary bound to a coroutine's reference
// parameter before the coroutine runs.
boost::asio::awaitable<bool> write_chunk(boost::beast::tcp_stream& stream, const std::string& data);
boost::asio::awaitable<bool> write_last_chunk(boost::beast::tcp_stream& stream);

}  // namespace bp::api
