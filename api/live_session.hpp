// api/live_session.hpp — an exec session: a process in a sprite, its output and its
// scrollback, independent of the sockets attached to it (API.md 2.2). Private to api/.
#pragma once

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/exec_params.hpp"
#include "api/exec_session.hpp"
#include "api/outbox.hpp"
#include "api/ports.hpp"
#include "api/sessions.hpp"
#include "common/fd.hpp"

namespace bp::api {

// A control-channel message (API.md 2.6): "control:" + JSON, or the bare JSON.
std::string control_envelope(bool prefixed, const nlohmann::json& j);

// One socket's view of a session: where its frames go and how its exit ends.
struct Attachment {
  std::shared_ptr<Outbox> out;  // the connection's queue
  bool control = false;         // on /control the exit is followed by op.complete, not a close
  bool prefixed = true;         // control envelopes as "control:{...}" (else bare JSON)
  std::string op_id;            // echoed in op.complete
  bool finished = false;        // the exit has been queued for it
};

// All members are used on the loop thread only.
class ExecSession : public std::enable_shared_from_this<ExecSession> {
 public:
  // Spawns the process in the sprite's container and starts the session's own
  // coroutine. A spawn failure is a session too, already ended: its scrollback holds
  // the message and its exit code is 127 (no such program) or 126.
  static boost::asio::awaitable<std::shared_ptr<ExecSession>> start(ExecParams p, std::string sprite,
                                                                   SessionTable& table, const ExecDeps& deps,
                                                                   boost::asio::thread_pool& blocking);
  ExecSession(boost::asio::any_io_executor ex, SessionTable& table);

  std::uint64_t id() const { return id_; }
  bool tty() const { return tty_; }

  // Queues session_info, the scrollback and, when the session has ended, its exit;
  // then the attachment receives live output until the exit.
  void attach(const std::shared_ptr<Attachment>& a, bool owner);
  // The attachment's socket is gone. When it was the last one, the process may run on
  // for the mode's max_run_after_disconnect (API.md 2.2), then it is ended.
  void detach(const std::shared_ptr<Attachment>& a);

  // A client's frame (API.md 2.1.4-2.1.6; control: on /control, 2.6). Resize and
  // signal take effect at once; stdin comes back as what to queue for the process
  // (data, or an empty close frame for EOF) with stdin_room() then stdin_put().
  std::optional<Frame> input(bool text, std::string_view bytes, bool control);
  boost::asio::awaitable<void> stdin_room();
  void stdin_put(Frame&& f);

 private:
  boost::asio::awaitable<void> run(std::optional<boost::asio::posix::stream_descriptor> out,
                                   std::optional<boost::asio::posix::stream_descriptor> err);
  boost::asio::awaitable<void> pump(boost::asio::posix::stream_descriptor fd, char stream_byte);
  boost::asio::awaitable<void> feed_stdin();
  boost::asio::awaitable<void> wait_exit();
  boost::asio::awaitable<void> exit_then_grace();
  boost::asio::awaitable<void> linger(std::uint64_t gen, std::int64_t ms);
  boost::asio::awaitable<void> watch_ports();
  void record(const std::string& frame);
  void finish(Attachment& a);
  void end();
  void signal_group(int sig);
  std::string info_json(bool owner) const;

  boost::asio::any_io_executor ex_;
  SessionTable& table_;
  std::uint64_t id_ = 0;
  std::string sprite_, command_;
  std::int64_t created_ = 0;
  bool tty_ = false;
  std::uint16_t rows_ = 24, cols_ = 80;
  std::int64_t linger_ms_ = 0;  // after the last detach; 0: for ever
  pid_t pid_ = -1;
  bool exited_ = false;         // reaped: pid_ may belong to someone else now
  int exit_code_ = -1;
  bool ended_ = false;          // exited and its output delivered
  boost::asio::steady_timer exit_timer_;  // cancelled once exited_
  boost::asio::steady_timer linger_timer_;  // one run-after-disconnect at a time; attach cancels it
  int pumps_waiting_ = 0;       // pumps holding output an attachment has no room for yet
  std::uint64_t attach_gen_ = 0;
  std::vector<OpenPort> ports_;  // what port_opened has announced (sorted)

  std::deque<std::string> scrollback_;  // the latest frames, as the owner got them
  std::size_t scrollback_bytes_ = 0;
  std::vector<std::shared_ptr<Attachment>> clients_;

  std::optional<boost::asio::posix::stream_descriptor> in_;  // stdin pipe or PTY master
  Outbox stdin_q_;
  bool stdin_open_ = false;
  UniqueFd pty_;  // the PTY master, for resize
};

}  // namespace bp::api
