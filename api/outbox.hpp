// api/outbox.hpp — the bounded frame queue between producers and one socket writer;
// private to api/ (it pulls in Asio).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace bp::api {

struct Frame {
  enum Kind { binary, text, close } kind = binary;
  std::string data;
  std::uint16_t close_code = 1000;
};

// A deque and two timers used as wake-ups. Producers `co_await room()` and then `put()`
// a frame, so no frame is ever an argument of a coroutine: GCC 12 destroys temporaries
// bound to a coroutine's reference parameter before the coroutine runs, and a prvalue
// given to a by-value one twice (seen here under ASan; GCC PR 100611).
// put() itself never waits: short bounded bursts (a session's scrollback, its exit)
// go past the limits.
class Outbox {
 public:
  Outbox(boost::asio::any_io_executor ex, std::size_t max_frames, std::size_t max_bytes)
      : max_frames_(max_frames), max_bytes_(max_bytes), has_frames_(ex), has_room_(ex), is_closed_(ex),
        last_put_(std::chrono::steady_clock::now()) {
    has_frames_.expires_at(boost::asio::steady_timer::time_point::max());
    has_room_.expires_at(boost::asio::steady_timer::time_point::max());
    is_closed_.expires_at(boost::asio::steady_timer::time_point::max());
  }
  // Waits until the queue is under its limits (or closed).
  boost::asio::awaitable<void> room() {
    while (!closed_ && full()) co_await has_room_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }
  // Completes once the queue is closed (the socket's writer has ended, or is ending).
  boost::asio::awaitable<void> wait_closed() {
    while (!closed_) co_await is_closed_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }
  // Queues f; false (f dropped) once closed.
  bool put(Frame&& f) {
    if (closed_) return false;
    bytes_ += f.data.size();
    q_.push_back(std::move(f));
    last_put_ = std::chrono::steady_clock::now();
    has_frames_.cancel();
    return true;
  }
  // The next frame, or nullopt once closed and drained.
  boost::asio::awaitable<std::optional<Frame>> pop() {
    while (q_.empty() && !closed_) co_await has_frames_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (q_.empty()) co_return std::nullopt;
    Frame f = std::move(q_.front());
    q_.pop_front();
    bytes_ -= f.data.size();
    has_room_.cancel();
    co_return f;
  }
  // Drops what is queued and wakes everyone: room() returns, put() refuses, pop() ends.
  void close() {
    closed_ = true;
    q_.clear();
    bytes_ = 0;
    has_frames_.cancel();
    has_room_.cancel();
    is_closed_.cancel();
  }
  // Ends the queue with a close frame after what is already queued (an exit waiting
  // there still goes first): the writer sends them and stops; put() refuses from now on.
  void close_with(std::uint16_t code) {
    if (closed_) return;
    q_.push_back(Frame{Frame::close, {}, code});
    closed_ = true;
    has_frames_.cancel();
    has_room_.cancel();
    is_closed_.cancel();
  }
  bool closed() const { return closed_; }
  std::chrono::steady_clock::time_point last_put() const { return last_put_; }

 private:
  bool full() const { return q_.size() >= max_frames_ || bytes_ >= max_bytes_; }

  std::size_t max_frames_, max_bytes_;
  std::deque<Frame> q_;
  std::size_t bytes_ = 0;
  bool closed_ = false;
  boost::asio::steady_timer has_frames_, has_room_, is_closed_;
  std::chrono::steady_clock::time_point last_put_;
};

}  // namespace bp::api
