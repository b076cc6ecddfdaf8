// init/boot.cpp — the boot step table and the loop that runs PID 1's components.
#include "init/boot.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <cstring>

#include "agent/disks.hpp"
#include "agent/registry.hpp"
#include "agent/sprites.hpp"
#include "api/router.hpp"
#include "api/server.hpp"
#include "common/log.hpp"
#include "common/log_exit.hpp"
#include "common/sys.hpp"
#include "init/cmdline.hpp"
#include "init/config.hpp"
#include "init/console.hpp"
#include "init/container/cgroup.hpp"
#include "init/modules.hpp"
#include "init/mounts.hpp"
#include "init/reaper.hpp"
#include "init/shutdown.hpp"
#include "init/signals.hpp"
#include "init/state.hpp"
#include "storage/frontend.hpp"
#include "netproxy/rtnl.hpp"

namespace bp::init {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kConfigPath = "/etc/ballpoint/config.json";
constexpr const char* kVersion = "0.1.0";

std::int64_t micros_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
}

// Time since the kernel started, suspend included: boot-to-ready as the machine sees it.
std::int64_t uptime_ms() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The kernel starts init with a soft RLIMIT_NOFILE of 1024: far too few for an API
// server. Raise it (and, where allowed, the hard limit) and return the soft limit.
std::uint64_t raise_nofile() {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rlimit want{1u << 20, 1u << 20};
  if (::setrlimit(RLIMIT_NOFILE, &want) == 0) return want.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

std::int64_t rss_kb() {
  auto s = read_file("/proc/self/status");
  if (!s) return -1;
  auto pos = s->find("VmRSS:");
  if (pos == std::string::npos) return -1;
  return std::atoll(s->c_str() + pos + 6);
}

constexpr const char* kVmState = "/var/lib/ballpoint";  // VM mode: on the cache disk

class Pid1 {
 public:
  explicit Pid1(const Args& args) : args_(args), vm_(args.mode == Mode::vm) {}

  int run();

  struct Step {
    const char* name;
    bool required;
    Status (Pid1::*fn)();
    // Failing with a condition that may pass (a store that is down, not wrong keys or a
    // bad URL), the step is tried again with backoff until it works or shutdown comes.
    bool retry = false;
  };

  Status step_root();
  Status step_mount_filesystems();
  Status step_load_config();
  Status step_mount_cgroup2();
  Status step_load_modules();
  Status step_hostname();
  Status step_network();
  Status step_api();
  Status step_host_namespaces();
  Status step_cgroup_parent();
  Status step_cache_disk();
  Status step_storage();
  Status step_sprites();
  Status step_host_state();
  Status step_host_endpoint();

 private:

  asio::awaitable<void> boot();
  asio::awaitable<void> signal_loop();
  // Reads every pending signal without blocking: reaps, or starts shutdown.
  void drain_signals();
  void request_shutdown(std::string_view why);
  void stop_components();
  std::string url() const;
  api::Machine machine() const;

  const Args& args_;
  const bool vm_;
  Logger log_{"init.boot"};
  asio::io_context io_{1};
  // Blocking work (container start and stop, mounts) runs here, never on the loop.
  asio::thread_pool blocking_{2};
  std::optional<asio::posix::stream_descriptor> sigfd_;
  std::optional<asio::steady_timer> watchdog_;
  Reaper reaper_;
  Config cfg_;
  std::string token_;
  std::uint64_t nofile_ = 1024;

  // Components, in start order; stopped in reverse by stop_components().
  std::unique_ptr<container::CgroupParent> cgroup_parent_;  // where sprites' cgroups go
  agent::Registry registry_;
  std::unique_ptr<agent::Disks> disks_;
  std::unique_ptr<agent::SpriteManager> sprites_;
  std::unique_ptr<api::Router> router_;
  api::ExecDeps exec_deps_;
  api::SessionTable sessions_;
  std::unique_ptr<api::Server> server_;
  std::vector<std::pair<const char*, std::function<void()>>> stops_;

  bool booting_ = true;
  bool shutting_down_ = false;
  int exit_code_ = 0;
  Clock::time_point boot_t0_ = Clock::now();
};

// Boot steps, in order; a later issue's components slot in before "api".
constexpr Pid1::Step kVmSteps[] = {
    {"root", true, &Pid1::step_root},
    {"mount_filesystems", true, &Pid1::step_mount_filesystems},
    {"load_config", true, &Pid1::step_load_config},
    {"mount_cgroup2", true, &Pid1::step_mount_cgroup2},
    {"cgroup", true, &Pid1::step_cgroup_parent},
    {"load_modules", false, &Pid1::step_load_modules},
    {"hostname", false, &Pid1::step_hostname},
    {"network", false, &Pid1::step_network},
    {"cache_disk", false, &Pid1::step_cache_disk},
    {"storage", true, &Pid1::step_storage, true},
    // Retried too: the sprite's disk may still be leased by a machine that died (its
    // lease runs out), or its store may not answer yet.
    {"sprites", true, &Pid1::step_sprites, true},
    {"api", true, &Pid1::step_api},
};
constexpr Pid1::Step kHostSteps[] = {
    {"namespaces", true, &Pid1::step_host_namespaces},
    {"load_config", true, &Pid1::step_load_config},
    {"state_dir", true, &Pid1::step_host_state},
    {"cgroup", true, &Pid1::step_cgroup_parent},
    {"storage", true, &Pid1::step_storage, true},
    {"sprites", true, &Pid1::step_sprites},
    {"api", true, &Pid1::step_api},
    {"endpoint", true, &Pid1::step_host_endpoint},
};

Status Pid1::step_root() {
  bool moved = false;
  if (auto s = leave_initramfs(moved); !s) return s;
  log_.info(moved ? "root: the initramfs, now under a bind mount" : "root: already a mount with a parent");
  return {};
}

Status Pid1::step_mount_filesystems() {
  if (auto s = mount_api_filesystems(log_); !s) return s;
  reopen_console();  // if the kernel started us without a console, /dev now has one
  return {};
}

Status Pid1::step_load_config() {
  std::string text;
  std::string path = vm_ ? kConfigPath : args_.config_path;
  if (!path.empty()) {
    auto t = read_file(path);
    if (t) {
      text = std::move(*t);
    } else if (!vm_ || t.error().code != ENOENT) {
      return std::move(t.error()).wrap("config");
    }
  }
  Overrides ov = args_.overrides;
  if (vm_) {
    auto cmdline = read_file("/proc/cmdline");
    if (!cmdline) return std::move(cmdline.error()).wrap("config");
    ov = ballpoint_overrides(*cmdline);
  }
  // Overrides end up in /proc/cmdline (VM) or in our argv (host mode), which processes
  // in a container can read: never a secret there.
  for (const auto& [k, v] : ov)
    if (k == "api.token")
      return make_error(std::string("config: api.token: not accepted on the ") +
                        (vm_ ? "kernel command line" : "command line") +
                        ", which other processes can read; put it in config.json or use api.token_file");
  auto cfg = parse_config(text, ov);
  if (!cfg) return std::move(cfg.error());
  cfg_ = std::move(*cfg);
  logsink::set_level(cfg_.log_level);
  if (!cfg_.api.token_file.empty()) {
    auto t = read_file(cfg_.api.token_file);
    if (!t) return std::move(t.error()).wrap("config: api.token_file");
    token_ = *t;
    while (!token_.empty() && (token_.back() == '\n' || token_.back() == ' ')) token_.pop_back();
  } else {
    token_ = cfg_.api.token;
  }
  if (vm_ && token_.size() < 16) return make_error("config: api.token: required in VM mode (or api.token_file)");
  return {};
}

Status Pid1::step_mount_cgroup2() {
  std::vector<std::string> refused;
  auto enabled = mount_cgroup2("/sys/fs/cgroup", &refused);
  if (!enabled) return std::move(enabled.error());
  for (const auto& r : refused) log_.warn("cgroup controller not enabled", {{"err", r}});
  log_.info("cgroup2 ready", {{"path", "/sys/fs/cgroup"}, {"controllers", *enabled}});
  return {};
}

Status Pid1::step_load_modules() {
  if (cfg_.modules.empty()) return {};
  auto rel = read_file("/proc/sys/kernel/osrelease");
  if (!rel) return std::move(rel.error());
  std::string release = *rel;
  while (!release.empty() && release.back() == '\n') release.pop_back();
  auto idx = load_module_index("/lib/modules/" + release);
  if (!idx) return std::move(idx.error());
  int failed = 0;
  for (const auto& m : cfg_.modules) {
    auto t0 = Clock::now();
    auto order = module_load_order(*idx, m);
    Status s;
    if (!order) {
      s = std::move(order.error());
    } else {
      for (const auto& rel_path : *order) {
        s = load_module_file(idx->dir + "/" + rel_path);
        if (!s) break;
      }
    }
    bool builtin = order && order->empty();
    log_.log(s ? Level::info : Level::warn, s ? "module loaded" : "module failed",
             {{"module", m}, {"ok", bool(s)}, {"builtin", builtin}, {"dur_us", micros_since(t0)},
              {"err", err_text(s)}});
    if (!s) ++failed;
  }
  if (failed) return make_error(std::to_string(failed) + " of " + std::to_string(cfg_.modules.size()) +
                                " modules failed to load");
  return {};
}

Status Pid1::step_hostname() {
  if (::sethostname(cfg_.hostname.data(), cfg_.hostname.size()) != 0) return sys_error("sethostname");
  return {};
}

Status Pid1::step_network() {
  if (auto s = netproxy::link_set_up("lo"); !s) return s;
  if (cfg_.net.interface.empty()) return {};
  // A NIC driver loaded a moment ago may still be registering its interface.
  for (int i = 0; i < 100 && !netproxy::link_exists(cfg_.net.interface); ++i) ::usleep(20000);
  if (auto s = netproxy::link_set_up(cfg_.net.interface); !s) return s;
  if (!cfg_.net.address.empty())
    if (auto s = netproxy::addr_add(cfg_.net.interface, cfg_.net.address); !s) return s;
  if (!cfg_.net.gateway.empty())
    if (auto s = netproxy::route_add_default(cfg_.net.gateway); !s) return s;
  return {};
}

Status Pid1::step_api() {
  api::RouterConfig rc{token_, cfg_.org, kVersion, "", vm_ ? 1 : static_cast<int>(cfg_.max_sprites), machine()};
  router_ = std::make_unique<api::Router>(rc, registry_, sprites_.get(), &sessions_);
  api::ServerConfig sc;
  sc.host = cfg_.api.listen.host;
  sc.port = cfg_.api.listen.port;
  sc.tls_cert = cfg_.api.tls_cert;
  sc.tls_key = cfg_.api.tls_key;
  // Connections must run out before descriptors do: PID 1 needs fds for everything else.
  sc.max_connections = std::min<std::uint64_t>(sc.max_connections, nofile_ / 2);
  // A session holds up to five descriptors (pipes or a PTY, its pidfd) besides its socket.
  sessions_.set_limit(std::min<std::uint64_t>(cfg_.api.max_sessions, nofile_ / 8));
  if (sprites_) {
    exec_deps_.container = [this](const std::string& name) { return sprites_->container(name); };
    exec_deps_.ticket = [this] { return reaper_.ticket(); };
    exec_deps_.watch_exit = [this](pid_t pid, std::uint64_t ticket, std::function<void(int)> cb) {
      reaper_.watch(pid, std::move(cb), ticket);
    };
  }
  auto server =
      std::make_unique<api::Server>(io_, sc, *router_, blocking_, sprites_ ? &exec_deps_ : nullptr, &sessions_);
  if (auto s = server->start(); !s) return s;
  server_ = std::move(server);
  router_->set_base_url(url());
  stops_.emplace_back("api", [this] { server_->stop(); });
  log_.info("api listening", {{"url", url()}});
  return {};
}

Status Pid1::step_host_namespaces() { return private_mounts_and_proc(); }

Status Pid1::step_cgroup_parent() {
  // Host mode: a name of its own per state directory, so two runtimes on one host never
  // share a subtree, and a restart after a crash finds (and empties) its leftovers.
  std::string name = "ballpoint";
  std::string mount_dir = "/run/ballpoint-cgroup";
  if (!vm_) {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a: stable across builds
    for (unsigned char c : args_.state_dir) h = (h ^ c) * 1099511628211ull;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    name += "-" + std::string(hex, 12);
    mount_dir = args_.state_dir + "/cgroup-mount";  // mounted in our own mount namespace only
  }
  auto parent = container::prepare_cgroup_parent(mount_dir, name);
  if (!parent) return std::move(parent.error());
  for (const auto& r : parent->refused) log_.warn("cgroup controller not enabled", {{"err", r}});
  std::string missing;
  for (const char* c : {"memory", "pids", "cpu"})
    if ((" " + parent->controllers + " ").find(std::string(" ") + c + " ") == std::string::npos)
      missing += missing.empty() ? c : std::string(", ") + c;
  if (!missing.empty())
    log_.warn("this cgroup2 hierarchy lacks controllers: sprite limits on them cannot be applied here",
              {{"missing", missing}, {"cgroup", parent->dir.path()}});
  log_.info("cgroup for sprites", {{"cgroup", parent->dir.path()}, {"controllers", parent->controllers}});
  cgroup_parent_ = std::make_unique<container::CgroupParent>(std::move(*parent));
  stops_.emplace_back("cgroup", [this] {
    if (auto s = cgroup_parent_->dir.remove(); !s) log_.warn("cgroup removal failed", {{"err", s.error().what}});
  });
  return {};
}

// VM mode: the cache disk (storage.cache_disk) carries /var/lib/ballpoint: the volumes'
// journals, maps and cached objects. A disk without ext4 is blank or foreign and is
// formatted: the cache holds nothing the object store cannot give back, except a local
// mode journal, which lives on an ext4 this step keeps. No such disk: state stays in RAM.
Status Pid1::step_cache_disk() {
  const std::string& dev = cfg_.storage.cache_disk;
  if (dev.empty()) return {};
  // The node appears when virtio_blk has probed the disk, just after its module loads.
  for (int i = 0; i < 100 && ::access(dev.c_str(), F_OK) != 0; ++i) ::usleep(20000);
  if (::access(dev.c_str(), F_OK) != 0)
    return make_error(dev + " does not exist: sprite state stays in RAM and is lost at power-off", ENOENT);
  if (auto s = storage::ensure_ext4(dev); !s) return s;
  if (auto s = make_dirs(kVmState); !s) return s;
  if (auto s = storage::mount_ext4(dev, kVmState); !s) return s;
  stops_.emplace_back("cache_disk", [this] {
    ::sync();
    if (::umount2(kVmState, 0) != 0) log_.warn("cache disk still busy at shutdown", {{"err", std::strerror(errno)}});
  });
  log_.info("cache disk", {{"device", dev}, {"mounted", kVmState}});
  return {};
}

// The object store sprites' disks live in, checked reachable with these keys (one GET
// of a key that need not exist). A store that does not answer fails the step, which is
// retried: a sprite never comes up on a fresh empty disk in place of its own.
Status Pid1::step_storage() {
  const auto& st = cfg_.storage;
  std::string state = vm_ ? kVmState : args_.state_dir;
  std::string url = st.object_store.empty() ? "file://" + state + "/objects" : st.object_store;
  storage::S3Credentials creds;
  auto env = [](const char* k) -> std::string {
    const char* v = ::getenv(k);
    return v ? v : "";
  };
  creds.access_key = st.s3_access_key.empty() ? env("AWS_ACCESS_KEY_ID") : st.s3_access_key;
  creds.secret_key = st.s3_secret_key.empty() ? env("AWS_SECRET_ACCESS_KEY") : st.s3_secret_key;
  if (!st.s3_secret_key_file.empty()) {
    auto k = read_file(st.s3_secret_key_file);
    if (!k) return std::move(k.error()).wrap("storage.s3_secret_key_file");
    creds.secret_key = *k;
    while (!creds.secret_key.empty() && std::isspace(static_cast<unsigned char>(creds.secret_key.back())))
      creds.secret_key.pop_back();
  }
  if (!st.s3_region.empty()) creds.region = st.s3_region;
  else if (!env("AWS_REGION").empty()) creds.region = env("AWS_REGION");
  auto store = agent::open_object_store(url, creds);
  if (!store) return std::move(store.error());
  // A GET, not a HEAD: a refusal then comes with the store's reason (its error body).
  if (auto probe = (*store)->get("volumes/.probe"); !probe && probe.error().code != ENOENT)
    return std::move(probe.error()).wrap("object store " + url);
  agent::DisksConfig dc;
  dc.state_dir = state;
  auto d = storage::parse_durability(st.durability);
  if (!d) return std::move(d.error());
  dc.defaults.durability = *d;
  dc.defaults.size = st.volume_size / 4096 * 4096;  // whole blocks
  dc.defaults.sync_interval = std::chrono::milliseconds(st.sync_interval_ms);
  dc.defaults.journal_limit = st.journal_limit;
  dc.defaults.cache_limit = st.cache_limit;
  dc.defaults.flush_timeout = std::chrono::milliseconds(st.flush_timeout_ms);
  dc.defaults.lease_ttl = std::chrono::milliseconds(st.lease_ttl_ms);
  dc.defaults.gc_interval = std::chrono::milliseconds(st.gc_interval_ms);
  dc.defaults.gc_grace = std::chrono::milliseconds(st.gc_grace_ms);
  dc.checkpoint_mounts = st.checkpoint_mounts;
  disks_ = std::make_unique<agent::Disks>(dc, std::move(*store));
  stops_.emplace_back("storage", [this] { disks_->unmount_all(); });
  log_.info("object store", {{"url", url}, {"durability", st.durability}, {"volume_size", dc.defaults.size}});
  return {};
}

// Host mode: every sprite the state directory holds, and more on request. VM mode: the
// one sprite this machine is (sprite_name), made at first boot; create and delete are
// the control plane's (API.md 3.12), so the API gets no SpriteControl there.
Status Pid1::step_sprites() {
  agent::SpritesConfig sc;
  sc.state_dir = vm_ ? kVmState : args_.state_dir;
  sc.base_image = cfg_.base_image;
  sc.cgroup_parent = cgroup_parent_->dir.path();
  sc.max_sprites = vm_ ? 1 : cfg_.max_sprites;
  sc.single = vm_;
  sc.disks = disks_.get();
  sc.no_new_privs = cfg_.no_new_privs;
  sc.limits.memory_max = cfg_.limits.memory_max;
  sc.limits.memory_swap_max = cfg_.limits.memory_swap_max;
  sc.limits.pids_max = cfg_.limits.pids_max;
  sc.limits.cpu_max = cfg_.limits.cpu_max;
  if (!sc.base_image.empty() && ::access((sc.base_image + "/bin").c_str(), F_OK) != 0)
    return make_error("base_image: " + sc.base_image + " is not a root directory (no bin/ in it)", ENOENT);
  if (vm_ && sc.base_image.empty()) {
    log_.warn("no base_image configured: this VM runs no sprite");
    return {};
  }
  if (auto s = make_state_dir(sc.state_dir); !s) return s;
  // Exec session ids are never reused, not even after a restart (API.md 2.2).
  sessions_.persist_ids(sc.state_dir + "/session-ids");
  auto mgr = std::make_unique<agent::SpriteManager>(sc, registry_);
  if (auto s = mgr->load(); !s) return s;
  if (vm_ && !registry_.get(cfg_.sprite_name)) {
    auto rec = mgr->create(cfg_.sprite_name);
    if (!rec) return std::move(rec.error());
  }
  sprites_ = std::move(mgr);
  stops_.emplace_back("sprites", [this] {
    // Creates and deletes still running on the pool finish first (each is bounded).
    blocking_.join();
    sprites_->stop_all();
  });
  log_.info("sprites loaded", {{"count", registry_.size()}, {"base_image", sc.base_image}});
  return {};
}

Status Pid1::step_host_state() {
  if (auto s = make_state_dir(args_.state_dir); !s) return s;
  if (cfg_.api.token.empty() && cfg_.api.token_file.empty()) {
    auto t = load_or_create_token(args_.state_dir);
    if (!t) return std::move(t.error());
    token_ = std::move(*t);
  }
  return {};
}

Status Pid1::step_host_endpoint() {
  if (auto s = write_endpoint(args_.state_dir, url(), token_); !s) return s;
  std::string path = args_.state_dir + "/endpoint.json";
  stops_.emplace_back("endpoint", [path] { ::unlink(path.c_str()); });
  return {};
}

// What a sprite runs on, for its config (API.md 3.12): the configured limits, or the machine.
api::Machine Pid1::machine() const {
  api::Machine m;
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  m.ram_mb = pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) >> 20 : 0;
  if (cfg_.limits.memory_max) m.ram_mb = std::min<std::uint64_t>(m.ram_mb ? m.ram_mb : ~0ull, *cfg_.limits.memory_max >> 20);
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  m.cpus = n > 0 ? static_cast<unsigned>(n) : 0;
  unsigned long long quota = 0, period = 0;
  if (cfg_.limits.cpu_max && std::sscanf(cfg_.limits.cpu_max->c_str(), "%llu %llu", &quota, &period) == 2 && period)
    m.cpus = std::min<unsigned>(m.cpus ? m.cpus : ~0u, static_cast<unsigned>((quota + period - 1) / period));
  m.storage_gb = cfg_.storage.volume_size >> 30;
  return m;
}

