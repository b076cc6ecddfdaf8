// tests/fuzz/fuzz_exec_query.cpp — the exec query (API.md 2.1.1): percent-decoding, the
// parameters, the environment, Go durations and signal names on arbitrary input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/exec_params.hpp"
#include "api/query.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto q = bp::api::parse_query("/v1/sprites/x/exec?" + std::string(in));
  if (q) {
    auto p = bp::api::parse_exec_params(*q);
    if (p) {
      if (p->argv.empty() || p->path.empty() || p->dir.empty() || p->dir.front() != '/') __builtin_trap();
      if (p->rows == 0 || p->cols == 0) __builtin_trap();
      auto env = bp::api::exec_environment(*p);
      for (const auto& e : env)
        if (e.find('=') == std::string::npos) __builtin_trap();
    }
  }
  (void)bp::api::percent_decode(in, true);
  (void)bp::api::percent_decode(in, false);
  std::int64_t ms = bp::api::parse_go_duration_ms(in);
  if (ms < -1) __builtin_trap();
  int sig = bp::api::parse_signal(in);
  if (sig < 0 || sig >= 32) __builtin_trap();
  return 0;
}
