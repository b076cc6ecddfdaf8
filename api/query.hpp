// api/query.hpp — URL query strings as the SDKs build them (URLSearchParams: '+' is a space).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bp::api {

// %XX escapes decoded; with plus_is_space (query strings), '+' is a space.
// nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);

// Key/value pairs in order, repeated keys kept. nullopt on a malformed %-escape.
using Query = std::vector<std::pair<std::string, std::string>>;
std::optional<Query> parse_query(std::string_view target);

// The first value of key, if any.
std::optional<std::string> query_get(const Query& q, std::string_view key);
// Every value of key, in order.
std::vector<std::string> query_all(const Query& q, std::string_view key);
// "true"/"1" -> true, "false"/"0" -> false; anything else (or absent) -> dflt.
bool query_bool(const Query& q, std::string_view key, bool dflt);

}  // namespace bp::api
