// api/errors.cpp — JSON error bodies.
#include "api/errors.hpp"

#include <nlohmann/json.hpp>

namespace bp::api {

Response json_error(int status, std::string_view code, std::string_view message) {
  Response r;
  r.status = status;
  r.body = nlohmann::json{{"error", code}, {"message", message}}.dump();
  return r;
}

}  // namespace bp::api
