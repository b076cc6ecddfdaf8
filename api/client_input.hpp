// api/client_input.hpp — what a client's WebSocket frame on an exec or control socket
// means (API.md 2.1.4-2.1.6, 2.6), decided without any socket: sans-io, fuzzed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace bp::api {

struct Resize {
  unsigned short rows = 0, cols = 0;
};
struct Signal {
  int sig = 0;
};
struct Stdin {
  std::string_view data;  // into the frame: use before the next read
};
struct StdinEof {};
struct Ignore {};
using ClientInput = std::variant<Ignore, Resize, Signal, Stdin, StdinEof>;

// A frame on an exec socket (control: on /control, where JS sends resize and signal as
// binary JSON and a bare 04 is the EOF). Malformed messages are Ignore, never errors.
ClientInput parse_client_frame(bool text, std::string_view bytes, bool tty, bool control);

// A control-channel envelope: "control:{...}" (prefixed), or a bare JSON object whose
// type is op.* or release (Go). nullopt: the frame is data of the running operation.
// A malformed prefixed envelope is an envelope with no type (ignored by the caller).
struct Envelope {
  bool prefixed = false;
  std::string type, op, id;
  nlohmann::json args;  // null when absent
};
std::optional<Envelope> parse_envelope(std::string_view text);

}  // namespace bp::api
