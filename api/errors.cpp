// api/errors.cpp — JSON error bodies.
#include "api/errors.hpp"

#include <nlohmann/json.hpp>

namespace bp::api {

Response json_error(int status, std::string_view code, std::string_view message) {
  Response r;
  r.status = status;
  // Messages may quote client input, which need not be valid UTF-8.
  r.body = nlohmann::json{{"error", code}, {"message", message}}.dump(-1, ' ', false,
                                                                    nlohmann::json::error_handler_t::replace);
  return r;
}

}  // namespace bp::api
