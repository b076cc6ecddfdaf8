// tests/unit/init/modules_test.cpp — modules.dep parsing and load order.
#include <catch2/catch.hpp>

#include "init/modules.hpp"

using namespace bp::init;

namespace {
const char* kDep =
    "kernel/fs/fuse/fuse.ko:\n"
    "kernel/drivers/block/nbd.ko:\n"
    "kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko\n"
    "kernel/fs/jbd2/jbd2.ko:\n"
    "kernel/fs/mbcache.ko:\n"
    "kernel/lib/crc16.ko:\n"
    "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz\n";
const char* kBuiltin = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko\n";
}  // namespace

TEST_CASE("module names drop the directory and suffixes and treat - as _", "[modules]") {
  CHECK(module_name_of("kernel/fs/fuse/fuse.ko") == "fuse");
  CHECK(module_name_of("kernel/drivers/net/virtio_net.ko.xz") == "virtio_net");
  CHECK(module_name_of("virtio-net") == "virtio_net");
  CHECK(module_name_of("crc-t10dif.ko.zst") == "crc_t10dif");
}

TEST_CASE("dependencies load first, the last listed first of all", "[modules]") {
  auto idx = parse_module_index("/lib/modules/x", kDep, kBuiltin);
  auto ext4 = module_load_order(idx, "ext4");
  REQUIRE(ext4);
  CHECK(*ext4 == std::vector<std::string>{"kernel/lib/crc16.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko",
                                          "kernel/fs/ext4/ext4.ko"});
  auto net = module_load_order(idx, "virtio-net");
  REQUIRE(net);
  CHECK(net->back() == "kernel/drivers/net/virtio_net.ko.xz");
  CHECK(net->front() == "kernel/net/core/failover.ko.xz");
  auto fuse = module_load_order(idx, "fuse");
  REQUIRE(fuse);
  CHECK(*fuse == std::vector<std::string>{"kernel/fs/fuse/fuse.ko"});
}

TEST_CASE("built-in modules need no loading, and unknown ones are an error naming them", "[modules]") {
  auto idx = parse_module_index("/lib/modules/x", kDep, kBuiltin);
  auto pci = module_load_order(idx, "virtio_pci");
  REQUIRE(pci);
  CHECK(pci->empty());
  auto none = module_load_order(idx, "ublk_drv");
  REQUIRE_FALSE(none);
  CHECK(none.error().what.find("ublk_drv") != std::string::npos);
}
