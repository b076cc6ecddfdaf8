// common/log.hpp — structured logging: one JSON object per line, to the console and a ring.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace bp {

enum class Level { debug = 0, info, warn, error, fatal };

std::string_view level_name(Level l);
// Parses "debug", "info", "warn", "error"; false on anything else.
bool parse_level(std::string_view s, Level& out);

// One key=value pair of a log event. Views must outlive the call that takes them.
struct Field {
  using Value = std::variant<std::string_view, std::int64_t, std::uint64_t, bool, double>;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  template <class I>
    requires(std::is_integral_v<I> && !std::is_same_v<I, bool>)
  Field(std::string_view k, I v) : key(k) {
    if constexpr (std::is_signed_v<I>)
      value = static_cast<std::int64_t>(v);
    else
      value = static_cast<std::uint64_t>(v);
  }
  std::string_view key;
  Value value;
};

// Formats one event as a JSON object without the trailing newline (exposed for tests).
std::string format_event(std::int64_t unix_ms, Level level, std::string_view comp,
                         std::string_view msg, std::initializer_list<Field> fields);
// Appends s to out as a JSON string literal, quotes included.
void json_quote(std::string& out, std::string_view s);

class Logger {
 public:
  explicit Logger(std::string comp) : comp_(std::move(comp)) {}
  void debug(std::string_view msg, std::initializer_list<Field> f = {}) const { log(Level::debug, msg, f); }
  void info(std::string_view msg, std::initializer_list<Field> f = {}) const { log(Level::info, msg, f); }
  void warn(std::string_view msg, std::initializer_list<Field> f = {}) const { log(Level::warn, msg, f); }
  void error(std::string_view msg, std::initializer_list<Field> f = {}) const { log(Level::error, msg, f); }
  void fatal(std::string_view msg, std::initializer_list<Field> f = {}) const { log(Level::fatal, msg, f); }
  void log(Level level, std::string_view msg, std::initializer_list<Field> f) const;
  const std::string& comp() const { return comp_; }

 private:
  std::string comp_;
};

// Process-wide sink. Until start_writer() lines are written synchronously; after it a
// thread drains a bounded queue, so the event loop never blocks on a slow console.
namespace logsink {
void set_level(Level l);
Level level();
// Also copy every line to fd (not owned; -1 to stop).
void set_file_fd(int fd);
void start_writer();
// Drains what is queued (waiting at most timeout_ms for a slow console), then stops
// the writer; later lines are written synchronously.
void stop_writer(int timeout_ms = 2000);
// The newest lines, oldest first (the API exposes them later).
std::vector<std::string> ring_snapshot();
std::uint64_t dropped();
// Test hook: capacity of the bounded queue (default 4096 lines).
void set_queue_capacity(std::size_t n);
}  // namespace logsink

}  // namespace bp
