// init/state.cpp — token and endpoint files.
#include "init/state.hpp"

#include <sys/random.h>
#include <sys/stat.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/sys.hpp"

namespace bp::init {

Result<std::string> random_token() {
  unsigned char raw[32];
  std::size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("getrandom");
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

Result<std::string> load_or_create_token(const std::string& dir) {
  std::string path = dir + "/token";
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (st.st_mode & 077)
      return make_error(path + ": readable by others (mode " + std::to_string(st.st_mode & 0777) +
                        "); chmod 600 it", EPERM);
    auto t = read_file(path);
    if (!t) return std::move(t.error());
    std::string tok = *t;
    while (!tok.empty() && (tok.back() == '\n' || tok.back() == ' ')) tok.pop_back();
    if (tok.size() < 16) return make_error(path + ": token shorter than 16 characters", EINVAL);
    return tok;
  }
  if (errno != ENOENT) return sys_error("stat(" + path + ")");
  auto tok = random_token();
  if (!tok) return tok;
  if (auto s = write_file_atomic(path, *tok + "\n", 0600); !s) return std::move(s.error());
  return tok;
}

Status write_endpoint(const std::string& dir, const std::string& url, const std::string& token) {
  std::string body = nlohmann::json{{"url", url}, {"token", token}}.dump() + "\n";
  return write_file_atomic(dir + "/endpoint.json", body, 0600);
}

Status make_state_dir(const std::string& dir) {
  if (dir.empty()) return make_error("state directory: empty path", EINVAL);
  for (std::size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    std::string part = dir.substr(0, i);
    bool last = i == dir.size();
    if (::mkdir(part.c_str(), last ? 0700 : 0755) != 0 && errno != EEXIST) return sys_error("mkdir(" + part + ")");
  }
  return {};
}

}  // namespace bp::init
