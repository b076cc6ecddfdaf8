// api/auth.hpp — bearer-token check, constant time in the token's bytes.
#pragma once

#include <string_view>

namespace bp::api {

// True when the Authorization header carries the token, as "Bearer TOKEN" or as
// "Basic base64(bearer:TOKEN)" (API.md 1.2). An empty token never matches.
bool authorized(std::string_view authorization, std::string_view token);

// Compares without an early exit, so timing does not reveal a matching prefix.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace bp::api
