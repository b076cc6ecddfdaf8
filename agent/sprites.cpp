// agent/sprites.cpp — sprite creation, restoration at boot, deletion.
#include "agent/sprites.hpp"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/log.hpp"
#include "common/sys.hpp"

namespace bp::agent {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string now_rfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string uuid4() {
  unsigned char b[16] = {};
  if (::getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
    auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    std::memcpy(b, &t, sizeof t);
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

// Host mode keeps each sprite's record in the object store too (sprites/NAME.json), so a
// runtime started on the same store with an empty state directory finds its sprites.
std::string record_key(const std::string& name) { return "sprites/" + name + ".json"; }

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 63 || n.front() == '-' || n.back() == '-') return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

}  // namespace

SpriteManager::SpriteManager(SpritesConfig cfg, Registry& registry) : cfg_(std::move(cfg)), registry_(registry) {}

SpriteManager::~SpriteManager() { stop_all(); }

std::string SpriteManager::dir_of(const std::string& name) const { return cfg_.state_dir + "/sprites/" + name; }

Status SpriteManager::mount_root(const std::string& name, const std::string& volume, bool create) {
  if (auto s = cfg_.disks->mount(volume, dir_of(name) + "/root", create, cfg_.base_image); !s) return s;
  std::lock_guard lk(mu_);
  volumes_[name] = volume;
  return {};
}

Status SpriteManager::unmount_root(const std::string& name) {
  std::string volume;
  {
    std::lock_guard lk(mu_);
    auto it = volumes_.find(name);
    if (it == volumes_.end()) return {};
    volume = it->second;
  }
  if (auto s = cfg_.disks->unmount(volume); !s) {
    Logger("agent.sprites").error("disk unmount failed", {{"sprite", name}, {"err", s.error().what}});
    return s;
  }
  std::lock_guard lk(mu_);
  volumes_.erase(name);
  return {};
}

Status SpriteManager::start_container(const std::string& name) {
  container::ContainerConfig cc;
  cc.name = name;
  cc.rootfs = dir_of(name) + "/root";
  cc.cgroup_parent = cfg_.cgroup_parent;
  cc.limits = cfg_.limits;
  cc.no_new_privs = cfg_.no_new_privs;
  if (auto r = read_file("/etc/resolv.conf"); r) cc.resolv_conf = *r;
  auto c = std::make_shared<container::Container>(cc);
  if (auto s = c->start(); !s) return s;
  std::lock_guard lk(mu_);
  containers_[name] = std::move(c);
  return {};
}

Status SpriteManager::load() {
  Logger log("agent.sprites");
  std::string dir = cfg_.state_dir + "/sprites";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("mkdir(" + dir + "): " + ec.message(), ec.value());
  // Sprites' roots hold their setuid files and device nodes: only root may get near.
  if (::chmod(dir.c_str(), 0700) != 0) return sys_error("chmod(" + dir + ")");
  if (!cfg_.disks) return make_error("no disks for sprites", EINVAL);
  if (!cfg_.single) fetch_records();
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename();
    auto text = read_file(e.path() / "sprite.json");
    if (!text) continue;  // a half-made sprite of a crashed create: destroy cleans it
    json j = json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("name", "") != name) {
      log.warn("unreadable sprite record; skipped", {{"path", e.path().string()}});
      continue;
    }
    SpriteRecord rec{j.value("id", ""), name, "cold", j.value("created_at", ""), j.value("updated_at", "")};
    if (j.contains("labels") && j["labels"].is_array())
      for (const auto& l : j["labels"])
        if (l.is_string()) rec.labels.push_back(l.get<std::string>());
    if (j.value("url_auth", "") == "public") rec.url_auth = "public";
    std::string volume = j.value("volume", "");
    Status s = volume.empty() ? Status(make_error("its record names no volume (made by an older ballpoint)", EINVAL))
                              : mount_root(name, volume, false);
    if (s) s = start_container(name);
    if (s) rec.status = "running";
    else log.error("sprite did not start", {{"sprite", name}, {"err", s.error().what}});
    registry_.add(rec);
  }
  return {};
}

