// tests/fuzz/fuzz_ws_frames.cpp — what the server makes of a client's WebSocket frames
// (API.md 2.1.4-2.1.6, 2.6): every mode of parse_client_frame, control envelopes, and
// their args turned into an exec (the JSON shapes of op.start).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/client_input.hpp"
#include "api/control_args.hpp"
#include "api/exec_params.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  // The first byte picks text/binary, TTY, control; the rest is the payload.
  bool text = data[0] & 1, tty = data[0] & 2, control = data[0] & 4;
  auto r = bp::api::parse_client_frame(text, in, tty, control);
  if (auto* s = std::get_if<bp::api::Stdin>(&r)) {
    if (s->data.empty() || s->data.data() < in.data() || s->data.data() + s->data.size() > in.data() + in.size())
      __builtin_trap();  // stdin is a non-empty slice of the frame
  }
  if (auto* z = std::get_if<bp::api::Resize>(&r); z && (!z->rows || !z->cols)) __builtin_trap();
  if (auto* g = std::get_if<bp::api::Signal>(&r); g && (g->sig <= 0 || g->sig >= 32)) __builtin_trap();
  if (text) {
    if (auto env = bp::api::parse_envelope(in)) {
      if (auto q = bp::api::control_args_query(env->args)) (void)bp::api::parse_exec_params(*q);
    }
  }
  return 0;
}
