// api/exec_params.hpp — the query of an exec request (API.md 2.1.1), parsed and checked.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/query.hpp"
#include "common/result.hpp"

namespace bp::api {

struct ExecParams {
  std::vector<std::string> argv;      // cmd..., with path as argv[0]'s program when given
  std::string path;                   // what is executed (PATH lookup when it has no '/')
  bool tty = false;
  std::uint16_t rows = 24, cols = 80;
  bool stdin = false;                 // TTY: true unless stdin=false
  std::vector<std::string> env;       // given: replaces the default environment
  bool env_given = false;
  std::string dir = "/home/sprite";
  std::int64_t max_run_after_disconnect_ms = -1;  // -1: the default of the mode
};

Result<ExecParams> parse_exec_params(const Query& q);

// Go durations as the SDKs send them: "0", "10s", "5m", "1h30m", "250ms". -1 if malformed.
std::int64_t parse_go_duration_ms(std::string_view s);

// "TERM", "SIGTERM", "sigterm", "15" -> 15; 0 when unknown.
int parse_signal(std::string_view s);

// The environment of an exec: given variables replace the default; TERM is added in
// TTY mode when absent (API.md 2.1.2).
std::vector<std::string> exec_environment(const ExecParams& p);

}  // namespace bp::api
