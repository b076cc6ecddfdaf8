// common/result.hpp — Error and Result<T>: errno plus a context chain; cheap to include.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace bp {

struct Error {
  int code = 0;      // errno, or 0 when no syscall failed
  std::string what;  // "storage: attach loop: open(/dev/loop-control): No such file or directory"

  // Prefixes one piece of context, so the final text reads like a path.
  Error wrap(std::string_view ctx) && {
    what.insert(0, std::string(ctx) + ": ");
    return std::move(*this);
  }
};

// "call: strerror(err)", keeping err as the code.
Error sys_error(std::string_view call, int err = errno);
// A failure that is not a syscall's (bad input, a protocol violation).
Error make_error(std::string what, int code = 0);

template <class T>
class [[nodiscard]] Result {
 public:
  Result() requires std::is_same_v<T, std::monostate> = default;
  // Asio needs a default value for an awaited result that never came (the job threw).
  Result() requires(!std::is_same_v<T, std::monostate>) : v_(std::in_place_index<1>, Error{0, "no result"}) {}
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  Error& error() & { return std::get<1>(v_); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

using Status = Result<std::monostate>;

// The error text of a status, or "" when it is ok (for log fields).
inline std::string err_text(const Status& s) { return s ? std::string() : s.error().what; }

}  // namespace bp