std::string Pid1::url() const {
  std::string host = cfg_.api.listen.host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::string scheme = cfg_.api.tls_cert.empty() ? "http://" : "https://";
  return scheme + host + ":" + std::to_string(server_ ? server_->port() : cfg_.api.listen.port);
}

asio::awaitable<void> Pid1::boot() {
  auto steps = vm_ ? std::span<const Step>(kVmSteps) : std::span<const Step>(kHostSteps);
  for (const Step& step : steps) {
    // A shutdown signal that arrived during the previous step is seen before the next
    // one starts (the loop's own wait would run only after this coroutine yields).
    drain_signals();
    co_await asio::post(io_, asio::use_awaitable);
    if (shutting_down_) {
      log_.info("boot cancelled", {{"before", step.name}});
      co_return;
    }
    auto t0 = Clock::now();
    Status s = (this->*step.fn)();
    auto delay = std::chrono::seconds(1);
    // Retried: what may pass (a store not answering yet, a dead machine's lease still
    // running); not refused keys, bad settings, or data that is not what it should be.
    auto retryable = [](const Error& e) {
      return e.code != EACCES && e.code != EINVAL && e.code != EBADMSG && e.code != ENOENT && e.code != EUNATCH;
    };
    while (!s && step.retry && retryable(s.error())) {
      log_.error("step failed; retrying", {{"step", step.name}, {"err", s.error().what}, {"in_s", delay.count()}});
      asio::steady_timer wait(io_, delay);
      co_await wait.async_wait(asio::use_awaitable);
      drain_signals();
      if (shutting_down_) {
        log_.info("boot cancelled", {{"during", step.name}});
        co_return;
      }
      delay = std::min<std::chrono::seconds>(delay * 2, std::chrono::seconds(30));
      s = (this->*step.fn)();
    }
    log_.log(s ? Level::info : (step.required ? Level::error : Level::warn), s ? "step done" : "step failed",
             {{"step", step.name}, {"ok", bool(s)}, {"required", step.required}, {"dur_us", micros_since(t0)},
              {"err", err_text(s)}});
    if (!s && step.required) {
      log_.fatal("boot failed", {{"step", step.name}, {"err", s.error().what}});
      exit_code_ = 1;
      request_shutdown("boot failed");
      co_return;
    }
  }
  booting_ = false;
  if (!vm_) {
    // For the person who just ran scripts/run: the log is JSON on stderr, this is for them.
    std::string banner = "\nballpoint is running at " + url() + " (state in " + args_.state_dir + ")\n" +
                         "  token:  " + args_.state_dir + "/token\n" + "  try:    curl -H \"Authorization: Bearer $(cat " +
                         args_.state_dir + "/token)\" " + url() + "/v1/sprites\n" +
                         "  stop:   Ctrl-C, or SIGTERM to the ballpoint-init --host process\n\n";
    [[maybe_unused]] auto w = write_all(1, banner);
  }
  log_.info("ballpoint: ready", {{"mode", vm_ ? "vm" : "host"}, {"url", url()},
                                 {"boot_ms", micros_since(boot_t0_) / 1000}, {"uptime_ms", uptime_ms()},
                                 {"rss_kb", rss_kb()},
                                 {"version", kVersion}});
}

