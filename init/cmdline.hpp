// init/cmdline.hpp — kernel command line: words, and the ballpoint.KEY=VALUE overrides in it.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bp::init {

// Splits a kernel command line as the kernel does: whitespace separates words,
// double quotes group (and are removed), and "--" ends the kernel's part.
std::vector<std::string> split_cmdline(std::string_view line);

// The KEY=VALUE pairs of words "ballpoint.KEY=VALUE", in order. A word
// "ballpoint.KEY" without '=' is returned with an empty value.
std::vector<std::pair<std::string, std::string>> ballpoint_overrides(std::string_view line);

}  // namespace bp::init
