// init/modules.hpp — loading kernel modules with finit_module, dependencies first.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace bp::init {

// modules.dep and modules.builtin of one kernel, keyed by module name ('-' as '_').
struct ModuleIndex {
  std::string dir;                                        // /lib/modules/<release>
  std::map<std::string, std::string> path;                // name -> path relative to dir
  std::map<std::string, std::vector<std::string>> deps;   // name -> dependency paths, as listed
  std::set<std::string> builtin;
};

std::string module_name_of(std::string_view path);  // "kernel/fs/fuse/fuse.ko.xz" -> "fuse"

// Parses the text of modules.dep and modules.builtin.
ModuleIndex parse_module_index(std::string dir, std::string_view modules_dep, std::string_view modules_builtin);
Result<ModuleIndex> load_module_index(const std::string& dir);

// The files to load for name, in load order (dependencies first; modprobe loads
// the listed dependencies last to first). Empty when the module is built in.
Result<std::vector<std::string>> module_load_order(const ModuleIndex& idx, std::string_view name);

// finit_module of one file; an already loaded module counts as done.
Status load_module_file(const std::string& path);

}  // namespace bp::init
