// tests/probe/probe.cpp — a static payload the integration tests run inside ballpoint's namespaces
// and containers.
//   probe orphans N   fork N children that each leave one grandchild behind and exit at once;
//                     the grandchildren outlive their parents, so PID 1 must reap them.
//   probe fds         the open file descriptors, one per line
//   probe ns          "NAME LINK" for each namespace of this process
//   probe escapes     tries what a contained process must not do; one line per attempt:
//                     "NAME ok" if it succeeded, "NAME ERRNO-NAME" if it failed
#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/swap.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>

namespace {

int orphans(long n) {
  long made = 0;
  for (long i = 0; i < n; ++i) {
    pid_t p = fork();
    if (p < 0) {
      std::perror("fork");
      break;
    }
    if (p == 0) {
      pid_t g = fork();
      if (g == 0) {
        struct timespec ts {0, 20 * 1000 * 1000};  // outlive the parent by a little
        nanosleep(&ts, nullptr);
        _exit(0);
      }
      _exit(g < 0 ? 1 : 0);
    }
    int st = 0;
    waitpid(p, &st, 0);  // the probe reaps its own children; only grandchildren orphan
    ++made;
  }
  std::printf("orphaned %ld\n", made);
  return made == n ? 0 : 1;
}

int fds() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return 1;
  int self = dirfd(d);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.' || std::atoi(e->d_name) == self) continue;
    std::printf("%s\n", e->d_name);
  }
  closedir(d);
  return 0;
}

int ns() {
  for (const char* n : {"cgroup", "ipc", "mnt", "net", "pid", "uts"}) {
    char path[64], link[128] = {};
    std::snprintf(path, sizeof path, "/proc/self/ns/%s", n);
    if (readlink(path, link, sizeof link - 1) < 0) return 1;
    std::printf("%s %s\n", n, link);
  }
  return 0;
}

void report(const char* name, long rc) {
  if (rc >= 0)
    std::printf("%s ok\n", name);
  else
    std::printf("%s %s\n", name, strerrorname_np(errno));
  std::fflush(stdout);
}

int escapes() {
  mkdir("/tmp/probe-mnt", 0755);
  report("mount_proc", mount("proc", "/tmp/probe-mnt", "proc", 0, nullptr));
  report("mount_tmpfs", mount("tmpfs", "/tmp/probe-mnt", "tmpfs", 0, nullptr));
  // A node for the VM's disk (virtio 253:0, or 8:0): making it may work, using it must not.
  unlink("/tmp/probe-vda");
  report("mknod_disk", mknod("/tmp/probe-vda", S_IFBLK | 0600, makedev(253, 0)));
  report("open_disk", open("/tmp/probe-vda", O_RDONLY));
  report("mount_disk", mount("/tmp/probe-vda", "/tmp/probe-mnt", "ext4", MS_RDONLY, nullptr));
  report("init_module", syscall(SYS_init_module, nullptr, 0, ""));
  int null = open("/dev/null", O_RDONLY);
  report("finit_module", syscall(SYS_finit_module, null, "", 0));
  report("delete_module", syscall(SYS_delete_module, "ext4", O_NONBLOCK));
  report("kexec_load", syscall(SYS_kexec_load, 0, 0, nullptr, 0));
  // In a child pid namespace a permitted reboot would only end the container.
  report("reboot", reboot(RB_POWER_OFF));
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
  perf_event_attr pe{};
  pe.size = sizeof pe;
  pe.type = PERF_TYPE_SOFTWARE;
  pe.config = PERF_COUNT_SW_CPU_CLOCK;
  report("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
  report("ptrace_init", ptrace(PTRACE_ATTACH, 1, nullptr, nullptr));
  report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, nullptr, O_RDONLY));
  report("unshare_user", unshare(CLONE_NEWUSER));
  report("unshare_mount", unshare(CLONE_NEWNS));
  report("setns", setns(null, 0));
  report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
  report("write_sys", open("/sys/kernel/uevent_helper", O_WRONLY));
  report("read_init_root", open("/proc/1/root/etc/hostname", O_RDONLY));
  report("read_init_environ", open("/proc/1/environ", O_RDONLY));
  report("swapon", swapon("/tmp/probe-vda", 0));
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  report("settime", clock_settime(CLOCK_REALTIME, &now));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "orphans") == 0) return orphans(std::atol(argv[2]));
  if (argc == 2 && std::strcmp(argv[1], "fds") == 0) return fds();
  if (argc == 2 && std::strcmp(argv[1], "ns") == 0) return ns();
  if (argc == 2 && std::strcmp(argv[1], "escapes") == 0) return escapes();
  std::fprintf(stderr, "usage: probe orphans N | fds | ns | escapes\n");
  return 2;
}
