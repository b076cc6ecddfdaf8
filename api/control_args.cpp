// api/control_args.cpp — control-channel args to exec query semantics.
#include "api/control_args.hpp"

#include <nlohmann/json.hpp>

namespace bp::api {

namespace {
std::optional<std::string> scalar(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  if (v.is_number_unsigned()) return std::to_string(v.get<unsigned long long>());
  if (v.is_number_float()) return v.dump();
  return std::nullopt;
}
}  // namespace

std::optional<Query> control_args_query(const nlohmann::json& args) {
  if (args.is_null()) return Query{};
  if (args.is_string()) {
    std::string s = args.get<std::string>();
    if (!s.empty() && s.front() == '?') s.erase(0, 1);
    return parse_query("?" + s);
  }
  if (!args.is_object()) return std::nullopt;
  Query q;
  for (const auto& [key, value] : args.items()) {
    if (value.is_null()) continue;
    if (value.is_array()) {
      for (const auto& v : value) {
        auto s = scalar(v);
        if (!s) return std::nullopt;
        q.emplace_back(key, std::move(*s));
      }
      continue;
    }
    auto s = scalar(value);
    if (!s) return std::nullopt;
    q.emplace_back(key, std::move(*s));
  }
  return q;
}

}  // namespace bp::api
