// common/log_exit.hpp — the completion token every co_spawn ends in: log, never rethrow.
#pragma once

#include <exception>
#include <string>

#include "common/log.hpp"

namespace bp {

inline auto log_exit(std::string comp) {
  return [comp = std::move(comp)](std::exception_ptr ep) {
    if (!ep) return;
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      Logger(comp).error("task ended", {{"err", e.what()}});
    } catch (...) {
      Logger(comp).error("task ended", {{"err", "unknown exception"}});
    }
  };
}

}  // namespace bp
