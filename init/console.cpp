// init/console.cpp — stdio for a PID 1 that may have started without any.
#include "init/console.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bp::init {

namespace {

bool is_placeholder(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

void ensure_stdio() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0) continue;
    // open() returns the lowest free number, which is fd itself.
    int got = ::open("/dev/console", O_RDWR | O_NOCTTY);
    if (got < 0) got = ::open("/dev/null", O_RDWR);
    if (got < 0) got = ::open("/", O_RDONLY | O_DIRECTORY);  // a placeholder: writes fail quietly
    if (got >= 0 && got != fd) {
      ::dup2(got, fd);
      ::close(got);
    }
  }
}

void reopen_console() {
  if (!is_placeholder(0) && !is_placeholder(1) && !is_placeholder(2)) return;
  int con = ::open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (con < 0) return;
  for (int fd = 0; fd <= 2; ++fd)
    if (is_placeholder(fd)) ::dup2(con, fd);
  ::close(con);
}

}  // namespace bp::init
