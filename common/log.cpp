// common/log.cpp — JSON-lines formatting and the process-wide console sink.
#include "common/log.hpp"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

namespace bp {

std::string_view level_name(Level l) {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
    case Level::fatal: return "fatal";
  }
  return "info";
}

bool parse_level(std::string_view s, Level& out) {
  for (Level l : {Level::debug, Level::info, Level::warn, Level::error}) {
    if (s == level_name(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

void json_quote(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

namespace {

void append_ts(std::string& out, std::int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  out += buf;
}

void append_value(std::string& out, const Field::Value& v) {
  char buf[40];
  switch (v.index()) {
    case 0: json_quote(out, std::get<0>(v)); break;
    case 1: std::snprintf(buf, sizeof buf, "%" PRId64, std::get<1>(v)); out += buf; break;
    case 2: std::snprintf(buf, sizeof buf, "%" PRIu64, std::get<2>(v)); out += buf; break;
    case 3: out += std::get<3>(v) ? "true" : "false"; break;
    case 4: std::snprintf(buf, sizeof buf, "%.6g", std::get<4>(v)); out += buf; break;
  }
}

std::int64_t now_ms() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Console writes may block (a slow serial line); the ring is what the API will serve.
class Sink {
 public:
  static Sink& get() {
    static Sink* s = new Sink;  // never destroyed: logging must work during exit
    return *s;
  }

  std::atomic<int> level{static_cast<int>(Level::info)};
  std::atomic<int> file_fd{-1};

  void emit(std::string line) {
    line += '\n';
    std::unique_lock lk(mu_);
    ring_.push_back(line);
    if (ring_.size() > kRingLines) ring_.pop_front();
    if (!running_) {
      lk.unlock();
      write_out(line);
      return;
    }
    if (queue_.size() >= capacity_) {
      ++dropped_;
      return;
    }
    queue_.push_back(std::move(line));
    cv_.notify_one();
  }

  void start() {
    std::lock_guard lk(mu_);
    if (running_) return;
    running_ = true;
    stopping_ = false;
    exited_ = false;
    thread_ = std::thread([this] { run(); });
  }

  // Waits up to timeout_ms for the queue to drain. A console that blocks for longer
  // (a full serial line, a pipe nobody reads) must not stop a power-off: then the
  // writer is left behind and later lines are written directly.
  void stop(int timeout_ms) {
    std::unique_lock lk(mu_);
    if (!running_) return;
    stopping_ = true;
    cv_.notify_one();
    bool drained = done_cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return exited_; });
    running_ = false;
    lk.unlock();
    if (drained)
      thread_.join();
    else
      thread_.detach();
  }

  std::vector<std::string> ring() {
    std::lock_guard lk(mu_);
    return {ring_.begin(), ring_.end()};
  }
  std::uint64_t dropped() {
    std::lock_guard lk(mu_);
    return dropped_total_ + dropped_;
  }
  void set_capacity(std::size_t n) {
    std::lock_guard lk(mu_);
    capacity_ = n;
  }

 private:
  static constexpr std::size_t kRingLines = 2000;

  void run() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) {
        exited_ = true;
        done_cv_.notify_all();
        return;
      }
      std::deque<std::string> batch;
      batch.swap(queue_);
      std::uint64_t dropped = std::exchange(dropped_, 0);
      dropped_total_ += dropped;
      lk.unlock();
      for (const auto& l : batch) write_out(l);
      if (dropped) {
        std::string l = format_event(now_ms(), Level::warn, "log", "lines dropped", {{"dropped", dropped}});
        write_out(l + '\n');
      }
      lk.lock();
    }
  }

  void write_out(const std::string& line) {
    write_fd(2, line);
    int f = file_fd.load();
    if (f >= 0) write_fd(f, line);
  }

  static void write_fd(int fd, std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::write(fd, s.data(), s.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // a console that is gone must not stop the logger
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  bool exited_ = false;
  std::deque<std::string> ring_;
  std::deque<std::string> queue_;
  std::size_t capacity_ = 4096;
  std::uint64_t dropped_ = 0;
  std::uint64_t dropped_total_ = 0;
  bool running_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

std::string format_event(std::int64_t unix_ms, Level level, std::string_view comp,
                         std::string_view msg, std::initializer_list<Field> fields) {
  std::string out;
  out.reserve(128);
  out += "{\"ts\":\"";
  append_ts(out, unix_ms);
  out += "\",\"level\":\"";
  out += level_name(level);
  out += "\",\"comp\":";
  json_quote(out, comp);
  out += ",\"msg\":";
  json_quote(out, msg);
  for (const Field& f : fields) {
    out += ',';
    json_quote(out, f.key);
    out += ':';
    append_value(out, f.value);
  }
  out += '}';
  return out;
}

void Logger::log(Level level, std::string_view msg, std::initializer_list<Field> f) const {
  Sink& sink = Sink::get();
  if (static_cast<int>(level) < sink.level.load(std::memory_order_relaxed)) return;
  sink.emit(format_event(now_ms(), level, comp_, msg, f));
}

namespace logsink {
void set_level(Level l) { Sink::get().level = static_cast<int>(l); }
Level level() { return static_cast<Level>(Sink::get().level.load()); }
void set_file_fd(int fd) { Sink::get().file_fd = fd; }
void start_writer() { Sink::get().start(); }
void stop_writer(int timeout_ms) { Sink::get().stop(timeout_ms); }
std::vector<std::string> ring_snapshot() { return Sink::get().ring(); }
std::uint64_t dropped() { return Sink::get().dropped(); }
void set_queue_capacity(std::size_t n) { Sink::get().set_capacity(n); }
}  // namespace logsink

}  // namespace bp
