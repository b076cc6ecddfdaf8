// tests/probe/probe.cpp — a payload the integration tests run inside ballpoint's namespaces.
//   probe orphans N   fork N children that each leave one grandchild behind and exit at once;
//                     the grandchildren outlive their parents, so PID 1 must reap them.
//   probe fds         print the open file descriptors, one per line.
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

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

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "orphans") == 0) return orphans(std::atol(argv[2]));
  if (argc == 2 && std::strcmp(argv[1], "fds") == 0) return fds();
  std::fprintf(stderr, "usage: probe orphans N | probe fds\n");
  return 2;
}
