// api/chunked.cpp — streamed HTTP responses.
#include "api/chunked.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>

namespace bp::api {

namespace asio = boost::asio;
namespace http = boost::beast::http;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

asio::awaitable<bool> write_stream_head(boost::beast::tcp_stream& stream, const char* content_type,
                                        const std::string& version) {
  http::response<http::empty_body> res{http::status::ok, 11};
  res.set(http::field::server, "ballpoint");
  res.set("Sprite-Version", version);
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Content-Type-Options", "nosniff");
  res.chunked(true);
  res.keep_alive(false);
  http::response_serializer<http::empty_body> sr{res};
  auto [ec, n] = co_await http::async_write_header(stream, sr, tuple_awaitable);
  co_return !ec;
}

asio::awaitable<bool> write_chunk(boost::beast::tcp_stream& stream, const std::string& data) {
  auto [ec, n] = co_await asio::async_write(stream, http::make_chunk(asio::buffer(data)), tuple_awaitable);
  co_return !ec;
}

asio::awaitable<bool> write_last_chunk(boost::beast::tcp_stream& stream) {
  auto [ec, n] = co_await asio::async_write(stream, http::make_chunk_last(), tuple_awaitable);
  co_return !ec;
}

}  // namespace bp::api
