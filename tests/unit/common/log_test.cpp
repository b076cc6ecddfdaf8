// tests/unit/common/log_test.cpp — JSON-lines formatting, levels, the ring.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/log.hpp"

using nlohmann::json;

TEST_CASE("an event is one JSON object with ts, level, comp, msg and the fields", "[log]") {
  std::string line = bp::format_event(1700000000123, bp::Level::warn, "init.boot", "step failed",
                                      {{"step", "load_modules"}, {"ok", false}, {"dur_us", 412},
                                       {"big", std::uint64_t(1) << 40}, {"ratio", 0.5}});
  CHECK(line.find('\n') == std::string::npos);
  json j = json::parse(line);
  CHECK(j["ts"] == "2023-11-14T22:13:20.123Z");
  CHECK(j["level"] == "warn");
  CHECK(j["comp"] == "init.boot");
  CHECK(j["msg"] == "step failed");
  CHECK(j["step"] == "load_modules");
  CHECK(j["ok"] == false);
  CHECK(j["dur_us"] == 412);
  CHECK(j["big"] == (std::uint64_t(1) << 40));
  CHECK(j["ratio"] == 0.5);
}

TEST_CASE("strings with quotes, newlines and control bytes stay one valid line", "[log]") {
  std::string nasty = "a\"b\\c\nd\re\tf\x01g";
  std::string line = bp::format_event(0, bp::Level::info, "c", nasty, {{"k", nasty}});
  CHECK(line.find('\n') == std::string::npos);
  json j = json::parse(line);
  CHECK(j["msg"] == nasty);
  CHECK(j["k"] == nasty);
}

TEST_CASE("levels parse by name and filter what is emitted", "[log]") {
  bp::Level l = bp::Level::info;
  CHECK(bp::parse_level("debug", l));
  CHECK(l == bp::Level::debug);
  CHECK_FALSE(bp::parse_level("verbose", l));
  CHECK_FALSE(bp::parse_level("fatal", l));  // fatal is for the way to power-off only

  bp::logsink::set_level(bp::Level::warn);
  bp::Logger log("test.levels");
  log.info("hidden-info-line");
  log.warn("shown-warn-line");
  bp::logsink::set_level(bp::Level::info);
  bool hidden = false, shown = false;
  for (const auto& r : bp::logsink::ring_snapshot()) {
    hidden |= r.find("hidden-info-line") != std::string::npos;
    shown |= r.find("shown-warn-line") != std::string::npos;
  }
  CHECK_FALSE(hidden);
  CHECK(shown);
}

TEST_CASE("with the writer thread running, lines still reach the ring in order", "[log]") {
  bp::logsink::start_writer();
  bp::Logger log("test.writer");
  for (int i = 0; i < 100; ++i) log.info("writer-line", {{"i", i}});
  bp::logsink::stop_writer();
  int next = 0;
  for (const auto& r : bp::logsink::ring_snapshot()) {
    if (r.find("writer-line") == std::string::npos) continue;
    CHECK(json::parse(r)["i"] == next);
    ++next;
  }
  CHECK(next == 100);
}
