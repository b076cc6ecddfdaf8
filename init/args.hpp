// init/args.hpp — ballpoint-init's command line.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"
#include "init/config.hpp"

namespace bp::init {

enum class Mode {
  vm,         // PID 1 of a VM: no arguments
  host,       // --host: the launcher on an ordinary host
  host_pid1,  // the launcher re-executed as PID 1 of new pid and mount namespaces
  help,
  version,
};

struct Args {
  Mode mode = Mode::vm;
  std::string state_dir;    // host modes
  std::string config_path;  // host modes: optional config.json
  Overrides overrides;      // from --listen, --log-level, --set KEY=VALUE
};

Result<Args> parse_args(const std::vector<std::string>& argv);
std::string usage();

}  // namespace bp::init
