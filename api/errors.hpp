// api/errors.hpp — the one place that turns a failure into an HTTP status and JSON body.
#pragma once

#include <string_view>

#include "api/http_types.hpp"

namespace bp::api {

// Control-plane error shape (API.md 1.5): {"error": code, "message": message}.
Response json_error(int status, std::string_view code, std::string_view message);

}  // namespace bp::api
