// tests/unit/container/cgroup_test.cpp — finding the cgroup2 mount in mountinfo.
#include <catch2/catch.hpp>

#include "init/container/cgroup.hpp"

TEST_CASE("the cgroup2 mount point is found whatever the optional fields", "[mounts]") {
  const char* v1_and_v2 =
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 master:2 - cgroup2 cgroup2 rw,nsdelegate\n";
  CHECK(bp::container::find_cgroup2_mount(v1_and_v2) == "/sys/fs/cgroup/unified");
  CHECK(bp::container::find_cgroup2_mount("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n").empty());
  CHECK(bp::container::find_cgroup2_mount("").empty());
}