Result<SpriteRecord> SpriteManager::create(const std::string& name) {
  if (!valid_name(name))
    return make_error("invalid sprite name '" + name +
                      "': 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'", EINVAL);
  if (cfg_.base_image.empty())
    return make_error("no base image is configured, so sprites cannot be created (set base_image)", EUNATCH);
  {
    std::lock_guard lk(mu_);
    if (registry_.get(name) || busy_.count(name)) return make_error("sprite '" + name + "' already exists", EEXIST);
    if (registry_.size() + busy_.size() >= cfg_.max_sprites)
      return make_error("this ballpoint hosts at most " + std::to_string(cfg_.max_sprites) + " sprites", EAGAIN);
    busy_.insert(name);
  }
  struct Unbusy {
    SpriteManager* m;
    std::string n;
    ~Unbusy() {
      std::lock_guard lk(m->mu_);
      m->busy_.erase(n);
    }
  } unbusy{this, name};

  std::string d = dir_of(name);
  std::error_code ec;
  // What a crashed create left behind goes, unless a disk is still mounted there (an
  // earlier attempt that could not unmount): remove_all would go through it.
  struct stat here {}, root {};
  if (::stat(d.c_str(), &here) == 0 && ::stat((d + "/root").c_str(), &root) == 0 && here.st_dev != root.st_dev)
    return make_error("sprite '" + name + "': a disk is still mounted at " + d + "/root from an earlier attempt", EBUSY);
  fs::remove_all(d, ec);
  fs::create_directories(d, ec);
  if (ec) return make_error("mkdir(" + d + "): " + ec.message(), ec.value());
  SpriteRecord rec{uuid4(), name, "running", now_rfc3339(), now_rfc3339()};
  // VM mode names the disk after the sprite, so a machine with an empty cache disk finds
  // the sprite's disk in the object store instead of making a new one.
  std::string volume = cfg_.single ? "sprite-" + name : "sprite-" + rec.id;
  auto fail = [&](Error e) -> Result<SpriteRecord> {
    {
      std::unique_lock lk(mu_);
      auto it = containers_.find(name);
      if (it != containers_.end()) {
        auto c = std::move(it->second);
        containers_.erase(it);
        lk.unlock();
        (void)c->stop(0);
      }
    }
    if (unmount_root(name)) {
      fs::remove_all(d, ec);
      // The new disk goes too; a VM's sprite disk is never deleted here (it may be the
      // user's, found in the store).
      if (!cfg_.single)
        if (auto s = cfg_.disks->remove(volume); !s)
          Logger("agent.sprites").warn("disk of a failed create not removed", {{"sprite", name}, {"err", s.error().what}});
    }
    return std::move(e).wrap("create sprite " + name);
  };
  if (auto s = mount_root(name, volume, true); !s) return fail(std::move(s.error()));
  if (auto s = start_container(name); !s) return fail(std::move(s.error()));
  // The record goes last: a sprite.json on disk means the sprite is whole.
  if (auto s = save_record(rec, volume); !s) return fail(std::move(s.error()));
  registry_.add(rec);
  Logger("agent.sprites").info("sprite created", {{"sprite", name}, {"id", rec.id}});
  return rec;
}

