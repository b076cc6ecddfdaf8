// common/pipe_bytes.hpp — copies a byte stream from one Asio stream to another until EOF
// or an error (the TLS relays of the API server and the CLI). Include only where Asio is.
#pragma once

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace bp {

template <class From, class To>
boost::asio::awaitable<void> pipe_bytes(From& from, To& to) {
  constexpr auto tuple = boost::asio::as_tuple(boost::asio::use_awaitable);
  std::array<char, 16384> buf;
  for (;;) {
    auto [rec, n] = co_await from.async_read_some(boost::asio::buffer(buf), tuple);
    if (rec) co_return;
    auto [wec, wn] = co_await boost::asio::async_write(to, boost::asio::buffer(buf.data(), n), tuple);
    if (wec) co_return;
  }
}

}  // namespace bp
