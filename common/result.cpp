// common/result.cpp — constructors of Error.
#include "common/result.hpp"

#include <cstring>

namespace bp {

Error sys_error(std::string_view call, int err) {
  std::string what(call);
  what += ": ";
  what += std::strerror(err);
  return Error{err, std::move(what)};
}

Error make_error(std::string what, int code) { return Error{code, std::move(what)}; }

}  // namespace bp
