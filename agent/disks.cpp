// agent/disks.cpp — sprites' disks (see disks.hpp).
#include "agent/disks.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/run.hpp"
#include "common/sys.hpp"
#include "storage/frontend.hpp"

namespace bp::agent {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string random_hex(std::size_t bytes) {
  unsigned char b[16] = {};
  bytes = std::min(bytes, sizeof b);
  if (::getrandom(b, bytes, 0) != static_cast<ssize_t>(bytes)) {
    auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    std::memcpy(b, &t, std::min(bytes, sizeof t));
  }
  std::string out;
  char h[3];
  for (std::size_t i = 0; i < bytes; ++i) {
    std::snprintf(h, sizeof h, "%02x", b[i]);
    out += h;
  }
  return out;
}

// Unmounts path, waiting a little for it to stop being busy (a container that just
// exited may still hold it for a moment).
Status unmount_path(const std::string& path) {
  for (int i = 0; i < 100; ++i) {
    if (::umount2(path.c_str(), 0) == 0 || errno == EINVAL || errno == ENOENT) return {};
    if (errno != EBUSY) return sys_error("umount(" + path + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return sys_error("umount(" + path + ")", EBUSY);
}

}  // namespace

Result<std::unique_ptr<storage::ObjectStore>> open_object_store(const std::string& url,
                                                                const storage::S3Credentials& creds) {
  if (url.rfind("file://", 0) == 0) return storage::open_file_store(url);
  if (url.rfind("s3://", 0) == 0 || url.rfind("s3+http://", 0) == 0) {
    if (creds.access_key.empty() || creds.secret_key.empty())
      return make_error("object store " + url + ": no S3 keys (set storage.s3_access_key and storage.s3_secret_key, "
                        "or $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY)", EINVAL);
    return storage::open_s3_store(url, creds);
  }
  return make_error("object store: unknown URL scheme in '" + url + "'", EINVAL);
}

struct MountedView {
  std::string id, target;
  std::unique_ptr<storage::BlockDevice> disk;
  std::unique_ptr<storage::AttachedDisk> dev;  // after disk: goes first
};

struct Disks::Mounted {
  using View = MountedView;
  std::vector<View> views;   // mounted checkpoints, oldest first
  std::string views_root;    // the tmpfs they are mounted on ("" when not mounted)
  UniqueFd views_bind;       // its read-only bind at target/.sprite/checkpoints
  std::string volume, target, frontend_dir;
  std::mutex ops;  // checkpoint, restore, delete, unmount: one at a time
  bool gone = false;  // unmounted while an operation waited for ops
  std::unique_ptr<storage::Volume> vol;
  std::unique_ptr<storage::AttachedDisk> dev;
};

Disks::Disks(DisksConfig cfg, std::unique_ptr<storage::ObjectStore> store)
    : cfg_(std::move(cfg)), store_(std::move(store)) {
  views_thread_ = std::thread([this] { run_views(); });
}

Disks::~Disks() {
  {
    std::lock_guard lk(views_mu_);
    views_stop_ = true;
    views_cv_.notify_all();
  }
  views_thread_.join();
  unmount_all();
}

storage::VolumeOptions Disks::options(const std::string& volume) const {
  storage::VolumeOptions o = cfg_.defaults;
  o.name = volume;
  o.dir = cfg_.state_dir + "/volumes/" + volume;
  o.bases_dir = cfg_.state_dir + "/bases";
  return o;
}

Status Disks::mount(const std::string& volume, const std::string& target, bool create, const std::string& base_image) {
  Logger log("agent.disks");
  auto o = options(volume);
  if (auto s = make_dirs(o.dir); !s) return s;
  o.create = create;
  if (create) {
    // Only a volume the store lacks becomes a clone; an existing one is opened as it is.
    auto known = store_->head("volumes/" + volume + "/volume.json");
    if (!known && known.error().code != ENOENT) return std::move(known).error().wrap("volume " + volume);
    if (!known) {
      if (base_image.empty()) return make_error("no base image to start a new disk from", EUNATCH);
      auto b = base(base_image);
      if (!b) return std::move(b).error();
      o.parent = b->volume;
      o.parent_seq = b->seq;
    }
  }
  auto t0 = std::chrono::steady_clock::now();
  auto vol = storage::Volume::open(*store_, o);
  if (!vol) return std::move(vol).error();
  auto m = std::make_shared<Mounted>();
  m->volume = volume;
  m->target = target;
  m->frontend_dir = o.dir + "/frontend";
  m->vol = std::move(*vol);
  if (auto s = make_dirs(target); !s) return s;
  if (auto s = attach_and_mount(*m, true); !s) {
    (void)m->vol->close();
    return s;
  }
  mount_views(m);
  log.info("disk mounted", {{"volume", volume}, {"device", m->dev->device()}, {"target", target},
                            {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()}});
  std::lock_guard lk(mu_);
  mounted_[volume] = std::move(m);
  return {};
}

// Serves the volume as a block device, formats it if asked and it has no ext4, mounts it.
Status Disks::attach_and_mount(Mounted& m, bool format) {
  auto dev = storage::attach_fuse_loop(*m.vol, m.frontend_dir);
  if (!dev) return std::move(dev).error().wrap("volume " + m.volume);
  auto fail = [&](Error e) -> Status {
    (void)(*dev)->detach();
    return std::move(e).wrap("volume " + m.volume);
  };
  if (format)
    if (auto s = storage::ensure_ext4((*dev)->device()); !s) return fail(std::move(s).error());
  if (auto s = storage::mount_ext4((*dev)->device(), m.target); !s) return fail(std::move(s).error());
  (*dev)->release_hold();
  m.dev = std::move(*dev);
  return {};
}

namespace {

// dir/name, made if missing and opened without following any symlink and without
// leaving dir: the sprite owns what its disk holds, and a symlink there must never lead
// a mount made as root on the host somewhere else.
Result<UniqueFd> open_beneath(int dir, const char* name, bool cross_mounts) {
  if (::mkdirat(dir, name, 0755) != 0 && errno != EEXIST) return sys_error(std::string("mkdir(") + name + ")");
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | (cross_mounts ? 0 : RESOLVE_NO_XDEV);
  int fd = static_cast<int>(::syscall(SYS_openat2, dir, name, &how, sizeof how));
  if (fd < 0) return sys_error(std::string("open(") + name + ") without symlinks");
  return UniqueFd(fd);
}

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

}  // namespace

// /.sprite/checkpoints: a small tmpfs in the volume's private state (shared, so what is
// mounted on it later propagates), bind-mounted read-only at the disk's
// .sprite/checkpoints (reached without symlinks). The container's copy of that bind is a
// slave (its rootfs setup), so a checkpoint mounted here appears inside at once; the
// sprite can neither write into it nor redirect it.
Status Disks::mount_views_dir(Mounted& m) {
  std::string dir = m.frontend_dir + "-checkpoints";
  if (auto s = make_dirs(dir); !s) return s;
  if (::mount("checkpoints", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") != 0)
    return sys_error("mount tmpfs at " + dir);
  auto fail = [&](Error e) -> Status {
    ::umount2(dir.c_str(), MNT_DETACH);
    return e;
  };
  if (::mount(nullptr, dir.c_str(), nullptr, MS_SHARED, nullptr) != 0) return fail(sys_error("make " + dir + " shared"));
  UniqueFd root(::open(m.target.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return fail(sys_error("open(" + m.target + ")"));
  auto sprite = open_beneath(root.get(), ".sprite", false);
  if (!sprite) return fail(std::move(sprite).error());
  auto under = open_beneath(sprite->get(), "checkpoints", false);
  if (!under) return fail(std::move(under).error());
  if (::mount(dir.c_str(), fd_path(under->get()).c_str(), nullptr, MS_BIND, nullptr) != 0)
    return fail(sys_error("bind " + dir + " into the disk"));
  auto bound = open_beneath(sprite->get(), "checkpoints", true);  // now the bind's root
  if (!bound || ::mount(nullptr, fd_path(bound->get()).c_str(), nullptr,
                        MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    ::umount2(fd_path(under->get()).c_str(), MNT_DETACH);
    return fail(bound ? sys_error("make the checkpoints read-only") : std::move(bound).error());
  }
  m.views_bind = std::move(*bound);
  m.views_root = dir;
  return {};
}

// The directory now (before the container starts, so its copy is in the container's
// namespace), the checkpoints in it later, on the views thread: loading a checkpoint's
// map is O(map), and a checkpoint's latency must not depend on the size of the disk.
void Disks::mount_views(const std::shared_ptr<Mounted>& m) {
  if (cfg_.checkpoint_mounts == 0 || !m->dev) return;
  if (m->views_root.empty())
    if (auto s = mount_views_dir(*m); !s) {
      Logger("agent.disks").warn("no /.sprite/checkpoints on this disk", {{"volume", m->volume}, {"err", s.error().what}});
      return;
    }
  std::lock_guard lk(views_mu_);
  views_queue_.push_back(m);
  views_cv_.notify_one();
}

void Disks::run_views() {
  std::unique_lock lk(views_mu_);
  for (;;) {
    views_cv_.wait(lk, [&] { return views_stop_ || !views_queue_.empty(); });
    if (views_stop_) return;
    auto m = views_queue_.front().lock();
    views_queue_.pop_front();
    lk.unlock();
    if (m) sync_views(*m);
    lk.lock();
  }
}

// Two steps: the maps of new checkpoints load without the disk's ops lock (O(map): a
// checkpoint or restore must not wait for them), then, under it, views that are no
// longer wanted go and the new ones are mounted.
void Disks::sync_views(Mounted& m) {
  Logger log("agent.disks");
  std::vector<std::string> want;
  for (const auto& c : m.vol->checkpoints()) want.push_back(c.id);
  if (want.size() > cfg_.checkpoint_mounts) want.erase(want.begin(), want.end() - static_cast<long>(cfg_.checkpoint_mounts));
  std::vector<std::string> have;
  {
    std::lock_guard ops(m.ops);
    if (m.gone) return;
    for (const auto& v : m.views) have.push_back(v.id);
  }
  std::vector<std::pair<std::string, std::unique_ptr<storage::BlockDevice>>> fresh;
  for (const auto& id : want)
    if (std::find(have.begin(), have.end(), id) == have.end())
      if (auto disk = m.vol->view(id)) fresh.emplace_back(id, std::move(*disk));
  std::lock_guard ops(m.ops);
  if (m.gone || !m.dev || m.views_root.empty()) return;
  std::erase_if(m.views, [&](Mounted::View& v) {
    return std::find(want.begin(), want.end(), v.id) == want.end() && drop_view(v);
  });
  for (auto& [id, disk] : fresh) {
    if (std::any_of(m.views.begin(), m.views.end(), [&](const auto& v) { return v.id == id; })) continue;
    Mounted::View v{id, m.views_root + "/" + id, std::move(disk), nullptr};
    std::string work = m.frontend_dir + "-views/" + id;
    auto dev = make_dirs(work) ? storage::attach_fuse_loop(*v.disk, work, 2)
                               : Result<std::unique_ptr<storage::AttachedDisk>>(sys_error("mkdir(" + work + ")"));
    if (!dev) {
      log.warn("checkpoint view not attached", {{"volume", m.volume}, {"id", id}, {"err", dev.error().what}});
      continue;
    }
    v.dev = std::move(*dev);
    Status s = make_dirs(v.target);
    if (s) s = storage::mount_ext4_read_only(v.dev->device(), v.target);
    if (!s) {
      log.warn("checkpoint not mounted", {{"volume", m.volume}, {"id", id}, {"err", s.error().what}});
      (void)v.dev->detach();
      ::rmdir(v.target.c_str());
      continue;
    }
    v.dev->release_hold();
    m.views.push_back(std::move(v));
  }
}

// Unmounts one view and stops serving it; false (and it stays listed, still served)
// while something holds it.
bool Disks::drop_view(MountedView& v) {
  if (auto s = unmount_path(v.target); !s) {
    Logger("agent.disks").warn("checkpoint view still mounted", {{"target", v.target}, {"err", s.error().what}});
    return false;
  }
  if (auto d = v.dev->detach(); !d)
    Logger("agent.disks").warn("checkpoint view not detached", {{"target", v.target}, {"err", d.error().what}});
  ::rmdir(v.target.c_str());
  return true;
}

void Disks::unmount_views(Mounted& m) {
  std::erase_if(m.views, [&](Mounted::View& v) { return drop_view(v); });
  if (m.views_root.empty() || !m.views.empty()) return;
  if (m.views_bind) {
    // Through the fd taken when it was made (a path in the sprite's disk could lead
    // elsewhere by now); detached, since that very fd keeps it busy until closed.
    if (::umount2(fd_path(m.views_bind.get()).c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
      Logger("agent.disks").warn("checkpoints bind still mounted", {{"volume", m.volume}, {"err", std::strerror(errno)}});
      return;
    }
    m.views_bind.reset();
  }
  if (auto s = unmount_path(m.views_root); !s) {
    Logger("agent.disks").warn("checkpoints tmpfs still mounted", {{"volume", m.volume}, {"err", s.error().what}});
    return;
  }
  m.views_root.clear();
}

Result<std::shared_ptr<Disks::Mounted>> Disks::find(const std::string& volume) {
  std::lock_guard lk(mu_);
  auto it = mounted_.find(volume);
  if (it == mounted_.end()) return make_error("volume " + volume + " is not mounted", ENOENT);
  return it->second;
}

Status Disks::unmount(const std::string& volume) {
  auto found = find(volume);
  if (!found) return {};
  auto m = *found;
  std::lock_guard ops(m->ops);
  if (m->gone) return {};
  // In order: the checkpoints mounted on it, the filesystem (which flushes it into the
  // volume), the block device, the frontend, then the volume uploads what is left.
  unmount_views(*m);
  if (m->dev)
    if (auto s = unmount_path(m->target); !s) {
      mount_views(m);  // still in use: it keeps its checkpoints too
      return std::move(s).error().wrap("unmount volume " + volume);
    }
  {
    std::lock_guard lk(mu_);
    mounted_.erase(volume);
  }
  m->gone = true;
  Status s = m->dev ? m->dev->detach() : Status{};
  m->dev.reset();
  Status c = m->vol->close();
  if (!s) return std::move(s).error().wrap("volume " + volume);
  if (!c) return c;
  Logger("agent.disks").info("disk unmounted", {{"volume", volume}});
  return {};
}

Status Disks::remove(const std::string& volume) {
  auto objs = store_->list("volumes/" + volume + "/");
  if (!objs) return std::move(objs).error().wrap("remove volume " + volume);
  std::vector<std::string> keys;
  for (auto& o : *objs) keys.push_back(std::move(o.key));
  if (auto s = store_->remove(keys); !s) return std::move(s).error().wrap("remove volume " + volume);
  std::error_code ec;
  fs::remove_all(options(volume).dir, ec);
  if (ec) return make_error("remove volume " + volume + ": " + ec.message(), ec.value());
  return {};
}

void Disks::unmount_all() {
  std::vector<std::string> names;
  {
    std::lock_guard lk(mu_);
    for (const auto& [n, m] : mounted_) names.push_back(n);
  }
  for (const auto& n : names)
    if (auto s = unmount(n); !s) Logger("agent.disks").error("disk unmount failed", {{"volume", n}, {"err", s.error().what}});
}

std::optional<std::uint64_t> Disks::used_bytes(const std::string& volume) {
  std::lock_guard lk(mu_);
  auto it = mounted_.find(volume);
  if (it == mounted_.end()) return std::nullopt;
  return it->second->vol->used_bytes();
}

bool Disks::mounted(const std::string& volume) {
  std::lock_guard lk(mu_);
  auto it = mounted_.find(volume);
  return it != mounted_.end() && it->second->dev != nullptr;
}

std::optional<std::string> Disks::health(const std::string& volume) {
  std::lock_guard lk(mu_);
  auto it = mounted_.find(volume);
  if (it == mounted_.end()) return std::nullopt;
  return it->second->vol->health();
}

Result<storage::Checkpoint> Disks::checkpoint(const std::string& volume, const std::string& comment) {
  auto m = find(volume);
  if (!m) return std::move(m).error();
  std::lock_guard ops((*m)->ops);
  if ((*m)->gone || !(*m)->dev) return make_error("volume " + volume + " is not mounted", ENOENT);
  // Frozen, the filesystem has written everything and its journal is clean.
  UniqueFd root(::open((*m)->target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return sys_error("open(" + (*m)->target + ")");
  if (::ioctl(root.get(), FIFREEZE, 0) != 0) return sys_error("freeze the filesystem of " + volume);
  auto c = (*m)->vol->checkpoint(comment);
  if (::ioctl(root.get(), FITHAW, 0) != 0)
    Logger("agent.disks").error("thaw failed", {{"volume", volume}, {"err", std::strerror(errno)}});
  if (c) mount_views(*m);
  return c;
}

Result<storage::Checkpoint> Disks::restore(const std::string& volume, const std::string& id) {
  auto found = find(volume);
  if (!found) return std::move(found).error();
  auto& m = **found;
  auto refresh = [&] { mount_views(*found); };
  std::lock_guard ops(m.ops);
  if (m.gone) return make_error("volume " + volume + " is not mounted", ENOENT);
  if (!m.vol->find_checkpoint(id)) return make_error("no checkpoint " + id, ENOENT);
  unmount_views(m);
  if (m.dev) {
    if (auto s = unmount_path(m.target); !s) {
      refresh();
      return std::move(s).error().wrap("restore " + volume);
    }
    if (Status d = m.dev->detach(); !d) {
      // Still attached: the disk goes back where it was, unchanged.
      if (auto again = storage::mount_ext4(m.dev->device(), m.target); !again) {
        Logger("agent.disks").error("disk not mounted again", {{"volume", volume}, {"err", again.error().what}});
        m.dev.reset();
      } else {
        refresh();
      }
      return std::move(d).error().wrap("restore " + volume);
    }
    m.dev.reset();
  }
  auto keep = m.vol->restore(id);
  // Mounted again whatever happened: the restored state, or the old one.
  if (auto s = attach_and_mount(m, false); !s) {
    Logger("agent.disks").error("disk not mounted again after a restore", {{"volume", volume}, {"err", s.error().what}});
    if (keep) return std::move(s).error();
  }
  refresh();
  return keep;
}

Result<std::vector<storage::Checkpoint>> Disks::checkpoints(const std::string& volume) {
  auto m = find(volume);
  if (!m) return std::move(m).error();
  std::vector<storage::Checkpoint> out{(*m)->vol->current()};
  for (auto& c : (*m)->vol->checkpoints()) out.push_back(std::move(c));
  return out;
}

Status Disks::delete_checkpoint(const std::string& volume, const std::string& id) {
  auto m = find(volume);
  if (!m) return std::move(m).error();
  std::lock_guard ops((*m)->ops);
  auto s = (*m)->vol->delete_checkpoint(id);
  if (s) mount_views(*m);
  return s;
}

// The base image's volume: the one recorded in STATE/base-volume.json if it was made
// from this image and the store has it sealed, else a new import.
Result<Disks::Base> Disks::base(const std::string& image) {
  std::lock_guard lk(base_mu_);
  if (base_ && base_->image == image) return *base_;
  std::string record = cfg_.state_dir + "/base-volume.json";
  if (auto text = read_file(record); text) {
    json j = json::parse(*text, nullptr, false);
    if (j.is_object() && j.value("image", "") == image && j.contains("seq") && j["seq"].is_number_unsigned()) {
      Base b{image, j.value("volume", ""), j["seq"].get<std::uint64_t>()};
      auto sealed = storage::sealed_seq(*store_, b.volume);
      if (!sealed) return std::move(sealed).error();
      if (*sealed && **sealed == b.seq) return *(base_ = b);
    }
  }
  auto b = import_base(image);
  if (!b) return b;
  json j{{"image", b->image}, {"volume", b->volume}, {"seq", b->seq}};
  if (auto s = write_file_atomic(record, j.dump() + "\n", 0600); !s) return std::move(s).error();
  return *(base_ = *b);
}

// Copies the image into a new volume's ext4, uploads all of it and seals it. A crash
// part-way leaves an unsealed volume nothing refers to; the next start imports anew.
Result<Disks::Base> Disks::import_base(const std::string& image) {
  Logger log("agent.disks");
  auto t0 = std::chrono::steady_clock::now();
  Base b{image, "base-" + random_hex(6), 0};
  auto o = options(b.volume);
  o.create = true;
  o.durability = storage::Durability::local;  // one upload at close is enough
  if (auto s = make_dirs(o.dir); !s) return std::move(s).error();
  auto vol = storage::Volume::open(*store_, o);
  if (!vol) return std::move(vol).error().wrap("import base image");
  auto dev = storage::attach_fuse_loop(**vol, o.dir + "/frontend");
  if (!dev) return std::move(dev).error().wrap("import base image");
  std::string mnt = o.dir + "/mnt";
  auto step = [&]() -> Status {
    if (auto s = storage::ensure_ext4((*dev)->device()); !s) return s;
    if (auto s = make_dirs(mnt); !s) return s;
    if (auto s = storage::mount_ext4((*dev)->device(), mnt); !s) return s;
    (*dev)->release_hold();
    auto cp = run_program({"cp", "-a", "--", image + "/.", mnt + "/"});
    Status u = unmount_path(mnt);
    if (!cp) return std::move(cp).error();
    return u;
  };
  Status s = step();
  Status d = (*dev)->detach();
  Status c = (*vol)->close();
  for (Status* e : {&s, &d, &c})
    if (!*e) return std::move(*e).error().wrap("import base image " + image);
  b.seq = (*vol)->stats().applied_seq;
  if (auto m = storage::mark_sealed(*store_, b.volume, b.seq); !m) return std::move(m).error();
  std::error_code ec;
  fs::remove_all(o.dir, ec);  // clones read it through the store and their own caches
  log.info("base image imported", {{"image", image}, {"volume", b.volume}, {"used_bytes", (*vol)->used_bytes()},
                                   {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()}});
  return b;
}

}  // namespace bp::agent
