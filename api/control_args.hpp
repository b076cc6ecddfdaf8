// api/control_args.hpp — the `args` of a control-channel op.start as an exec query
// (API.md 2.6): an object of strings, string arrays, booleans or numbers, or a query
// string.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>

#include "api/query.hpp"

namespace bp::api {

// Booleans become true/false, numbers decimal, arrays repeated keys, nulls are
// skipped; nested objects or arrays of non-scalars: nullopt.
std::optional<Query> control_args_query(const nlohmann::json& args);

}  // namespace bp::api
