// api/http_types.hpp — requests and responses as plain values, so routing is testable without sockets.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace bp::api {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, as sent
  std::string authorization;
  std::string accept;
  std::string body;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond the common ones
};

}  // namespace bp::api