asio::awaitable<void> Pid1::signal_loop() {
  for (;;) {
    auto [ec] = co_await sigfd_->async_wait(asio::posix::descriptor_base::wait_read,
                                            asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;  // closed at the end of shutdown
    drain_signals();
  }
}

void Pid1::drain_signals() {
  // This loop is PID 1's only reaper and shutdown trigger: nothing may end it.
  try {
    signalfd_siginfo si{};
    while (::read(sigfd_->native_handle(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      int sig = static_cast<int>(si.ssi_signo);
      if (is_shutdown_signal(sig)) {
        log_.info("shutdown requested", {{"signal", sigabbrev_np(sig)}, {"from_pid", si.ssi_pid}});
        request_shutdown("signal");
      }
    }
    // One SIGCHLD can stand for many exits, and a coalesced one may not be read at all.
    reaper_.reap();
  } catch (const std::exception& e) {
    log_.error("signal handling failed", {{"err", e.what()}});
  }
}

void Pid1::stop_components() {
  for (auto it = stops_.rbegin(); it != stops_.rend(); ++it) {
    auto t0 = Clock::now();
    try {
      it->second();
      log_.info("stopped", {{"component", it->first}, {"dur_us", micros_since(t0)}});
    } catch (const std::exception& e) {
      log_.error("stop failed", {{"component", it->first}, {"err", e.what()}});
    }
  }
  stops_.clear();
}

void Pid1::request_shutdown(std::string_view why) {
  if (shutting_down_) return;
  shutting_down_ = true;
  log_.info("shutting down", {{"reason", why}, {"during_boot", booting_}});
  stop_components();
  // Everything is stopped; what remains on the loop is connections closing. Bound it.
  watchdog_.emplace(io_, std::chrono::milliseconds(cfg_.shutdown_timeout_ms));
  watchdog_->async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    log_.warn("shutdown timed out; leaving the loop", {{"timeout_ms", cfg_.shutdown_timeout_ms}});
    io_.stop();
  });
  asio::post(io_, [this] {
    reaper_.reap();
    boost::system::error_code ec;
    sigfd_->close(ec);
    // The loop ends when the last connection has closed; then the watchdog goes too.
    asio::co_spawn(io_, [this]() -> asio::awaitable<void> {
      while (server_ && server_->connections() > 0) {
        asio::steady_timer t(io_, std::chrono::milliseconds(5));
        co_await t.async_wait(asio::use_awaitable);
      }
      // Components are stopped and connections closed: what may still wait on the loop
      // (a session for an exit nobody will reap now, a linger timer) no longer matters.
      watchdog_->cancel();
      io_.stop();
    }, log_exit("init.shutdown"));
  });
}

int Pid1::run() {
  nofile_ = raise_nofile();
  if (vm_) {
    // Ctrl-Alt-Del then sends SIGINT to PID 1 instead of rebooting at once.
    if (::reboot(RB_DISABLE_CAD) != 0) log_.warn("reboot(RB_DISABLE_CAD) failed", {{"errno", errno}});
  }
  auto sfd = open_signalfd();
  if (!sfd) {
    log_.fatal("cannot read signals", {{"err", sfd.error().what}});
    return 1;
  }
  sigfd_.emplace(io_, sfd->release());
  asio::co_spawn(io_, [this] { return signal_loop(); }, log_exit("init.signals"));
  asio::co_spawn(io_, [this] { return boot(); }, [this](std::exception_ptr ep) {
    log_exit("init.boot")(ep);
    if (ep) {
      exit_code_ = 1;
      request_shutdown("boot threw");
    }
  });
  logsink::start_writer();
  // A handler that throws leaves run(); the loop is entered again (Asio allows it).
  for (;;) {
    try {
      io_.run();
      break;
    } catch (const std::exception& e) {
      log_.error("handler threw", {{"err", e.what()}});
    } catch (...) {
      log_.error("handler threw", {{"err", "unknown exception"}});
    }
  }
  reaper_.reap();
  log_.info("stopped all components", {{"code", exit_code_}, {"reaped_total", reaper_.reaped_total()}});
  return exit_code_;
}

}  // namespace

int run_pid1(const Args& args) {
  int code = 1;
  try {
    // Never destroyed: finish() below ends the process, and tearing the loop down
    // would only run the destructors of coroutines that can no longer matter.
    auto* p = new Pid1(args);
    code = p->run();
  } catch (const std::exception& e) {
    Logger("init").fatal("PID 1 failed", {{"err", e.what()}});
  } catch (...) {
    Logger("init").fatal("PID 1 failed", {{"err", "unknown exception"}});
  }
  finish(args.mode == Mode::vm, code);
}

}  // namespace bp::init