Status SpriteManager::destroy(const std::string& name) {
  auto lock = ops_lock(name);  // not in the middle of a restore
  std::lock_guard ops(*lock);
  std::shared_ptr<container::Container> c;
  {
    std::lock_guard lk(mu_);
    if (busy_.count(name)) return make_error("sprite '" + name + "' is being created or destroyed", EBUSY);
    if (!registry_.get(name)) return make_error("sprite '" + name + "' not found", ENOENT);
    busy_.insert(name);
    auto it = containers_.find(name);
    if (it != containers_.end()) {
      c = std::move(it->second);
      containers_.erase(it);
    }
  }
  Status s;
  if (c) s = c->stop(cfg_.stop_grace_ms);
  if (!s) {
    // Something of it may still run: keep everything, so nothing is deleted under it.
    std::lock_guard lk(mu_);
    containers_[name] = std::move(c);
    busy_.erase(name);
    return std::move(s.error()).wrap("destroy sprite " + name);
  }
  c.reset();
  std::string volume;
  {
    std::lock_guard lk(mu_);
    if (auto it = volumes_.find(name); it != volumes_.end()) volume = it->second;
  }
  if (auto u = unmount_root(name); !u) {
    std::lock_guard lk(mu_);
    busy_.erase(name);
    registry_.set_status(name, "cold");
    return std::move(u.error()).wrap("destroy sprite " + name);
  }
  std::error_code ec;
  // Remove the record first: a crash from here on leaves a directory load() ignores.
  if (!cfg_.single)
    if (auto r = cfg_.disks->store().remove({record_key(name)}); !r) {
      std::lock_guard lk(mu_);
      busy_.erase(name);
      return std::move(r).error().wrap("destroy sprite " + name + ": its record in the object store");
    }
  ::unlink((dir_of(name) + "/sprite.json").c_str());
  Status removed = volume.empty() ? Status{} : cfg_.disks->remove(volume);
  fs::remove_all(dir_of(name), ec);
  registry_.remove(name);
  {
    std::lock_guard lk(mu_);
    busy_.erase(name);
  }
  Logger("agent.sprites").info("sprite destroyed", {{"sprite", name}, {"volume", volume}});
  if (!removed) return std::move(removed.error()).wrap("destroy sprite " + name + ": its disk's objects");
  if (ec) return make_error("destroy sprite " + name + ": remove: " + ec.message(), ec.value());
  return {};
}

void SpriteManager::fetch_records() {
  Logger log("agent.sprites");
  auto& store = cfg_.disks->store();
  auto listed = store.list("sprites/");
  if (!listed) {
    log.error("cannot list the sprites in the object store", {{"err", listed.error().what}});
    return;
  }
  for (const auto& o : *listed) {
    std::string name = o.key.substr(8);
    if (name.size() <= 5 || !name.ends_with(".json")) continue;
    name.resize(name.size() - 5);
    if (!valid_name(name) || fs::exists(dir_of(name) + "/sprite.json")) continue;
    auto body = store.get(o.key);
    json j = body ? json::parse(*body, nullptr, false) : json();
    auto text = [&](const char* k) { return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; };
    if (text("name") != name || text("volume").empty()) {
      log.warn("unreadable sprite record in the object store; skipped", {{"key", o.key}});
      continue;
    }
    if (auto s = make_dirs(dir_of(name)); !s) continue;
    if (auto s = write_file_atomic(dir_of(name) + "/sprite.json", j.dump() + "\n", 0600); !s) continue;
    log.info("sprite found in the object store", {{"sprite", name}, {"volume", text("volume")}});
  }
}

Status SpriteManager::save_record(const SpriteRecord& rec, std::string volume) {
  if (volume.empty())
    if (auto old = read_file(dir_of(rec.name) + "/sprite.json"); old) {
      json o = json::parse(*old, nullptr, false);
      if (o.is_object()) volume = o.value("volume", "");
    }
  json j{{"id", rec.id},           {"name", rec.name},     {"created_at", rec.created_at},
         {"updated_at", rec.updated_at}, {"labels", rec.labels}, {"url_auth", rec.url_auth},
         {"volume", volume}};
  if (!cfg_.single)
    if (auto put = cfg_.disks->store().put(record_key(rec.name), j.dump() + "\n"); !put)
      return std::move(put).error().wrap("save the record of sprite " + rec.name);
  return write_file_atomic(dir_of(rec.name) + "/sprite.json", j.dump() + "\n", 0600);
}

Result<SpriteRecord> SpriteManager::update(const std::string& name,
                                           const std::optional<std::vector<std::string>>& labels,
                                           const std::optional<std::string>& url_auth) {
  std::lock_guard lk(update_mu_);
  auto rec = registry_.get(name);
  if (!rec) return make_error("sprite '" + name + "' not found", ENOENT);
  if (labels) rec->labels = *labels;
  if (url_auth) rec->url_auth = *url_auth;
  rec->updated_at = now_rfc3339();
  if (auto s = save_record(*rec); !s) return std::move(s.error()).wrap("update sprite " + name);
  registry_.replace(*rec);
  return *rec;
}

