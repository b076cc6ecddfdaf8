// api/cli/client.hpp — the CLI's two ways to talk to a runtime: plain HTTP requests and exec.
#pragma once

#include <string>
#include <vector>

namespace bp::cli {

struct Endpoint {
  std::string url;  // http://HOST:PORT
  std::string token;
};

struct Reply {
  int status = 0;
  std::string body;
};

// One HTTP request with the bearer token; throws on connection errors.
Reply request(const Endpoint& ep, const std::string& method, const std::string& target, const std::string& body);
// Percent-encoding of a query value or path segment.
std::string url_encode(const std::string& s);

struct ExecOptions {
  std::string sprite;
  std::vector<std::string> argv;
  bool tty = false;
  // A session that outlives this client: Ctrl+\ detaches (with a terminal), and the
  // command runs on until it ends or is killed.
  bool detachable = false;
};

// Runs the command over the exec WebSocket with this process's stdio (a raw terminal
// with -t, resized on SIGWINCH). Returns the command's exit code (0 after a detach).
int run_exec(const Endpoint& ep, const ExecOptions& o);

// Attaches this process's stdio to a running session: its scrollback, then live
// output; Ctrl+\ detaches from a terminal session. Returns the session's exit code.
int attach_session(const Endpoint& ep, const std::string& sprite, const std::string& id);

}  // namespace bp::cli
