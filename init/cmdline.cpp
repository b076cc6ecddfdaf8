// init/cmdline.cpp — parsing /proc/cmdline.
#include "init/cmdline.hpp"

namespace bp::init {

std::vector<std::string> split_cmdline(std::string_view line) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false, quoted = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
      in_word = true;
      continue;
    }
    if (!quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
      if (in_word) {
        if (cur == "--") return words;
        words.push_back(std::move(cur));
        cur.clear();
        in_word = false;
      }
      continue;
    }
    cur += c;
    in_word = true;
  }
  if (in_word && cur != "--") words.push_back(std::move(cur));
  return words;
}

std::vector<std::pair<std::string, std::string>> ballpoint_overrides(std::string_view line) {
  constexpr std::string_view kPrefix = "ballpoint.";
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& w : split_cmdline(line)) {
    if (w.size() <= kPrefix.size() || w.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    std::string_view rest(w);
    rest.remove_prefix(kPrefix.size());
    auto eq = rest.find('=');
    if (eq == std::string_view::npos)
      out.emplace_back(std::string(rest), std::string());
    else
      out.emplace_back(std::string(rest.substr(0, eq)), std::string(rest.substr(eq + 1)));
  }
  return out;
}

}  // namespace bp::init