Status SpriteManager::restart(const std::string& name) {
  auto lock = ops_lock(name);
  std::lock_guard ops(*lock);
  auto c = container(name);
  if (!registry_.get(name)) return make_error("sprite '" + name + "' not found", ENOENT);
  Status s = c ? c->bounce(cfg_.stop_grace_ms) : start_container(name);
  registry_.set_status(name, s ? "running" : "cold");
  Logger("agent.sprites").info(s ? "sprite restarted" : "sprite restart failed",
                               {{"sprite", name}, {"err", err_text(s)}});
  if (!s) return std::move(s.error()).wrap("restart sprite " + name);
  return {};
}

Result<std::int64_t> SpriteManager::check(const std::string& name) {
  if (!registry_.get(name)) return make_error("sprite '" + name + "' not found", ENOENT);
  auto c = container(name);
  if (!c || !c->running()) return make_error("the sprite's container is not running", ESRCH);
  auto t0 = std::chrono::steady_clock::now();
  container::EnterSpec spec;
  spec.argv = {"true"};
  spec.env = container::default_env(false);
  // Reaching exec inside proves the namespaces, cgroup, seccomp and root all work; the
  // exit is reaped by PID 1 like any other.
  auto p = c->enter(spec);
  if (!p) return std::move(p.error());
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

void SpriteManager::stop_all() {
  std::map<std::string, std::shared_ptr<container::Container>> all;
  {
    std::lock_guard lk(mu_);
    all.swap(containers_);
  }
  for (auto& [name, c] : all) {
    if (auto s = c->stop(cfg_.stop_grace_ms); !s)
      Logger("agent.sprites").warn("container stop failed", {{"sprite", name}, {"err", s.error().what}});
    c.reset();
    registry_.set_status(name, "cold");
  }
  // Every disk, also those of sprites whose container never started.
  std::vector<std::string> mounted;
  {
    std::lock_guard lk(mu_);
    for (const auto& [name, v] : volumes_) mounted.push_back(name);
  }
  for (const auto& name : mounted) (void)unmount_root(name);  // it logs its failure
}

std::optional<std::uint64_t> SpriteManager::disk_used(const std::string& name) {
  std::string volume;
  {
    std::lock_guard lk(mu_);
    auto it = volumes_.find(name);
    if (it == volumes_.end()) return std::nullopt;
    volume = it->second;
  }
  return cfg_.disks->used_bytes(volume);
}

std::optional<std::string> SpriteManager::disk_health(const std::string& name) {
  auto volume = volume_of(name);
  if (!volume) return std::nullopt;
  return cfg_.disks->health(*volume);
}

Result<std::string> SpriteManager::volume_of(const std::string& name) {
  if (!registry_.get(name)) return make_error("sprite '" + name + "' not found", ENOENT);
  std::lock_guard lk(mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return make_error("sprite '" + name + "' has no disk mounted", ESRCH);
  return it->second;
}

std::shared_ptr<std::mutex> SpriteManager::ops_lock(const std::string& name) {
  std::lock_guard lk(mu_);
  auto& m = ops_[name];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

namespace {

// API records, with each checkpoint's ancestors (those still there), oldest first.
std::vector<CheckpointRecord> records_of(const std::vector<storage::Checkpoint>& cs) {
  std::map<std::string, std::string> source;
  for (const auto& c : cs) source[c.id] = c.source_id;
  std::vector<CheckpointRecord> out;
  for (const auto& c : cs) {
    CheckpointRecord r{c.id, c.create_time, c.comment, c.source_id, {}, c.is_auto};
    std::set<std::string> seen{c.id};
    for (std::string s = c.source_id; source.count(s) && seen.insert(s).second; s = source[s]) r.history.push_back(s);
    std::reverse(r.history.begin(), r.history.end());
    out.push_back(std::move(r));
  }
  return out;
}

CheckpointRecord record_of(const storage::Checkpoint& c) { return records_of({c}).front(); }

}  // namespace

Result<CheckpointRecord> SpriteManager::checkpoint(const std::string& name, const std::string& comment,
                                                   const Progress& progress) {
  auto lock = ops_lock(name);
  std::lock_guard ops(*lock);
  auto volume = volume_of(name);
  if (!volume) return std::move(volume).error();
  Logger log("agent.sprites");
  // The list before, for the new one's history: afterwards the map's lock may be busy
  // for a while with the new checkpoint's view (its map loads in the background).
  auto before = cfg_.disks->checkpoints(*volume);
  if (!before) return std::move(before).error();
  progress("Creating checkpoint...");
  // The processes stop where they are, so what the disk holds is one moment of them.
  auto c = container(name);
  bool frozen = false;
  if (c && c->running()) {
    auto f = c->freeze(true);
    frozen = static_cast<bool>(f);
    if (!f) log.warn("processes not frozen for the checkpoint: only the filesystem is", {{"sprite", name}, {"err", f.error().what}});
  }
  progress("Saving filesystem state...");
  auto t0 = std::chrono::steady_clock::now();
  auto cp = cfg_.disks->checkpoint(*volume, comment);
  if (frozen)
    if (auto t = c->freeze(false); !t) log.error("thaw after a checkpoint failed", {{"sprite", name}, {"err", t.error().what}});
  if (!cp) return std::move(cp).error();
  log.info("checkpoint created", {{"sprite", name}, {"id", cp->id},
                                  {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()}});
  before->push_back(*cp);
  return records_of(*before).back();
}

Result<CheckpointRecord> SpriteManager::restore(const std::string& name, const std::string& id,
                                                const Progress& progress) {
  auto lock = ops_lock(name);
  std::lock_guard ops(*lock);
  auto volume = volume_of(name);
  if (!volume) return std::move(volume).error();
  auto all = cfg_.disks->checkpoints(*volume);
  if (!all) return std::move(all).error();
  if (id == "Current" || std::none_of(all->begin(), all->end(), [&](const auto& c) { return c.id == id; }))
    return make_error("checkpoint " + id + " not found", ENOENT);
  Logger log("agent.sprites");
  progress("Stopping the sprite's processes...");
  std::shared_ptr<container::Container> c;
  {
    std::lock_guard lk(mu_);
    if (auto it = containers_.find(name); it != containers_.end()) {
      c = std::move(it->second);
      containers_.erase(it);
    }
  }
  if (c)
    if (auto s = c->stop(cfg_.stop_grace_ms); !s) {
      std::lock_guard lk(mu_);
      containers_[name] = std::move(c);
      return std::move(s).error().wrap("restore " + id + ": stop the container");
    }
  c.reset();
  registry_.set_status(name, "cold");
  progress("Restoring the disk to " + id + "...");
  auto keep = cfg_.disks->restore(*volume, id);
  progress("Starting the sprite...");
  // Never on the bare mount point: without its disk the sprite stays stopped.
  Status started = cfg_.disks->mounted(*volume)
                       ? start_container(name)
                       : Status(make_error("its disk is not mounted; the sprite stays stopped", EIO));
  registry_.set_status(name, started ? "running" : "cold");
  if (!keep) return std::move(keep).error();
  if (!started) return std::move(started).error().wrap("restored " + id + ", but the container did not start");
  log.info("checkpoint restored", {{"sprite", name}, {"id", id}, {"kept_as", keep->id}});
  return record_of(*keep);
}

Result<std::vector<CheckpointRecord>> SpriteManager::checkpoints(const std::string& name) {
  auto volume = volume_of(name);
  if (!volume) return std::move(volume).error();
  auto all = cfg_.disks->checkpoints(*volume);
  if (!all) return std::move(all).error();
  return records_of(*all);
}

Status SpriteManager::delete_checkpoint(const std::string& name, const std::string& id) {
  auto lock = ops_lock(name);
  std::lock_guard ops(*lock);
  auto volume = volume_of(name);
  if (!volume) return std::move(volume).error();
  if (id == "Current") return make_error("the current state is not a checkpoint that can be deleted", EBUSY);
  return cfg_.disks->delete_checkpoint(*volume, id);
}

std::shared_ptr<container::Container> SpriteManager::container(const std::string& name) {
  std::lock_guard lk(mu_);
  auto it = containers_.find(name);
  return it == containers_.end() ? nullptr : it->second;
}

}  // namespace bp::agent
