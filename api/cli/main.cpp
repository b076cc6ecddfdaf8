// api/cli/main.cpp — `ballpoint`: the command line for a ballpoint runtime, speaking only its public API.
//
//   ballpoint create NAME | list | destroy NAME | use NAME
//   ballpoint exec [-t] [NAME] -- CMD [ARG...]     (exit code propagated)
//   ballpoint console [NAME]                         (an interactive shell; Ctrl+\ detaches)
//   ballpoint sessions list [NAME] | attach [NAME] ID | kill [NAME] ID [SIGNAL]
// The runtime is found through --endpoint FILE, $BALLPOINT_ENDPOINT, $BALLPOINT_STATE/endpoint.json
// or /var/lib/ballpoint/endpoint.json; --url and --token (or $BALLPOINT_URL, $BALLPOINT_TOKEN) win.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <boost/system/system_error.hpp>

#include "api/cli/client.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace bp::cli;

namespace {

int usage(int code) {
  std::fputs(
      "usage: ballpoint [--endpoint FILE | --url URL --token TOKEN] COMMAND\n"
      "  create NAME                  make a sprite\n"
      "  list                         the sprites, with their status\n"
      "  destroy NAME                 delete a sprite and everything in it\n"
      "  use NAME                     make NAME the default sprite of exec and console\n"
      "  exec [-t] [NAME] -- CMD...   run CMD in the sprite; -t gives it a terminal\n"
      "  console [NAME]               an interactive shell in the sprite; Ctrl+\\ detaches\n"
      "  sessions list [NAME]         the sprite's running exec sessions\n"
      "  sessions attach [NAME] ID    reattach to a session: what it printed, then live\n"
      "  sessions kill [NAME] ID [SIG]  end a session (SIGTERM, then SIGKILL after 10 s)\n"
      "  checkpoint create [NAME] [-m COMMENT]  save the sprite's disk as it is now\n"
      "  checkpoint list [NAME]       the sprite's checkpoints, oldest first\n"
      "  checkpoint restore [NAME] ID bring the disk back to checkpoint ID (the sprite restarts)\n"
      "  checkpoint delete [NAME] ID  forget checkpoint ID\n",
      code ? stderr : stdout);
  return code;
}

std::string config_dir() {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) return std::string(x) + "/ballpoint";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.config/ballpoint";
  return "/tmp/ballpoint-config";
}

std::string default_sprite() {
  std::ifstream f(config_dir() + "/default-sprite");
  std::string name;
  std::getline(f, name);
  return name;
}

bool read_endpoint(const std::string& path, Endpoint& ep, std::string& err) {
  std::ifstream f(path);
  if (!f) {
    err = "cannot read " + path + " (is the runtime running? scripts/run starts one; as another user, use sudo)";
    return false;
  }
  json j = json::parse(f, nullptr, false);
  if (!j.is_object() || !j["url"].is_string() || !j["token"].is_string()) {
    err = path + ": not an endpoint file ({\"url\": ..., \"token\": ...})";
    return false;
  }
  ep.url = j["url"];
  ep.token = j["token"];
  return true;
}

void print_error(const Reply& r) {
  json j = json::parse(r.body, nullptr, false);
  std::string msg = j.is_object() && j["message"].is_string() ? j["message"].get<std::string>() : r.body;
  std::fprintf(stderr, "ballpoint: %d: %s\n", r.status, msg.c_str());
}

std::string need_sprite(std::string name) {
  if (name.empty()) name = default_sprite();
  if (name.empty()) {
    std::fputs("ballpoint: which sprite? name it, or set a default with `ballpoint use NAME`\n", stderr);
    std::exit(2);
  }
  return name;
}

