// common/offload.hpp — run blocking work on a pool and await it from the event loop.
// Included only by .cpp files that use Asio.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <type_traits>

namespace bp {

// The caller resumes on its own executor; an exception thrown by fn comes back with it.
// Not itself a coroutine: GCC 12 destroys a coroutine's by-value parameter twice when
// it is moved into a lambda capture (seen here under ASan), so fn goes straight into
// the lambda that co_spawn keeps alive until the job has run.
template <class F>
boost::asio::awaitable<std::invoke_result_t<F>> offload(boost::asio::thread_pool& pool, F fn) {
  return boost::asio::co_spawn(
      pool, [fn = std::move(fn)]() mutable -> boost::asio::awaitable<std::invoke_result_t<F>> { co_return fn(); },
      boost::asio::use_awaitable);
}

}  // namespace bp
