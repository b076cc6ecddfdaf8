// init/args.cpp — flags to Args; flags become config overrides, so one code path validates.
#include "init/args.hpp"

namespace bp::init {

std::string usage() {
  return "usage: ballpoint-init                       (as PID 1 of a VM)\n"
         "       ballpoint-init --host --state DIR [--listen HOST:PORT] [--config FILE]\n"
         "                      [--object-store URL] [--durability strict|local]\n"
         "                      [--log-level debug|info|warn|error] [--set KEY=VALUE]...\n"
         "  URL: file:///DIR (default: file://STATE/objects), s3://HOST/BUCKET[/PREFIX] or\n"
         "       s3+http://HOST:PORT/BUCKET[/PREFIX], with keys from $AWS_ACCESS_KEY_ID and\n"
         "       $AWS_SECRET_ACCESS_KEY\n"
         "       ballpoint-init --version\n";
}

Result<Args> parse_args(const std::vector<std::string>& argv) {
  Args a;
  bool host = false, host_pid1 = false;
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string& f = argv[i];
    auto value = [&](std::string& out) -> Status {
      if (i + 1 >= argv.size()) return make_error(f + ": needs a value");
      out = argv[++i];
      return {};
    };
    std::string v;
    if (f == "--host") {
      host = true;
    } else if (f == "--host-pid1") {
      host_pid1 = true;
    } else if (f == "--help" || f == "-h") {
      a.mode = Mode::help;
      return a;
    } else if (f == "--version") {
      a.mode = Mode::version;
      return a;
    } else if (f == "--state") {
      if (auto s = value(a.state_dir); !s) return std::move(s.error());
    } else if (f == "--config") {
      if (auto s = value(a.config_path); !s) return std::move(s.error());
    } else if (f == "--listen") {
      if (auto s = value(v); !s) return std::move(s.error());
      a.overrides.emplace_back("api.listen", v);
    } else if (f == "--object-store") {
      if (auto s = value(v); !s) return std::move(s.error());
      a.overrides.emplace_back("storage.object_store", v);
    } else if (f == "--durability") {
      if (auto s = value(v); !s) return std::move(s.error());
      a.overrides.emplace_back("storage.durability", v);
    } else if (f == "--log-level") {
      if (auto s = value(v); !s) return std::move(s.error());
      a.overrides.emplace_back("log.level", v);
    } else if (f == "--set") {
      if (auto s = value(v); !s) return std::move(s.error());
      auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0) return make_error("--set: expected KEY=VALUE, got '" + v + "'");
      a.overrides.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else {
      return make_error("unknown argument '" + f + "'");
    }
  }
  if (host && host_pid1) return make_error("--host and --host-pid1 exclude each other");
  if (host || host_pid1) {
    a.mode = host ? Mode::host : Mode::host_pid1;
    if (a.state_dir.empty()) return make_error("--host needs --state DIR");
    if (a.state_dir.front() != '/' && host_pid1) return make_error("--state must be absolute");
    return a;
  }
  if (!a.state_dir.empty() || !a.config_path.empty() || !a.overrides.empty())
    return make_error("flags other than --host, --version and --help apply only with --host");
  a.mode = Mode::vm;
  return a;
}

}  // namespace bp::init