// sessions list [NAME] | attach [NAME] ID | kill [NAME] ID [SIGNAL]
int sessions(const Endpoint& ep, const std::vector<std::string>& a) {
  if (a.empty()) return usage(2);
  const std::string& verb = a[0];
  std::vector<std::string> pos(a.begin() + 1, a.end());
  if (verb == "list") {
    if (pos.size() > 1) return usage(2);
    std::string sprite = need_sprite(pos.empty() ? "" : pos[0]);
    Reply r = request(ep, "GET", "/v1/sprites/" + url_encode(sprite) + "/exec", "");
    if (r.status != 200) {
      print_error(r);
      return 1;
    }
    json j = json::parse(r.body, nullptr, false);
    std::printf("%-8s %-4s %-21s %s\n", "ID", "TTY", "CREATED", "COMMAND");
    for (const auto& s : j.value("sessions", json::array()))
      std::printf("%-8s %-4s %-21s %s\n", s.value("id", "").c_str(), s.value("tty", false) ? "yes" : "no",
                  s.value("created", "").c_str(), s.value("command", "").c_str());
    return 0;
  }
  // attach and kill: the id is the last positional argument unless a signal follows.
  std::size_t want_max = verb == "kill" ? 3 : 2;
  if (pos.empty() || pos.size() > want_max) return usage(2);
  auto is_id = [](const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; };
  std::string sprite, id, signal = "SIGTERM";
  if (pos.size() == 1) {
    id = pos[0];
  } else if (pos.size() == 2 && verb == "kill" && is_id(pos[0])) {
    id = pos[0];
    signal = pos[1];
  } else {
    sprite = pos[0];
    id = pos[1];
    if (pos.size() == 3) signal = pos[2];
  }
  sprite = need_sprite(sprite);
  if (!is_id(id)) {
    std::fprintf(stderr, "ballpoint: '%s' is not a session id (see `ballpoint sessions list`)\n", id.c_str());
    return 2;
  }
  if (verb == "attach") return attach_session(ep, sprite, id);
  if (verb != "kill") return usage(2);
  Reply r = request(ep, "POST",
                    "/v1/sprites/" + url_encode(sprite) + "/exec/" + id + "/kill?signal=" + url_encode(signal), "");
  if (r.status == 410) {
    std::printf("session %s had already exited\n", id.c_str());
    return 0;
  }
  if (r.status != 200) {
    print_error(r);
    return 1;
  }
  int code = 0;
  std::size_t at = 0;
  while (at < r.body.size()) {
    std::size_t nl = r.body.find('\n', at);
    json ev = json::parse(r.body.substr(at, nl - at), nullptr, false);
    at = nl == std::string::npos ? r.body.size() : nl + 1;
    if (!ev.is_object()) continue;
    std::string type = ev.value("type", "");
    if (type == "exited") std::printf("session %s exited with %d\n", id.c_str(), ev.value("exit_code", -1));
    else if (type == "error") code = 1, std::fprintf(stderr, "ballpoint: %s\n", ev.value("message", "").c_str());
    else if (type != "complete") std::printf("%s\n", ev.value("message", type).c_str());
  }
  return code;
}

// Prints an NDJSON progress stream (API.md 1.6); 1 if it reports an error.
int print_progress(const std::string& body) {
  int code = 1;  // a stream that never completes failed
  std::size_t at = 0;
  while (at < body.size()) {
    std::size_t nl = body.find('\n', at);
    json ev = json::parse(body.substr(at, nl - at), nullptr, false);
    at = nl == std::string::npos ? body.size() : nl + 1;
    if (!ev.is_object()) continue;
    std::string type = ev.value("type", "");
    if (type == "error") {
      std::fprintf(stderr, "ballpoint: %s\n", ev.value("error", "failed").c_str());
      return 1;
    }
    std::printf("%s\n", ev.value("data", "").c_str());
    if (type == "complete") code = 0;
  }
  return code;
}

