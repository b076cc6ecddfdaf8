// init/state.hpp — host mode's state directory: the API token and endpoint.json.
#pragma once

#include <string>

#include "common/result.hpp"

namespace bp::init {

// 32 random bytes as 64 hex digits.
Result<std::string> random_token();
// Reads DIR/token, or creates it (mode 0600) on first start. Refuses a token file
// that others can read.
Result<std::string> load_or_create_token(const std::string& dir);
// Writes DIR/endpoint.json = {"url":..., "token":...} atomically, mode 0600.
Status write_endpoint(const std::string& dir, const std::string& url, const std::string& token);
// Creates dir (and parents) with mode 0700 for the last component.
Status make_state_dir(const std::string& dir);

}  // namespace bp::init
