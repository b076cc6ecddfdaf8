// api/client_input.cpp — client frames and control envelopes, parsed.
#include "api/client_input.hpp"

#include <cstdlib>

#include "api/exec_params.hpp"

namespace bp::api {

namespace {

std::string str_field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<long long>());
  return {};
}

// Numbers or their string forms, 1 to 65535; else 0.
unsigned short dimension(const nlohmann::json& j, const char* key) {
  std::string v = str_field(j, key);
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  return v.empty() || *end || n <= 0 || n > 65535 ? 0 : static_cast<unsigned short>(n);
}

ClientInput parse_message(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return Ignore{};
  std::string type = str_field(j, "type");
  if (type == "resize") {
    Resize r{dimension(j, "rows"), dimension(j, "cols")};
    if (r.rows && r.cols) return r;
  } else if (type == "signal") {
    if (int sig = parse_signal(str_field(j, "signal"))) return Signal{sig};
  }
  return Ignore{};
}

}  // namespace

ClientInput parse_client_frame(bool text, std::string_view bytes, bool tty, bool control) {
  if (text) return parse_message(bytes);
  if (bytes.empty()) return Ignore{};
  // JS sends control-mode resize and signal as binary frames (API.md 2.6); in non-TTY
  // mode '{' is no stream id, and a TTY's keyboard does not send whole JSON objects.
  if (control && bytes.front() == '{') {
    auto m = parse_message(bytes);
    if (!std::holds_alternative<Ignore>(m)) return m;
  }
  if (tty) return Stdin{bytes};  // to the PTY, verbatim (04 is the line discipline's)
  if (bytes.front() == 0x04 && (!control || bytes.size() == 1)) return StdinEof{};
  if (bytes.front() == 0x00) bytes.remove_prefix(1);
  else if (!control) return Ignore{};  // /exec stdin always has its prefix
  if (bytes.empty()) return Ignore{};
  return Stdin{bytes};  // on /control, Go's raw stdin too
}

std::optional<Envelope> parse_envelope(std::string_view text) {
  Envelope e;
  nlohmann::json j;
  if (text.starts_with("control:")) {
    e.prefixed = true;
    j = nlohmann::json::parse(text.substr(8), nullptr, false);
    if (!j.is_object()) return e;  // malformed: an envelope nobody acts on
  } else {
    j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    std::string type = str_field(j, "type");
    if (!type.starts_with("op.") && type != "release") return std::nullopt;
  }
  e.type = str_field(j, "type");
  e.op = str_field(j, "op");
  e.id = str_field(j, "id");
  if (auto it = j.find("args"); it != j.end()) e.args = std::move(*it);
  return e;
}

}  // namespace bp::api