// checkpoint create [NAME] [-m COMMENT] | list [NAME] | restore [NAME] ID | delete [NAME] ID
int checkpoint(const Endpoint& ep, const std::vector<std::string>& a) {
  if (a.empty()) return usage(2);
  const std::string& verb = a[0];
  std::vector<std::string> pos;
  std::string comment;
  for (std::size_t i = 1; i < a.size(); ++i) {
    if (a[i] == "-m" && verb == "create" && i + 1 < a.size()) comment = a[++i];
    else pos.push_back(a[i]);
  }
  bool takes_id = verb == "restore" || verb == "delete";
  if (pos.size() > (takes_id ? 2u : 1u) || (takes_id && pos.empty())) return usage(2);
  std::string id = takes_id ? pos.back() : "";
  std::string sprite = need_sprite(pos.size() == (takes_id ? 2u : 1u) ? pos[0] : "");
  std::string base = "/v1/sprites/" + url_encode(sprite);
  if (verb == "create" || verb == "restore") {
    Reply r = verb == "create" ? request(ep, "POST", base + "/checkpoint", json{{"comment", comment}}.dump())
                               : request(ep, "POST", base + "/checkpoints/" + url_encode(id) + "/restore", "");
    if (r.status != 200) {
      print_error(r);
      return 1;
    }
    return print_progress(r.body);
  }
  if (verb == "list") {
    Reply r = request(ep, "GET", base + "/checkpoints", "");
    if (r.status != 200) {
      print_error(r);
      return 1;
    }
    json j = json::parse(r.body, nullptr, false);
    std::printf("%-10s %-21s %-10s %s\n", "ID", "CREATED", "FROM", "COMMENT");
    auto dash = [](std::string v) { return v.empty() ? std::string("-") : v; };
    for (const auto& c : j.is_array() ? j : json::array())
      std::printf("%-10s %-21s %-10s %s\n", c.value("id", "").c_str(), dash(c.value("create_time", "")).c_str(),
                  dash(c.value("source_id", "")).c_str(), c.value("comment", "").c_str());
    return 0;
  }
  if (verb == "delete") {
    Reply r = request(ep, "DELETE", base + "/checkpoints/" + url_encode(id), "");
    if (r.status != 204) {
      print_error(r);
      return 1;
    }
    std::printf("deleted %s\n", id.c_str());
    return 0;
  }
  return usage(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string endpoint_file, url, token;
  if (const char* e = std::getenv("BALLPOINT_URL")) url = e;
  if (const char* e = std::getenv("BALLPOINT_TOKEN")) token = e;
  if (const char* e = std::getenv("BALLPOINT_ENDPOINT")) endpoint_file = e;
  std::size_t i = 0;
  for (; i < args.size() && args[i].rfind("--", 0) == 0 && args[i] != "--"; ++i) {
    auto value = [&](std::string& out) {
      if (i + 1 >= args.size()) std::exit(usage(2));
      out = args[++i];
    };
    if (args[i] == "--endpoint") value(endpoint_file);
    else if (args[i] == "--url") value(url);
    else if (args[i] == "--token") value(token);
    else if (args[i] == "--help") return usage(0);
    else return usage(2);
  }
  if (i >= args.size()) return usage(2);
  std::string cmd = args[i++];
  std::vector<std::string> rest(args.begin() + static_cast<long>(i), args.end());

  if (cmd == "use") {
    if (rest.size() != 1) return usage(2);
    std::error_code ec;
    fs::create_directories(config_dir(), ec);
    std::ofstream f(config_dir() + "/default-sprite");
    f << rest[0] << "\n";
    if (ec || !f.flush()) {
      std::fprintf(stderr, "ballpoint: cannot write %s/default-sprite\n", config_dir().c_str());
      return 1;
    }
    return 0;
  }

  Endpoint ep{url, token};
  if (ep.url.empty() || ep.token.empty()) {
    if (endpoint_file.empty()) {
      const char* state = std::getenv("BALLPOINT_STATE");
      endpoint_file = std::string(state && *state ? state : "/var/lib/ballpoint") + "/endpoint.json";
    }
    std::string err;
    if (!read_endpoint(endpoint_file, ep, err)) {
      std::fprintf(stderr, "ballpoint: %s\n", err.c_str());
      return 1;
    }
  }

  try {
    if (cmd == "create" || cmd == "destroy") {
      if (rest.size() != 1) return usage(2);
      Reply r = cmd == "create" ? request(ep, "POST", "/v1/sprites", json{{"name", rest[0]}}.dump())
                                : request(ep, "DELETE", "/v1/sprites/" + url_encode(rest[0]), "");
      if (r.status / 100 != 2) {
        print_error(r);
        return 1;
      }
      std::printf("%s %s\n", cmd == "create" ? "created" : "destroyed", rest[0].c_str());
      return 0;
    }
    if (cmd == "list") {
      Reply r = request(ep, "GET", "/v1/sprites", "");
      if (r.status != 200) {
        print_error(r);
        return 1;
      }
      json j = json::parse(r.body, nullptr, false);
      for (const auto& s : j.value("sprites", json::array()))
        std::printf("%-32s %s\n", s.value("name", "").c_str(), s.value("status", "").c_str());
      return 0;
    }
    if (cmd == "exec" || cmd == "console") {
      ExecOptions o;
      std::size_t k = 0;
      if (cmd == "exec" && k < rest.size() && rest[k] == "-t") o.tty = true, ++k;
      if (k < rest.size() && rest[k] != "--") o.sprite = rest[k++];
      if (o.sprite.empty()) o.sprite = default_sprite();
      if (o.sprite.empty()) {
        std::fputs("ballpoint: which sprite? name it, or set a default with `ballpoint use NAME`\n", stderr);
        return 2;
      }
      if ((cmd == "console" || o.tty) && !::isatty(0)) {
        std::fputs("ballpoint: a terminal session needs a terminal on stdin (drop -t to pipe input)\n", stderr);
        return 2;
      }
      if (cmd == "console") {
        o.tty = true;
        o.detachable = true;
        o.argv = {"sh", "-c", "if command -v bash >/dev/null; then exec bash -l; else exec sh -l; fi"};
      } else {
        if (k < rest.size() && rest[k] == "--") ++k;
        o.argv.assign(rest.begin() + static_cast<long>(k), rest.end());
        if (o.argv.empty()) return usage(2);
      }
      return run_exec(ep, o);
    }
    if (cmd == "sessions") return sessions(ep, rest);
    if (cmd == "checkpoint") return checkpoint(ep, rest);
  } catch (const boost::system::system_error& e) {
    // Boost's what() carries a source location; the user wants the reason.
    std::fprintf(stderr, "ballpoint: cannot reach %s: %s\n", ep.url.c_str(), e.code().message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ballpoint: %s\n", e.what());
    return 1;
  }
  return usage(2);
}
