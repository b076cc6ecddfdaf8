// tests/integration/volume_driver.cpp — one volume, the whole stack (object store,
// volume, FUSE + loop, ext4), outside the runtime, for tests and benchmarks:
//
//   volume_driver serve URL DIR VOLUME MNT [--create] [--durability strict|local]
//                       [--size BYTES] [--sync-ms N] [--journal-limit BYTES] [--flush-timeout-ms N]
//                       [--readahead BYTES] [--lease-ttl-ms N]
//       mounts the volume's ext4 at MNT, prints "ready", serves until stdin closes or
//       SIGTERM/SIGINT, then unmounts, detaches, uploads and prints its stats as JSON.
//   volume_driver fsck URL DIR VOLUME
//       attaches the volume, replays the ext4 journal (mount + unmount, what a restart
//       does), runs e2fsck -fn and exits with its status, its output on stdout.
//   volume_driver stats URL DIR VOLUME
//       opens the volume and prints what it holds (used bytes) as JSON.
//
// S3 keys come from $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY and $AWS_REGION. It runs
// in a mount namespace of its own, so nothing it mounts outlives it.
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/disks.hpp"
#include "common/run.hpp"
#include "common/sys.hpp"
#include "storage/frontend.hpp"
#include "storage/volume.hpp"

using nlohmann::json;
namespace st = bp::storage;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "volume_driver: %s\n", what.c_str());
  std::exit(2);
}

std::string env(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

void unmount(const std::string& path) {
  for (int i = 0; i < 200 && ::umount2(path.c_str(), 0) != 0 && errno == EBUSY; ++i) ::usleep(20000);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() < 4) die("usage: volume_driver serve|fsck|stats URL DIR VOLUME [MNT] [options]");
  std::string cmd = a[0];
  st::VolumeOptions o;
  o.dir = a[2];
  o.name = a[3];
  std::string mnt;
  std::size_t i = 4;
  if (cmd == "serve") {
    if (a.size() < 5) die("serve needs MNT");
    mnt = a[4];
    i = 5;
  }
  for (; i < a.size(); ++i) {
    auto next = [&]() -> std::string {
      if (i + 1 >= a.size()) die(a[i] + " needs a value");
      return a[++i];
    };
    if (a[i] == "--create") {
      o.create = true;
    } else if (a[i] == "--durability") {
      auto d = st::parse_durability(next());
      if (!d) die(d.error().what);
      o.durability = *d;
    } else if (a[i] == "--size") {
      o.size = std::stoull(next());
    } else if (a[i] == "--sync-ms") {
      o.sync_interval = std::chrono::milliseconds(std::stoull(next()));
    } else if (a[i] == "--journal-limit") {
      o.journal_limit = std::stoull(next());
    } else if (a[i] == "--readahead") {
      o.readahead = std::stoull(next());
    } else if (a[i] == "--flush-timeout-ms") {
      o.flush_timeout = std::chrono::milliseconds(std::stoull(next()));
    } else if (a[i] == "--lease-ttl-ms") {
      o.lease_ttl = std::chrono::milliseconds(std::stoull(next()));
    } else {
      die("unknown option " + a[i]);
    }
  }
  if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    die(std::string("private mount namespace: ") + std::strerror(errno));
  // A process that serves FUSE must not be the one that tears down a mount namespace
  // holding a filesystem on its own FUSE file: that teardown (at exit, before the
  // process's /dev/fuse is released) flushes through the loop device into FUSE and
  // waits for itself forever. So a child holds the namespace and leaves only once we
  // are entirely gone (its pipe's EOF comes after our /dev/fuse is closed), which is
  // what makes kill -9 of this driver safe.
  int hold[2];
  if (::pipe(hold) != 0) die("pipe");
  pid_t holder = ::fork();
  if (holder < 0) die("fork");
  if (holder == 0) {
    ::close(hold[1]);
    char c;
    while (::read(hold[0], &c, 1) < 0 && errno == EINTR) {
    }
    ::_exit(0);
  }
  ::close(hold[0]);
  // Signals are read from a signalfd, so the stack is taken down in order on SIGTERM.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  bp::storage::S3Credentials creds{env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"),
                                   env("AWS_REGION").empty() ? "us-east-1" : env("AWS_REGION")};
  auto store = bp::agent::open_object_store(a[1], creds);
  if (!store) die(store.error().what);
  auto vol = st::Volume::open(**store, o);
  if (!vol) die(vol.error().what);

  if (cmd == "stats") {
    auto s = (*vol)->stats();
    std::cout << json{{"used_bytes", (*vol)->used_bytes()}, {"size", (*vol)->size()}, {"applied_seq", s.applied_seq}}.dump()
              << std::endl;
    auto c = (*vol)->close();
    return c ? 0 : 1;
  }

  auto dev = st::attach_fuse_loop(**vol, o.dir + "/frontend");
  if (!dev) die(dev.error().what);
  int rc = 0;
  if (cmd == "fsck") {
    std::string m = o.dir + "/fsck-mnt";
    if (auto s = bp::make_dirs(m); !s) die(s.error().what);
    if (auto s = st::mount_ext4((*dev)->device(), m); !s) die(s.error().what);
    unmount(m);  // (the device stays held: e2fsck runs on it next)
    auto out = bp::run_program({"e2fsck", "-fn", (*dev)->device()});
    std::cout << (out ? *out : out.error().what) << std::flush;
    rc = out ? 0 : 1;
  } else if (cmd == "serve") {
    if (auto s = st::ensure_ext4((*dev)->device()); !s) die(s.error().what);
    if (auto s = bp::make_dirs(mnt); !s) die(s.error().what);
    if (auto s = st::mount_ext4((*dev)->device(), mnt); !s) die(s.error().what);
    (*dev)->release_hold();
    std::cout << "ready " << (*dev)->device() << std::endl;
    int sfd = ::signalfd(-1, &set, SFD_CLOEXEC);
    pollfd p[2] = {{0, POLLIN, 0}, {sfd, POLLIN, 0}};
    for (;;) {
      if (::poll(p, 2, -1) < 0 && errno != EINTR) break;
      if (p[1].revents) break;
      if (p[0].revents) {
        char buf[256];
        if (::read(0, buf, sizeof buf) <= 0) break;
      }
    }
    unmount(mnt);
  } else {
    die("unknown command " + cmd);
  }
  if (auto s = (*dev)->detach(); !s) die(s.error().what);
  auto closed = (*vol)->close();
  auto s = (*vol)->stats();
  std::cout << json{{"used_bytes", (*vol)->used_bytes()}, {"bytes_written", s.bytes_written},
                    {"bytes_uploaded", s.bytes_uploaded}, {"segments", s.segments},
                    {"journal_bytes", s.journal_bytes}, {"closed", closed ? "ok" : closed.error().what}}
                   .dump()
            << std::endl;
  return closed ? rc : 1;
}
