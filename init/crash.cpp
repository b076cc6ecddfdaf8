// init/crash.cpp — a fixed message, sync(), power-off; nothing that allocates or locks.
#include "init/crash.hpp"

#include <signal.h>
#include <sys/reboot.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <initializer_list>

namespace bp::init {

namespace {

bool g_vm_mode = false;
char g_altstack[64 * 1024];

void write_str(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    ssize_t w = ::write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

[[noreturn]] void die(const char* what, int code) {
  write_str("{\"level\":\"fatal\",\"comp\":\"init.crash\",\"msg\":\"ballpoint: crashed; syncing and powering off\",\"cause\":\"");
  write_str(what);
  write_str("\"}\n");
  ::sync();
  if (g_vm_mode) {
    ::reboot(RB_POWER_OFF);
    for (;;) ::pause();  // PID 1 must never return
  }
  ::_exit(code);
}

void on_signal(int sig) {
  const char* name = sig == SIGSEGV ? "SIGSEGV"
                     : sig == SIGBUS ? "SIGBUS"
                     : sig == SIGABRT ? "SIGABRT"
                     : sig == SIGILL ? "SIGILL"
                     : sig == SIGFPE ? "SIGFPE"
                     : sig == SIGSYS ? "SIGSYS"
                     : sig == SIGTRAP ? "SIGTRAP"
                                     : "fatal signal";
  die(name, 128 + sig);
}

void on_terminate() { die("std::terminate", 134); }

}  // namespace

void install_crash_handlers(bool vm_mode) {
  g_vm_mode = vm_mode;
  stack_t ss{};
  ss.ss_sp = g_altstack;
  ss.ss_size = sizeof g_altstack;
  ::sigaltstack(&ss, nullptr);  // a stack overflow must still reach the handler
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGSYS, SIGTRAP}) ::sigaction(sig, &sa, nullptr);
  std::set_terminate(on_terminate);
}

}  // namespace bp::init
