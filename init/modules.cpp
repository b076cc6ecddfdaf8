// init/modules.cpp — modules.dep parsing and finit_module.
#include "init/modules.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <sstream>

#include "common/fd.hpp"
#include "common/sys.hpp"

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

namespace bp::init {

std::string module_name_of(std::string_view path) {
  auto slash = path.rfind('/');
  if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
  auto ko = path.find(".ko");
  if (ko != std::string_view::npos) path = path.substr(0, ko);
  std::string name(path);
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

ModuleIndex parse_module_index(std::string dir, std::string_view modules_dep, std::string_view modules_builtin) {
  ModuleIndex idx;
  idx.dir = std::move(dir);
  std::istringstream dep{std::string(modules_dep)};
  std::string line;
  while (std::getline(dep, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string mod = line.substr(0, colon);
    std::string name = module_name_of(mod);
    idx.path[name] = mod;
    std::istringstream rest(line.substr(colon + 1));
    std::vector<std::string> deps;
    std::string d;
    while (rest >> d) deps.push_back(d);
    idx.deps[name] = std::move(deps);
  }
  std::istringstream bi{std::string(modules_builtin)};
  while (std::getline(bi, line))
    if (!line.empty()) idx.builtin.insert(module_name_of(line));
  return idx;
}

Result<ModuleIndex> load_module_index(const std::string& dir) {
  auto dep = read_file(dir + "/modules.dep");
  if (!dep) return std::move(dep.error());
  auto builtin = read_file(dir + "/modules.builtin");  // optional
  return parse_module_index(dir, *dep, builtin ? *builtin : std::string());
}

Result<std::vector<std::string>> module_load_order(const ModuleIndex& idx, std::string_view name_in) {
  std::string name = module_name_of(name_in);
  auto it = idx.path.find(name);
  if (it == idx.path.end()) {
    if (idx.builtin.count(name)) return std::vector<std::string>{};
    return make_error("module " + name + ": not in " + idx.dir + "/modules.dep", ENOENT);
  }
  // modules.dep already lists the whole closure; the last one listed loads first.
  const auto& deps = idx.deps.at(name);
  std::vector<std::string> order(deps.rbegin(), deps.rend());
  order.push_back(it->second);
  return order;
}

Status load_module_file(const std::string& path) {
  UniqueFd fd(retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }));
  if (!fd) return sys_error("open(" + path + ")");
  bool compressed = path.ends_with(".xz") || path.ends_with(".zst") || path.ends_with(".gz");
  int flags = compressed ? MODULE_INIT_COMPRESSED_FILE : 0;
  if (::syscall(SYS_finit_module, fd.get(), "", flags) != 0 && errno != EEXIST)
    return sys_error("finit_module(" + path + ")");
  return {};
}

}  // namespace bp::init
