// api/spawn.cpp — an exec's process: pipes (or a PTY), enter(), the parent's ends.
#include "api/spawn.hpp"

#include "common/offload.hpp"

namespace bp::api {

boost::asio::awaitable<Spawned> spawn_exec(const ExecParams& p, const std::string& sprite, const ExecDeps& deps,
                                          boost::asio::thread_pool& blocking) {
  Spawned s;
  container::EnterSpec spec;
  spec.argv = p.argv;
  spec.path = p.path;
  spec.env = exec_environment(p);
  spec.cwd = p.dir;
  spec.tty = p.tty;
  spec.rows = p.rows;
  spec.cols = p.cols;
  // Non-TTY: three pipes (stdin only when asked for); the child's ends go to enter()
  // and are closed here once it has them.
  UniqueFd in_r, out_w, err_w;
  bool pipes = true;
  if (!p.tty) {
    if (p.stdin) pipes &= make_pipe(in_r, s.in_w);
    pipes &= make_pipe(s.out_r, out_w);
    pipes &= make_pipe(s.err_r, err_w);
    spec.stdin_fd = in_r.get();
    spec.stdout_fd = out_w.get();
    spec.stderr_fd = err_w.get();
  }
  auto container = deps.container(sprite);
  s.ticket = deps.ticket();
  s.proc = make_error("sprite '" + sprite + "' is not running", ESRCH);
  if (!pipes) s.proc = sys_error("pipe2");
  else if (container) s.proc = co_await offload(blocking, [&] { return container->enter(spec); });
  co_return s;
}

int spawn_failure_code(const Error& e) {
  return e.code == ENOENT && e.what.find("execve") != std::string::npos ? 127 : 126;
}

}  // namespace bp::api
