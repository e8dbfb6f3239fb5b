// Replication over real loopback TLS sessions between a Link and a Receiver,
// on real directory trees under /tmp.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "replicate/direct_reader.h"
#include "replicate/receiver.h"
#include "replicate/sender.h"
#include "replicate/stream.h"
#include "fstree/tree.h"
#include "replicate/watcher.h"
#include "core/fault_env.h"

namespace lifeboat::replicate {
namespace {

namespace fs = std::filesystem;

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

std::string Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

class ReplicateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("lifeboat-rep-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    src_ = base_ / "src";
    dst_ = base_ / "dst";
    fs::create_directories(src_);
    fs::create_directories(dst_);
    key_ = DeriveKey("0123456789abcdef0123456789abcdef", "data");
    StartReceiver(Env::Default());
  }
  void TearDown() override {
    StopReceiver();
    fs::remove_all(base_);
  }
  // A receiver for dst_ on a new port; it makes its changes through `env`
  // and lands completed files in batches of `batch`.
  void StartReceiver(Env& env, LandingBatch batch = {}) {
    auto l = Listener::Listen({"127.0.0.1", 0});
    ASSERT_TRUE(l.ok()) << l.error().ToString();
    listener_ = std::move(*l);
    Receiver::Config config{"data", dst_.string(), key_, [this](const Hello& h) -> Status {
                              if (h.region != allowed_) return PermissionDenied("not my source: " + h.region);
                              return Ok();
                            }};
    config.env = &env;
    config.batch = batch;
    receiver_ = std::make_unique<Receiver>(std::move(config));
    thread_ = std::thread([this] { receiver_->Run(*listener_); });
  }
  void StopReceiver() {
    if (!receiver_) return;
    listener_->Close();
    receiver_->Stop();
    thread_.join();
    receiver_.reset();
  }
  LinkConfig Config() {
    LinkConfig c;
    c.volume = "data";
    c.root = src_.string();
    c.region = "east";
    c.target = {"127.0.0.1", listener_->port()};
    c.key = key_;
    c.blocks = &blocks_;
    return c;
  }
  // A writing session right after another may find the receiver still ending
  // the last one ("busy": one writer at a time); the stream retries with
  // backoff, and so does this.
  Result<std::unique_ptr<Link>> OpenLink(uint8_t mode) {
    auto link = Link::Open(Config(), mode);
    for (int i = 0; i < 100 && !link.ok() && link.error().message().find("busy") != std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      link = Link::Open(Config(), mode);
    }
    return link;
  }
  std::vector<Difference> SyncAll(bool apply = true, bool hashes = false) {
    auto link = OpenLink(apply ? kModeSync : kModeReadOnly);
    EXPECT_TRUE(link.ok()) << link.error().ToString();
    if (!link.ok()) return {{"", "error", link.error().ToString()}};
    auto d = (*link)->Sync({}, {{"", true}}, {apply, hashes, nullptr, &links_});
    EXPECT_TRUE(d.ok()) << d.error().ToString();
    return d.ok() ? *d : std::vector<Difference>{{"", "error", d.error().ToString()}};
  }
  std::string Describe(const std::vector<Difference>& d) {
    std::string out;
    for (auto& x : d) out += x.kind + " " + Printable(x.path) + " (" + x.detail + ")\n";
    return out;
  }
  void ExpectSame() {
    auto d = SyncAll(false, true);
    EXPECT_TRUE(d.empty()) << Describe(d);
  }
  // No temporary name (a landing file or an in-place journal) is left anywhere in the target.
  void ExpectNoTempNames() {
    for (auto& e : fs::recursive_directory_iterator(dst_)) {
      EXPECT_FALSE(IsTempName(e.path().filename().string())) << e.path() << " left behind";
    }
  }
  // For each of the `total` calls of a clean sync's receiver: `reset` restores
  // the target and starts its receiver, which is killed at that call (then, in
  // a second round, whose disk is full from that call on); one sync runs and
  // its outcome goes to `session`; the receiver stops and `stopped` looks at
  // what it left, restarts it and checks that the next sync repairs all.
  template <typename Reset, typename OnSession, typename Stopped>
  void FailEachCall(FaultEnv& env, uint64_t total, Reset reset, OnSession session, Stopped stopped) {
    for (auto [fault, what] : {std::pair{FaultEnv::Fault::kCrash, "killed at "},
                               std::pair{FaultEnv::Fault::kDiskFull, "disk full from "}})
    for (uint64_t n = 1; n <= total; ++n) {
      reset();
      env.Arm(fault, n);
      {
        auto link = OpenLink(kModeSync);
        ASSERT_TRUE(link.ok()) << link.error().ToString();
        session(fault, (*link)->Sync({}, {{"", true}}, {true, false, nullptr, &links_}));
      }
      StopReceiver();
      SCOPED_TRACE(what + env.fired_at());
      stopped();
    }
  }

  fs::path base_, src_, dst_;
  PskKey key_;
  std::string allowed_ = "east";
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<Receiver> receiver_;
  std::thread thread_;
  std::map<uint64_t, std::set<std::string>> links_;
  BlockIndex blocks_{""};
};

// Overwrites bytes of a file where they are (the inode stays), as a database does.
void Overwrite(const fs::path& p, uint64_t off, const std::string& bytes) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(off)), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

ino_t InodeOf(const fs::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_ino;
}

// Scattered small writes and growth: the pattern of a database's data file.
void ChangeLikeADatabase(const fs::path& p, uint32_t seed, int writes, size_t grow) {
  // File times come from a coarse clock (a few ms): without a pause, a change
  // of the same size could keep the mtime and look unchanged (to rsync too).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::mt19937 rng(seed);
  uint64_t size = fs::file_size(p);
  for (int i = 0; i < writes; ++i) Overwrite(p, rng() % (size - 100), Random(100, rng()));
  if (grow > 0) Overwrite(p, size, Random(grow, seed));
}

TEST_F(ReplicateTest, EveryKindOfEntry) {
  fs::create_directories(src_ / "a/b/c");
  WriteFile(src_ / "a/b/c/file.txt", "hello");
  WriteFile(src_ / "empty", "");
  WriteFile(src_ / "big.bin", Random(3 << 20, 1));
  symlink("a/b/c/file.txt", (src_ / "link").c_str());
  symlink("/etc/passwd", (src_ / "abs-link").c_str());
  link((src_ / "a/b/c/file.txt").c_str(), (src_ / "hard").c_str());
  WriteFile(src_ / std::string("name\x01\xff with bytes"), "odd");
  chmod((src_ / "empty").c_str(), 04751);
  ASSERT_EQ(lchown((src_ / "a/b").c_str(), 1234, 5678), 0);
  ASSERT_EQ(lchown((src_ / "link").c_str(), 4321, 8765), 0);
  {  // sparse: 1 MiB hole, 4 KiB data, 1 MiB hole
    int fd = ::open((src_ / "sparse").c_str(), O_WRONLY | O_CREAT, 0644);
    std::string d(4096, 'x');
    ASSERT_EQ(pwrite(fd, d.data(), d.size(), 1 << 20), 4096);
    ASSERT_EQ(ftruncate(fd, 2 << 20 | 4096), 0);
    close(fd);
  }
  struct timespec ts[2] = {{0, UTIME_OMIT}, {1600000000, 123456789}};
  utimensat(AT_FDCWD, (src_ / "a").c_str(), ts, 0);

  auto first = SyncAll();
  EXPECT_FALSE(first.empty());
  ExpectSame();
  struct stat a, b;
  ASSERT_EQ(stat((dst_ / "hard").c_str(), &a), 0);
  ASSERT_EQ(stat((dst_ / "a/b/c/file.txt").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  ASSERT_EQ(stat((dst_ / "sparse").c_str(), &a), 0);
  EXPECT_LT(a.st_blocks * 512, 64 * 1024) << "holes must stay holes";
  ASSERT_EQ(lstat((dst_ / "link").c_str(), &a), 0);
  EXPECT_EQ(a.st_uid, 4321u);
  ASSERT_EQ(stat((dst_ / "a").c_str(), &a), 0);
  EXPECT_EQ(a.st_mtim.tv_nsec, 123456789);
  ASSERT_EQ(stat((dst_ / "empty").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 07777, 04751u);
  for (auto& e : fs::recursive_directory_iterator(dst_)) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".lifeboat~")) << "temporary file left: " << e.path();
  }

  // A second pass finds nothing to do.
  EXPECT_TRUE(SyncAll().empty());
}

TEST_F(ReplicateTest, ChangesDeletionsAndTypeChanges) {
  fs::create_directories(src_ / "d/e");
  WriteFile(src_ / "d/e/f", "1");
  WriteFile(src_ / "x", "x");
  WriteFile(src_ / "becomes-dir", "file");
  SyncAll();
  fs::remove_all(src_ / "d");
  fs::remove(src_ / "becomes-dir");
  fs::create_directories(src_ / "becomes-dir/inner");
  WriteFile(src_ / "x", "longer now");
  auto d = SyncAll();
  EXPECT_FALSE(d.empty());
  ExpectSame();
  EXPECT_FALSE(fs::exists(dst_ / "d"));
}

// More files than one group commit holds (1000): every batch lands, changes
// and deletions across batches too, and no temporary name is left.
TEST_F(ReplicateTest, ManyFilesCommitInTheBackgroundAndEveryOneLands) {
  for (int d = 0; d < 5; ++d) {
    fs::create_directories(src_ / ("d" + std::to_string(d)));
    for (int i = 0; i < 700; ++i) {
      WriteFile(src_ / ("d" + std::to_string(d)) / ("f" + std::to_string(i)), Random(100 + i, d * 1000 + i));
    }
  }
  SyncAll();
  ExpectSame();
  ASSERT_NE(receiver_, nullptr);
  // Files of every batch changed, some removed, one directory replaced by a file.
  for (int d = 0; d < 5; ++d) {
    for (int i = 0; i < 700; i += 97) {
      WriteFile(src_ / ("d" + std::to_string(d)) / ("f" + std::to_string(i)), "changed " + std::to_string(i));
    }
    fs::remove(src_ / ("d" + std::to_string(d)) / "f5");
  }
  fs::remove_all(src_ / "d4");
  WriteFile(src_ / "d4", "now a file");
  SyncAll();
  ExpectSame();
  // No temporary name is left at the target.
  for (const auto& e : fs::recursive_directory_iterator(dst_)) {
    EXPECT_EQ(e.path().filename().string().find(".lifeboat~"), std::string::npos) << e.path();
  }
}

TEST_F(ReplicateTest, DeltaSendsOnlyChangedChunks) {
  std::string data = Random(8 << 20, 7);
  WriteFile(src_ / "large", data);
  SyncAll();
  data.insert(4 << 20, "an insertion in the middle");
  data[1 << 20] ^= 1;
  WriteFile(src_ / "large", data);
  auto link = OpenLink(kModeSync);
  ASSERT_TRUE(link.ok());
  Progress p;
  auto d = (*link)->Sync({}, {{"", true}}, {true, false, &p, nullptr});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(p.files_done.load(), 1u);
  EXPECT_LT(p.bytes_literal.load(), 200u * 1024) << "only the chunks around two edits";
  EXPECT_LT((*link)->bytes_sent(), 300u * 1024);
  ExpectSame();
}

// A new version saved under a temporary name, sent before its rename (a pass
// caught it between close and rename: ext4 holds such a rename while it
// writes the new file back, and the benchmark sent 283 MB where rsync sent
// 25 MB): its delta is taken against the old version beside it, so only the
// changed chunks travel, and the rename that follows sends nothing.
TEST_F(ReplicateTest, ANewFileBesideItsOldVersionTravelsAsADeltaAgainstIt) {
  std::string old = Random(8 << 20, 31);
  fs::create_directories(src_ / "dir");
  WriteFile(src_ / "dir/data.img", old);
  WriteFile(src_ / "dir/other.img", Random(8 << 20, 32));
  SyncAll();
  std::string fresh = old;
  fresh.insert(4 << 20, "a kilobyte or so inserted in the middle");
  WriteFile(src_ / "dir/.data.img.tmp-1234", fresh);
  auto link = OpenLink(kModeSync);
  ASSERT_TRUE(link.ok());
  Progress p;
  auto d = (*link)->Sync({}, {{"dir/.data.img.tmp-1234", false}}, {true, false, &p, nullptr});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(p.files_done.load(), 1u);
  EXPECT_LT(p.bytes_literal.load(), 200u * 1024) << "the old version beside it was the basis";
  EXPECT_EQ(ReadAll(dst_ / "dir/.data.img.tmp-1234"), fresh);
  EXPECT_EQ(ReadAll(dst_ / "dir/data.img"), old) << "the basis itself is untouched";
  fs::rename(src_ / "dir/.data.img.tmp-1234", src_ / "dir/data.img");
  Progress p2;
  d = (*link)->Sync({{"dir/.data.img.tmp-1234", "dir/data.img"}}, {{"dir/data.img", false}}, {true, false, &p2, nullptr});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(p2.files_done.load(), 0u) << "the rename brought the new version";
  link->reset();
  ExpectSame();
}

TEST(PickBasis, TheOldVersionATemporaryNameOrABackupStandsFor) {
  std::vector<Sibling> dir = {{"data.img", 100}, {"data.img.bak", 90}, {"data", 5}, {"other", 100}, {"empty.img", 0}};
  EXPECT_EQ(PickBasis("data.img.tmp", 100, dir), "data.img") << "the longest matching name";
  EXPECT_EQ(PickBasis(".data.img.swp", 100, dir), "data.img");
  EXPECT_EQ(PickBasis("data.img.bak.new", 100, dir), "data.img.bak");
  EXPECT_EQ(PickBasis("data.im", 91, dir), "data.img.bak") << "then the nearest in size";
  EXPECT_EQ(PickBasis("data.im", 99, dir), "data.img");
  EXPECT_EQ(PickBasis(".#other", 50, dir), "other");
  EXPECT_EQ(PickBasis("new.bin", 100, dir), std::nullopt);
  EXPECT_EQ(PickBasis("empty.img.tmp", 10, dir), std::nullopt) << "an empty file offers nothing";
  EXPECT_EQ(PickBasis("data.img", 100, {{"data.img", 100}}), std::nullopt) << "never the file itself";
  EXPECT_EQ(PickBasis("...", 100, dir), std::nullopt);
  EXPECT_TRUE(BasisCandidate("f.new", "f"));
  EXPECT_TRUE(BasisCandidate("f", "f.bak"));
  EXPECT_FALSE(BasisCandidate("f1", "f2"));
  EXPECT_FALSE(BasisCandidate("#", "."));
}

// The --wait progress showed more bytes done than the total (a file grew
// between the scan and the send) and never reached it for sparse files.
TEST_F(ReplicateTest, ProgressEndsAtItsTotal) {
  {
    std::ofstream sparse(src_ / "sparse", std::ios::binary);
    sparse.seekp(64 << 20);
    sparse << "end";
  }
  WriteFile(src_ / "growing", Random(1 << 20, 5));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::ofstream grow(src_ / "growing", std::ios::binary | std::ios::app);
    std::string block(64 << 10, 'g');
    while (!stop.load()) {
      grow << block;
      grow.flush();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  auto link = Link::Open(Config(), kModeSync);
  ASSERT_TRUE(link.ok());
  Progress p;
  auto d = (*link)->Sync({}, {{"", true}}, {true, false, &p, nullptr});
  stop = true;
  writer.join();
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(p.files_done.load(), p.files_total.load());
  EXPECT_EQ(p.bytes_done.load(), p.bytes_total.load());
  EXPECT_GE(p.bytes_total.load(), (64u << 20) + (1u << 20));
}

// What a tree holds, path by path: "f:" and the content of a file, "l:" and
// the target of a symlink, "d" for a directory. Temporary names left out.
std::map<std::string, std::string> Contents(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    std::string rel = fs::relative(it->path(), root).string();
    if (IsTempName(it->path().filename().string())) {
      it.disable_recursion_pending();
      continue;
    }
    auto st = fs::symlink_status(it->path());
    if (fs::is_symlink(st)) {
      out[rel] = "l:" + fs::read_symlink(it->path()).string();
    } else if (fs::is_directory(st)) {
      out[rel] = "d";
    } else {
      std::ifstream in(it->path(), std::ios::binary);
      out[rel] = "f:" + std::string(std::istreambuf_iterator<char>(in), {});
    }
  }
  return out;
}

// The receiver killed (or its disk full) at each of its file calls in turn,
// in a sync that changes, creates, deletes, delta-updates and links: every
// path at the target is either as it was or as the source has it (never a
// partial file), a full disk reaches the source as "disk is full", and the
// next session finishes the job and leaves no temporary file.
TEST_F(ReplicateTest, KilledOrDiskFullAtAnyFileCallEveryFileIsOldOrNew) {
  WriteFile((src_ / "same").string(), "unchanged");
  WriteFile((src_ / "change").string(), "old content");
  WriteFile((src_ / "gone").string(), "deleted at the source");
  std::string big = Random(256 << 10, 1);
  WriteFile((src_ / "big").string(), big);
  fs::create_directories(src_ / "dir");
  WriteFile((src_ / "dir/x").string(), "x1");
  fs::create_symlink("same", src_ / "link");
  SyncAll();
  auto before = Contents(dst_);
  fs::path pristine = base_ / "pristine";
  fs::copy(dst_, pristine, fs::copy_options::recursive | fs::copy_options::copy_symlinks);

  WriteFile((src_ / "change").string(), "new content, longer than before");
  fs::remove(src_ / "gone");
  for (size_t off : {size_t{100}, size_t{100} << 10, (size_t{256} << 10) - 10}) big.replace(off, 5, "EDIT!");
  WriteFile((src_ / "big").string(), big);
  WriteFile((src_ / "dir/y").string(), "y new");
  std::string block = Random(512 << 10, 2);
  WriteFile((src_ / "dir/image").string(), block + block + block);  // new, sent as one block and REPEATs
  fs::create_directories(src_ / "newdir");
  WriteFile((src_ / "newdir/z").string(), "z new");
  fs::remove(src_ / "link");
  fs::create_symlink("change", src_ / "link");
  fs::create_hard_link(src_ / "same", src_ / "hard");
  auto after = Contents(src_);

  FaultEnv env;
  // Batches of two files: most land on the session's landing thread while
  // the next files are written, so its calls are killed too.
  auto reset_target = [&] {
    StopReceiver();
    fs::remove_all(dst_);
    fs::copy(pristine, dst_, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    StartReceiver(env, {2, 1 << 20});
  };
  reset_target();
  env.Disarm();
  SyncAll();
  uint64_t total = env.calls();
  ASSERT_GE(total, 20u);
  ASSERT_GE(receiver_->stats().commits.load(), 3u) << "the files must land in several batches";
  ASSERT_GT(receiver_->stats().bytes_copied.load(), 0u) << "the big file must go by delta (COPY of local chunks)";
  auto session = [&](FaultEnv::Fault fault, const Result<std::vector<Difference>>& d) {
    if (fault == FaultEnv::Fault::kCrash) {
      EXPECT_FALSE(d.ok()) << "a session whose receiver died at " << env.fired_at() << " succeeded";
    } else if (env.fired()) {
      ASSERT_FALSE(d.ok()) << "a session that could not write at " << env.fired_at() << " succeeded";
      // The target sends its ERROR while the source may still be sending;
      // it reads on until the source hangs up (Conn::Linger), so the ERROR
      // is never lost to a reset connection (seen once under ASan before).
      EXPECT_EQ(d.error().code(), Code::kResourceExhausted) << d.error().ToString();
      EXPECT_NE(d.error().message().find("disk is full"), std::string::npos) << d.error().ToString();
    }
  };
  FailEachCall(env, total, reset_target, session, [&] {
    auto now = Contents(dst_);
    std::set<std::string> paths;
    for (const auto* m : {&before, &after, &now}) {
      for (const auto& [p, _] : *m) paths.insert(p);
    }
    for (const auto& p : paths) {
      auto state = [&](const std::map<std::string, std::string>& m) {
        auto it = m.find(p);
        return it == m.end() ? std::string("absent") : it->second;
      };
      std::string s = state(now);
      EXPECT_TRUE(s == state(before) || s == state(after))
          << p << " is neither as it was (" << state(before).substr(0, 40) << ") nor as sent ("
          << state(after).substr(0, 40) << "): " << s.substr(0, 40) << " (" << s.size() << " bytes)";
    }
    env.Disarm();
    StartReceiver(env, {2, 1 << 20});
    SyncAll();
    ExpectSame();
    ExpectNoTempNames();
  });
}

TEST_F(ReplicateTest, RenamesAreAppliedAtTheTarget) {
  fs::create_directories(src_ / "dir");
  WriteFile(src_ / "dir/big", Random(2 << 20, 3));
  SyncAll();
  fs::rename(src_ / "dir", src_ / "moved");
  auto link = OpenLink(kModeSync);
  ASSERT_TRUE(link.ok());
  Progress p;
  auto d = (*link)->Sync({{"dir", "moved"}}, {{"dir", false}, {"moved", true}, {"", false}}, {true, false, &p, nullptr});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(p.files_done.load(), 0u) << "a renamed directory is not re-sent";
  ExpectSame();
}

TEST_F(ReplicateTest, RefusesOtherSourcesAndWrongKeys) {
  allowed_ = "west";
  auto link = Link::Open(Config(), kModeSync);
  ASSERT_FALSE(link.ok());
  EXPECT_NE(link.error().message().find("not my source"), std::string::npos) << link.error().ToString();
  allowed_ = "east";
  auto c = Config();
  c.key = DeriveKey("another key, not the receiver's", "data");
  link = Link::Open(c, kModeSync);
  ASSERT_FALSE(link.ok());
  EXPECT_NE(link.error().message().find("TLS handshake"), std::string::npos) << link.error().ToString();
}

TEST_F(ReplicateTest, OneWriterAtATime) {
  auto a = Link::Open(Config(), kModeSync);
  ASSERT_TRUE(a.ok());
  auto b = Link::Open(Config(), kModeSync);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("busy"), std::string::npos) << b.error().ToString();
  auto ro = Link::Open(Config(), kModeReadOnly);
  EXPECT_TRUE(ro.ok());
}

// A TCP socket connected to 127.0.0.1:port from `from` (any 127/8 address).
int ConnectFrom(const char* from, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, from, &a.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool WaitFor(const std::function<bool()>& cond) {
  for (int i = 0; i < 1000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

// Every connection to the replication port leaked a thread's stack: 3,000
// connect-and-close connections took the agent from 176 MB to 9 GB.
TEST_F(ReplicateTest, ConnectAndCloseLeaksNoThread) {
  auto flood = [&](int n) {
    for (int i = 0; i < n; ++i) {
      int fd = ConnectFrom("127.0.0.1", listener_->port());
      ASSERT_GE(fd, 0);
      ::close(fd);
    }
    ASSERT_TRUE(WaitFor([&] { return receiver_->active_connections() == 0; }));
    // A stack is freed when its thread is joined, at the latest at the next accept.
    ::close(ConnectFrom("127.0.0.1", listener_->port()));
    ASSERT_TRUE(WaitFor([&] { return receiver_->active_connections() == 0; }));
  };
  flood(600);
  // Every ended connection's thread is joined at the next accept: after a few
  // more connections (the accept loop may still be draining the flood),
  // at most the newest thread is left unjoined. A leak keeps all 600.
  bool joined = WaitFor([&] {
    ::close(ConnectFrom("127.0.0.1", listener_->port()));
    return receiver_->unjoined_threads() <= 1;
  });
  EXPECT_TRUE(joined) << receiver_->unjoined_threads() << " threads unjoined; each keeps an 8 MiB stack";
  // The probes above may still hold this address's unauthenticated slots
  // (max 4), and a source beyond them is refused by design: let them end.
  // Probes still in the listen backlog are accepted only after the count
  // reads 0 (seen under ASan): wait until a link is admitted again.
  ASSERT_TRUE(WaitFor([&] { return receiver_->active_connections() == 0; }));
  ASSERT_TRUE(WaitFor([&] { return Link::Open(Config(), kModeReadOnly).ok(); }));
  WriteFile(src_ / "f", "after the flood");
  SyncAll();
  ExpectSame();
}

// Connections that never finish a handshake, from one address, hold at most a
// few threads; a source at another address is still served at once.
TEST_F(ReplicateTest, IdleConnectionsWithoutTheKeyDoNotLockOutTheSource) {
  std::vector<int> idle;
  for (int i = 0; i < 40; ++i) {
    int fd = ConnectFrom("127.0.0.2", listener_->port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  ASSERT_TRUE(WaitFor([&] { return receiver_->stats().connections_refused.load() >= 36; }));
  EXPECT_LE(receiver_->active_connections(), 4u);
  WriteFile(src_ / "f", "served while 40 idle connections wait");
  SyncAll();
  ExpectSame();
  for (int fd : idle) ::close(fd);
}

// One EMFILE from accept ended the accept loop for good: replication stayed
// dead until the target restarted.
TEST_F(ReplicateTest, AcceptSurvivesRunningOutOfDescriptors) {
#ifdef LIFEBOAT_SANITIZE
  // UBSan checks the type of each virtual call the first time it meets it
  // and reads the vtable through a pipe; with no descriptor free that read
  // fails and it reports a bad vptr (spdlog's logger, fmt's buffer, a
  // std::thread state: a new one at each attempt to warm its cache). The
  // test runs in the regular build, where nothing stands between it and
  // accept().
  GTEST_SKIP() << "needs every descriptor taken, which UBSan's vptr check cannot run with";
#endif
  std::vector<int> clients;  // from another address than the source's, bound before descriptors run out
  for (int i = 0; i < 8; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.3", &a.sin_addr);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    clients.push_back(fd);
  }
  struct rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  int highest = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) highest = std::max(highest, std::stoi(e.path().filename()));
  struct rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(highest + 1);  // no descriptor can be opened now
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_port = htons(listener_->port());
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  std::vector<int> fillers;  // take every free number below the limit
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
  for (int fd : clients) ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  bool saw_errors = WaitFor([&] { return receiver_->stats().accept_errors.load() >= 2; });
  for (int fd : fillers) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_TRUE(saw_errors);
  for (int fd : clients) ::close(fd);
  WriteFile(src_ / "f", "after running out of descriptors");
  SyncAll();
  ExpectSame();
}

// A .part of a file deleted at the source while the target was down stayed
// forever: a receiver removes what a killed one left when it starts.
TEST(ReceiverStart, RemovesTemporaryFilesAKilledReceiverLeft) {
  fs::path dir = fs::temp_directory_path() / ("lifeboat-rep-start-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "sub");
  WriteFile((dir / "sub/.lifeboat~gone.part").string(), "partial");
  WriteFile((dir / ".lifeboat~x.prev").string(), "previous");
  WriteFile((dir / "sub/kept").string(), "data");
  auto l = Listener::Listen({"127.0.0.1", 0});
  ASSERT_TRUE(l.ok());
  Receiver r(Receiver::Config{"data", dir.string(), DeriveKey("0123456789abcdef", "data"), nullptr});
  std::thread t([&] { r.Run(**l); });
  bool cleaned = WaitFor([&] { return r.stats().leftovers_removed.load() == 2; });
  (*l)->Close();
  r.Stop();
  t.join();
  EXPECT_TRUE(cleaned);
  EXPECT_FALSE(fs::exists(dir / "sub/.lifeboat~gone.part"));
  EXPECT_TRUE(fs::exists(dir / "sub/kept"));
  fs::remove_all(dir);
}

// Two codes inserted into the enum shifted the numbers ERROR frames carried:
// an older target's "disk is full" (9, ResourceExhausted) read as
// Unauthenticated. The numbers are the protocol's, fixed.
TEST(Wire, ErrorCodesKeepTheirProtocolNumbers) {
  EXPECT_EQ(WireCode(Code::kInvalidArgument), 1u);
  EXPECT_EQ(WireCode(Code::kPermissionDenied), 8u);
  EXPECT_EQ(WireCode(Code::kResourceExhausted), 9u);
  EXPECT_EQ(WireCode(Code::kDataLoss), 10u);
  EXPECT_EQ(WireCode(Code::kInternal), 11u);
  EXPECT_EQ(WireCode(Code::kUnauthenticated), 12u);
  EXPECT_EQ(WireCode(Code::kCancelled), 13u);
  auto frame = [](uint32_t code) {
    std::string bytes = Writer(Type::kError).U32(code).Str("disk is full").Finish();
    return Frame{static_cast<uint8_t>(Type::kError), bytes.substr(5)};
  };
  Error e = DecodeError(frame(9));
  EXPECT_EQ(e.code(), Code::kResourceExhausted);
  EXPECT_EQ(e.message(), "disk is full");
  EXPECT_EQ(DecodeError(frame(13)).code(), Code::kCancelled);
  EXPECT_EQ(DecodeError(frame(14)).code(), Code::kInvalidArgument);  // malformed
  EXPECT_EQ(DecodeError(frame(0)).code(), Code::kInvalidArgument);
  for (Code c : {Code::kNotFound, Code::kAborted, Code::kUnauthenticated}) {
    std::string bytes = EncodeError(Error(c, "x"));
    EXPECT_EQ(DecodeError(Frame{static_cast<uint8_t>(Type::kError), bytes.substr(5)}).code(), c);
  }
}

// verify printed an empty path for a difference at the volume's root.
TEST(Printable, NamesTheRootAndEscapesBytes) {
  EXPECT_EQ(Printable(""), ".");
  EXPECT_EQ(Printable("a/b"), "a/b");
  EXPECT_EQ(Printable("a\nb\\"), "a\\x0ab\\x5c");
}

// Frames straight into a Session: hostile paths never leave the root.
TEST(Session, RefusesPathsEscapingTheVolume) {
  auto base = fs::temp_directory_path() / ("lifeboat-session-" + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base / "root");
  fs::create_directories(base / "outside");
  symlink((base / "outside").c_str(), (base / "root/escape").c_str());
  auto s = Session::Open((base / "root").string(), [](std::string) { return Ok(); }, nullptr, false,
                          Env::Default());
  ASSERT_TRUE(s.ok());
  auto frame = [](std::string f) { return Frame{static_cast<uint8_t>(f[4]), f.substr(5)}; };
  Meta m{0644, 0, 0, 0, 0};
  for (std::string p : std::vector<std::string>{"../x", "/etc/x", "a/../../x", "", ".lifeboat~x", "a//b",
                                                std::string("a\0b", 3)}) {
    auto st = (*s)->Handle(frame(Writer(Type::kFileBegin).Str(p).Put(m).U64(1).Finish()));
    EXPECT_FALSE(st.ok()) << Printable(p);
  }
  auto st = (*s)->Handle(frame(Writer(Type::kFileBegin).Str("escape/x").Put(m).U64(1).Finish()));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("symlink"), std::string::npos) << st.error().ToString();
  st = (*s)->Handle(frame(Writer(Type::kSymlink).Str("escape/l").Str("/etc").Put(m).Finish()));
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(fs::is_empty(base / "outside"));
  EXPECT_FALSE((*s)->Handle(frame(Writer(Type::kDelete).Str("escape/y").Finish())).ok() &&
               fs::exists(base / "outside/y"));
  // Writes past the announced size, truncated frames, unknown types.
  ASSERT_TRUE((*s)->Handle(frame(Writer(Type::kFileBegin).Str("f").Put(m).U64(2).Finish())).ok());
  EXPECT_FALSE((*s)->Handle(frame(Writer(Type::kData).U64(1).Str("xy").Finish())).ok());
  EXPECT_FALSE((*s)->Handle(Frame{static_cast<uint8_t>(Type::kData), "\x00\x01"}).ok());
  EXPECT_FALSE((*s)->Handle(Frame{99, ""}).ok());
  // REPEAT only inside a file, from a range that ends before the one it writes, within the size.
  ASSERT_TRUE((*s)->Handle(frame(Writer(Type::kFileEnd).Finish())).ok());
  EXPECT_FALSE((*s)->Handle(frame(Writer(Type::kRepeat).U64(8).U64(0).U64(4).Finish())).ok());
  ASSERT_TRUE((*s)->Handle(frame(Writer(Type::kFileBegin).Str("g").Put(m).U64(16).Finish())).ok());
  ASSERT_TRUE((*s)->Handle(frame(Writer(Type::kData).U64(0).Str("abcd").Finish())).ok());
  EXPECT_FALSE((*s)->Handle(frame(Writer(Type::kRepeat).U64(2).U64(0).U64(4).Finish())).ok()) << "overlaps";
  EXPECT_FALSE((*s)->Handle(frame(Writer(Type::kRepeat).U64(0).U64(4).U64(4).Finish())).ok()) << "after";
  EXPECT_FALSE((*s)->Handle(frame(Writer(Type::kRepeat).U64(14).U64(0).U64(4).Finish())).ok()) << "past the size";
  EXPECT_FALSE((*s)->Handle(frame(Writer(Type::kRepeat).U64(4).U64(0).U64(0).Finish())).ok()) << "empty";
  ASSERT_TRUE((*s)->Handle(frame(Writer(Type::kRepeat).U64(4).U64(0).U64(4).Finish())).ok());
  ASSERT_TRUE((*s)->Handle(frame(Writer(Type::kRepeat).U64(8).U64(0).U64(8).Finish())).ok());
  ASSERT_TRUE((*s)->Handle(frame(Writer(Type::kFileEnd).Finish())).ok());
  ASSERT_TRUE((*s)->Handle(frame(Writer(Type::kCommit).U64(1).Finish())).ok());
  EXPECT_EQ(ReadAll(base / "root/g"), "abcdabcdabcdabcd");
  fs::remove_all(base);
}

// A tree for the tests of opening beneath a root: `base`/root, the root,
// beside `base`/outside, a directory that no path beneath the root reaches.
// `dirs` are made below the root; the whole base is removed at the end.
struct BeneathTree {
  explicit BeneathTree(const std::string& name, std::initializer_list<const char*> dirs)
      : base(fs::temp_directory_path() / ("lifeboat-" + name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(base);
    fs::create_directories(base / "outside");
    fs::create_directories(base / "root");
    for (const char* d : dirs) fs::create_directories(base / "root" / d);
    root = UniqueFd(::open((base / "root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
  ~BeneathTree() { fs::remove_all(base); }
  BeneathTree(const BeneathTree&) = delete;
  BeneathTree& operator=(const BeneathTree&) = delete;

  fs::path base;
  UniqueFd root;
};

// The one-call open beneath a root refuses what the component walk refuses:
// a symlink anywhere (the last component too), `..` out of the root, an
// absolute path. OpenDirBeneath then walks and names the cause.
TEST(TryOpenBeneath, RefusesSymlinksAndEveryWayOutOfTheRoot) {
  BeneathTree tree("beneath", {"a/b"});
  const fs::path& base = tree.base;
  const UniqueFd& root = tree.root;
  std::ofstream(base / "root/a/b/f") << "x";
  fs::create_symlink(base / "outside", base / "root/a/out");
  fs::create_symlink("b", base / "root/a/in");
  fs::create_symlink("f", base / "root/a/b/lf");
  ASSERT_TRUE(root.valid());
  UniqueFd dir(fstree::TryOpenBeneath(root.get(), "a/b", O_RDONLY | O_DIRECTORY));
  EXPECT_TRUE(dir.valid());
  UniqueFd file(fstree::TryOpenBeneath(root.get(), "a/b/f", O_RDONLY));
  EXPECT_TRUE(file.valid());
  for (const char* p : {"a/out", "a/in", "a/in/f", "a/b/lf", "..", "a/../../outside", "/etc", ""}) {
    UniqueFd fd(fstree::TryOpenBeneath(root.get(), p, O_RDONLY));
    EXPECT_FALSE(fd.valid()) << p;
  }
  auto walked = fstree::OpenDirBeneath(root.get(), "a/in");
  ASSERT_FALSE(walked.ok());
  EXPECT_NE(walked.error().message().find("escapes through a symlink"), std::string::npos) << walked.error().ToString();
  EXPECT_TRUE(fstree::OpenDirBeneath(root.get(), "a/b").ok());
}

// WalkDirs finds the directories Walk finds, in the same order, from the
// root or from a directory below it, and none from a file, a symlink, a
// missing path or a path through a symlink.
TEST(WalkDirs, FindsWhatWalkFindsWithoutStatingFiles) {
  std::string temp_dir = "e/" + std::string(kTempPrefix) + "x";
  BeneathTree tree("walkdirs", {"a/b/c", "a/z", temp_dir.c_str()});
  const fs::path& base = tree.base;
  const UniqueFd& root = tree.root;
  fs::create_directories(base / "outside/d");
  std::ofstream(base / "root/a/f") << "x";
  std::ofstream(base / "root/e/g") << "x";
  fs::create_symlink(base / "outside", base / "root/a/out");
  ASSERT_TRUE(root.valid());
  auto dirs_of = [&](const std::string& rel) {
    std::vector<std::string> dirs;
    (void)fstree::WalkDirs(root.get(), rel, [&](const std::string& p) {
      dirs.push_back(p);
      return Ok();
    });
    return dirs;
  };
  auto walked = [&](const std::string& rel) {
    std::vector<std::string> dirs;
    EXPECT_TRUE(Walk(root.get(), rel, true, false, [&](Entry& e) {
                  if (e.type == EntryType::kDir) dirs.push_back(e.path);
                  return Ok();
                }).ok());
    return dirs;
  };
  EXPECT_EQ(dirs_of(""), (std::vector<std::string>{"", "a", "a/b", "a/b/c", "a/z", "e"}));
  EXPECT_EQ(dirs_of(""), walked(""));
  EXPECT_EQ(dirs_of("a"), (std::vector<std::string>{"a", "a/b", "a/b/c", "a/z"}));
  EXPECT_EQ(dirs_of("a"), walked("a"));
  for (const char* p : {"a/f", "a/out", "missing", "a/out/d"}) EXPECT_TRUE(dirs_of(p).empty()) << p;
}

// WalkParallel finds what Walk finds (the same entries, stats and hashes),
// each directory before anything below it; from the root, a directory, a
// file, a missing path and a path through a symlink alike. Temporary names
// are skipped and a symlink to a directory is not followed. A wide tree does
// not hold a descriptor per waiting directory: it walks within a few more
// than were open. An error from fn stops the walk and is what it returns.
TEST(WalkParallel, FindsWhatWalkFindsFromSeveralThreads) {
  std::string temp_dir = "e/" + std::string(kTempPrefix) + "x";
  BeneathTree tree("walkparallel", {"a/b/c", "a/z", temp_dir.c_str()});
  const fs::path& base = tree.base;
  const UniqueFd& root = tree.root;
  fs::create_directories(base / "outside/d");
  fs::create_symlink(base / "outside", base / "root/a/out");
  std::ofstream(base / "root/a/f") << "x";
  for (int i = 0; i < 300; ++i) {
    fs::path d = base / "root/w" / ("d" + std::to_string(i)) / "in";
    fs::create_directories(d);
    std::ofstream(d / "f") << i;
    std::ofstream(d.parent_path() / ("g" + std::to_string(i % 7))) << std::string(static_cast<size_t>(i), 'y');
  }
  ASSERT_TRUE(root.valid());
  using Found = std::map<std::string, std::string>;  // path: what Walk says of it
  auto describe = [](const Entry& e) {
    return std::string(Name(e.type)) + " " + std::to_string(e.size) + " " + std::to_string(e.ino) + " " +
           std::to_string(e.meta.mode) + " " + e.link + (e.has_hash ? " " + chunk::Hex(e.hash) : "");
  };
  auto sequential = [&](const std::string& rel, bool hashes) {
    Found found;
    Status st = Walk(root.get(), rel, true, hashes, [&](Entry& e) {
      found[e.path] = describe(e);
      return Ok();
    });
    if (!st.ok()) found["error"] = st.error().ToString();
    return found;
  };
  auto parallel = [&](const std::string& rel, bool hashes) {
    Found found;
    Status st = fstree::WalkParallel(root.get(), rel, true, hashes, 4, [&](Entry& e) {
      EXPECT_TRUE(e.path == rel || found.count(ParentOf(e.path))) << e.path << " came before its directory";
      EXPECT_TRUE(found.emplace(e.path, describe(e)).second) << e.path << " twice";
      return Ok();
    });
    if (!st.ok()) found["error"] = st.error().ToString();
    return found;
  };
  Found all = parallel("", false);
  EXPECT_EQ(all.size(), 1 + 5 + 2 + 1 + 300 * 4);  // root; a, a/b, a/b/c, a/z, e; a/f, a/out; w; w/dN...
  EXPECT_EQ(all.count(temp_dir), 0u);
  EXPECT_EQ(all.count("a/out/d"), 0u);
  EXPECT_EQ(all, sequential("", false));
  EXPECT_EQ(parallel("", true), sequential("", true));
  Found below_a = parallel("a", false);
  EXPECT_EQ(below_a, sequential("a", false));
  EXPECT_EQ(below_a.size(), 6u);
  for (const char* p : {"a/f", "a/out", "missing", "a/out/d"}) EXPECT_EQ(parallel(p, true), sequential(p, true)) << p;

  // Descriptors: room for a few dozen more than are open now.
  size_t open_now = 0;
  for ([[maybe_unused]] const auto& fd : fs::directory_iterator("/proc/self/fd")) ++open_now;
  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  struct rlimit tight = saved;
  tight.rlim_cur = open_now + 32;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  size_t n = 0;
  Status wide = fstree::WalkParallel(root.get(), "", true, false, 4, [&](Entry&) {
    ++n;
    return Ok();
  });
  ::setrlimit(RLIMIT_NOFILE, &saved);
  EXPECT_TRUE(wide.ok()) << wide.error().ToString();
  EXPECT_EQ(n, all.size());

  n = 0;
  Status stopped = fstree::WalkParallel(root.get(), "", true, false, 4, [&](Entry&) -> Status {
    return ++n == 100 ? Aborted("enough") : Ok();
  });
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().message(), "enough");
  EXPECT_EQ(n, 100u);
}

}  // namespace
}  // namespace lifeboat::replicate

namespace lifeboat::replicate {
namespace {

// The watcher turns inotify events into roots and renames; new directories
// are watched as they appear.
TEST(Watcher, ReportsChangesRenamesAndNewDirectories) {
  namespace fs = std::filesystem;
  auto root = fs::temp_directory_path() / ("lifeboat-watch-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "a");
  auto w = Watcher::Start(root.string());
  ASSERT_TRUE(w.ok()) << w.error().ToString();
  auto first = (*w)->Take(std::chrono::milliseconds(100), std::chrono::milliseconds(0));
  EXPECT_TRUE(first.full) << "the first batch asks for a full comparison";

  fs::create_directories(root / "new/deep");
  std::ofstream(root / "new/deep/f") << "x";  // may be created before the watch on new/deep exists
  auto c = (*w)->Take(std::chrono::milliseconds(2000), std::chrono::milliseconds(50));
  bool recursive_new = false;
  for (auto& r : c.roots) recursive_new |= r.path == "new" && r.recursive;
  EXPECT_TRUE(recursive_new) << "a new directory is compared as a whole subtree";

  // Its subdirectory is watched now: a write there is reported by name.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::ofstream(root / "new/deep/g") << "y";
  c = (*w)->Take(std::chrono::milliseconds(2000), std::chrono::milliseconds(50));
  bool saw_g = false;
  for (auto& r : c.roots) saw_g |= r.path == "new/deep/g";
  EXPECT_TRUE(saw_g);

  fs::rename(root / "a", root / "b");
  c = (*w)->Take(std::chrono::milliseconds(2000), std::chrono::milliseconds(50));
  ASSERT_EQ(c.renames.size(), 1u);
  EXPECT_EQ(c.renames[0], (std::pair<std::string, std::string>{"a", "b"}));
  std::ofstream(root / "b/inside") << "z";  // the moved directory keeps its watch, under its new name
  c = (*w)->Take(std::chrono::milliseconds(2000), std::chrono::milliseconds(50));
  bool saw_inside = false;
  for (auto& r : c.roots) saw_inside |= r.path == "b/inside";
  EXPECT_TRUE(saw_inside);
  EXPECT_FALSE((*w)->oldest().has_value());
  (*w)->Stop();
  fs::remove_all(root);
}

// A file closed after writing still counts as being written for the window
// asked (its rename over the old version may come a moment later).
TEST(Watcher, RemembersARecentCloseForTheWindowAsked) {
  namespace fs = std::filesystem;
  auto root = fs::temp_directory_path() / ("lifeboat-watch-close-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  auto w = Watcher::Start(root.string());
  ASSERT_TRUE(w.ok()) << w.error().ToString();
  (void)(*w)->Take(std::chrono::milliseconds(100), std::chrono::milliseconds(0));
  {
    std::ofstream f(root / "f.tmp");
    f << "bytes";
    f.flush();
    ASSERT_TRUE(WaitFor([&] { return (*w)->BeingWritten("f.tmp"); })) << "open and written";
  }
  ASSERT_TRUE(WaitFor([&] { return !(*w)->BeingWritten("f.tmp"); })) << "closed";
  EXPECT_TRUE((*w)->BeingWritten("f.tmp", std::chrono::seconds(60))) << "closed moments ago";
  EXPECT_FALSE((*w)->BeingWritten("f.tmp", std::chrono::milliseconds(0)));
  fs::rename(root / "f.tmp", root / "f");
  ASSERT_TRUE(WaitFor([&] { return !(*w)->BeingWritten("f.tmp", std::chrono::seconds(60)); })) << "renamed away";
  (*w)->Stop();
  fs::remove_all(root);
}

}  // namespace
}  // namespace lifeboat::replicate

namespace lifeboat::replicate {
namespace {

// The content digest depends only on bytes: holes and written zeros hash
// alike, and a huge sparse file hashes by its data alone.
TEST(HashFile, HolesAndZerosAlikeHugeSparseFilesCheap) {
  char a_path[] = "/tmp/lifeboat-hash-a-XXXXXX", b_path[] = "/tmp/lifeboat-hash-b-XXXXXX";
  int a = mkstemp(a_path), b = mkstemp(b_path);
  unlink(a_path);
  unlink(b_path);
  std::string zeros(3 << 20, '\0');
  ASSERT_EQ(pwrite(a, zeros.data(), zeros.size(), 0), static_cast<ssize_t>(zeros.size()));
  ASSERT_EQ(pwrite(a, "x", 1, zeros.size()), 1);
  ASSERT_EQ(pwrite(b, "x", 1, zeros.size()), 1);  // the same bytes, with a hole
  auto ha = HashFile(a, zeros.size() + 1), hb = HashFile(b, zeros.size() + 1);
  ASSERT_TRUE(ha.ok() && hb.ok());
  EXPECT_EQ(*ha, *hb);
  ASSERT_EQ(pwrite(b, "y", 1, 5), 1);
  EXPECT_NE(*HashFile(b, zeros.size() + 1), *ha);
  // 1 TiB, two bytes of data (found by the fuzzer: verify once hashed every zero).
  ASSERT_EQ(ftruncate(b, off_t{1} << 40), 0);
  auto huge = HashFile(b, uint64_t{1} << 40);
  EXPECT_TRUE(huge.ok());
  close(a);
  close(b);
}

TEST_F(ReplicateTest, ALargeFileChangedInPlaceTravelsAsItsChangedBlocksAndStaysOneInode) {
  fs::path db = src_ / "db";
  WriteFile(db.string(), Random(kPatchMinSize + (1 << 20), 7));
  SyncAll();
  EXPECT_EQ(receiver_->stats().patches.load(), 0u) << "a new file is sent whole";
  ino_t ino = InodeOf(dst_ / "db");

  ChangeLikeADatabase(db, 3, 20, 5000);
  uint64_t before = receiver_->stats().bytes_written.load();
  SyncAll();
  EXPECT_EQ(receiver_->stats().patches.load(), 1u);
  // Each 100-byte write touches at most two blocks; the growth at most three.
  EXPECT_LE(receiver_->stats().bytes_written.load() - before, (20 * 2 + 3) * uint64_t{kBlockSize});
  EXPECT_EQ(receiver_->stats().bytes_copied.load(), 0u) << "nothing was re-read at the target";
  EXPECT_EQ(InodeOf(dst_ / "db"), ino) << "the file was rebuilt, not updated in place";
  ExpectSame();

  // Shrinking, and a change in the last, short block.
  ASSERT_EQ(::truncate(db.c_str(), static_cast<off_t>(kPatchMinSize + 12345)), 0);
  Overwrite(db, kPatchMinSize + 12300, "tail");
  SyncAll();
  EXPECT_EQ(receiver_->stats().patches.load(), 2u);
  EXPECT_EQ(InodeOf(dst_ / "db"), ino);
  ExpectSame();
  ExpectNoTempNames();
}

// Several in-place updates in one pass, in several directories, between
// small files that change too: each large file keeps its inode and ends at
// its new version, pass after pass, and no journal is left behind.
TEST_F(ReplicateTest, SeveralInPlaceUpdatesInOnePassEachEndAtTheirNewVersion) {
  std::vector<fs::path> large;
  for (size_t i = 0; i < 7; ++i) {
    fs::path dir = src_ / ("d" + std::to_string(i % 3));
    fs::create_directories(dir);
    large.push_back(dir / ("db" + std::to_string(i)));
    WriteFile(large.back().string(), Random(kPatchMinSize + 4096 * i, 300 + static_cast<uint32_t>(i)));
    WriteFile((dir / ("small" + std::to_string(i))).string(), "small " + std::to_string(i));
  }
  SyncAll();
  std::vector<fs::path> at_target;
  std::vector<ino_t> inodes;
  for (const auto& p : large) {
    at_target.push_back(dst_ / fs::relative(p, src_));
    inodes.push_back(InodeOf(at_target.back()));
  }
  for (size_t round = 1; round <= 2; ++round) {
    for (size_t i = 0; i < large.size(); ++i) {
      ChangeLikeADatabase(large[i], static_cast<uint32_t>(round * 100 + i), 10, round == 1 ? 0 : 3000);
      WriteFile((large[i].parent_path() / ("small" + std::to_string(i))).string(), "changed " + std::to_string(round));
    }
    SyncAll();
    EXPECT_EQ(receiver_->stats().patches.load(), round * large.size());
    ExpectSame();
  }
  for (size_t i = 0; i < large.size(); ++i) {
    EXPECT_EQ(InodeOf(at_target[i]), inodes[i]) << large[i] << " was rebuilt";
  }
  ExpectNoTempNames();
}

// An insertion shifts all that follows it: early in a large file, a sample
// of blocks shows that far more than a quarter differs but is found shifted
// by the change of size, and the file is rebuilt from the target's blocks
// (nothing cut or hashed there but the blocks copied); late in it, only the
// tail differs and an in-place patch is cheaper. Two insertions of other
// sizes far apart shift the middle by neither amount: a delta.
TEST_F(ReplicateTest, ALargeFileWithAnInsertionTravelsAsMovedBlocksOrAPatchAndWithTwoAsADelta) {
  fs::path db = src_ / "db";
  std::string data = Random(2 * kPatchMinSize, 12);
  WriteFile(db.string(), data);
  SyncAll();
  data.insert(data.size() / 8, "inserted early: seven eighths of the blocks shift");
  WriteFile(db.string(), data);
  uint64_t written = receiver_->stats().bytes_written.load();
  SyncAll();
  EXPECT_EQ(receiver_->stats().patches.load(), 0u);
  EXPECT_EQ(receiver_->stats().moves.load(), 1u);
  EXPECT_GT(receiver_->stats().bytes_copied.load(), data.size() - (64u << 10)) << "all but the inserted block copied";
  EXPECT_LT(receiver_->stats().bytes_written.load() - written, 16u << 10) << "only the block around the insertion";
  ExpectSame();

  data.insert(data.size() - data.size() / 16, "inserted late: a sixteenth shifts");
  WriteFile(db.string(), data);
  SyncAll();
  EXPECT_EQ(receiver_->stats().patches.load(), 1u);
  EXPECT_EQ(receiver_->stats().moves.load(), 1u);
  ExpectSame();

  data.insert(data.size() / 4, std::string(100, 'a'));
  data.insert(data.size() * 3 / 4, std::string(1000, 'b'));
  WriteFile(db.string(), data);
  uint64_t copied = receiver_->stats().bytes_copied.load();
  written = receiver_->stats().bytes_written.load();
  SyncAll();
  EXPECT_EQ(receiver_->stats().patches.load(), 1u);
  EXPECT_EQ(receiver_->stats().moves.load(), 1u) << "half the file shifted by neither insertion's size";
  EXPECT_GT(receiver_->stats().bytes_copied.load() - copied, data.size() / 2) << "the unchanged chunks were reused";
  EXPECT_LT(receiver_->stats().bytes_written.load() - written, 512u << 10) << "only the chunks around the insertions";
  ExpectSame();
}

// Large files are planned when the send reaches them, so delta requests
// stop at each until then: two that turn out to need a delta, each followed
// by small delta files within the window, and one patched in between, all
// arrive (a request sent out of order would pair a file with another's
// chunks and fail the pass).
TEST_F(ReplicateTest, FilesPlannedWhenReachedKeepTheDeltaRequestsInOrder) {
  std::map<std::string, std::string> files;
  for (const char* big : {"a", "c", "e"}) files[big] = Random(2 * kPatchMinSize, big[0]);
  for (int i = 0; i < 5; ++i) {
    files["b" + std::to_string(i)] = Random(64 << 10, 100 + i);
    files["d" + std::to_string(i)] = Random(64 << 10, 200 + i);
  }
  for (const auto& [name, data] : files) WriteFile((src_ / name).string(), data);
  SyncAll();
  for (const char* big : {"a", "c"}) {  // half of each shifts by neither insertion's size: a delta
    auto& data = files[big];
    data.insert(data.size() / 4, std::string(100, 'a'));
    data.insert(data.size() * 3 / 4, std::string(1000, 'b'));
  }
  files["e"].replace(kPatchMinSize, 5, "EDIT!");
  for (auto& [name, data] : files) {
    if (name.size() == 2) data.replace(1000, 5, "EDIT!");
    WriteFile((src_ / name).string(), data);
  }
  uint64_t copied = receiver_->stats().bytes_copied.load();
  SyncAll();
  ExpectSame();
  EXPECT_EQ(receiver_->stats().patches.load(), 1u) << "e is patched";
  EXPECT_GT(receiver_->stats().bytes_copied.load() - copied, 2 * kPatchMinSize) << "a and c reuse their chunks";
}

// The target's copy changed without its size or mtime moving: the blocks
// copied from it do not hash as the source's record says, the receiver
// refuses the file (the old version stays), and the next pass, which no
// longer trusts the record, repairs it.
TEST_F(ReplicateTest, MovedBlocksFromABaseThatChangedSilentlyAreRefusedAndTheNextPassRepairs) {
  fs::path db = src_ / "db";
  std::string data = Random(kPatchMinSize + 5000, 14);
  WriteFile(db.string(), data);
  SyncAll();
  auto mtime = fs::last_write_time(dst_ / "db");
  Overwrite(dst_ / "db", kPatchMinSize / 2, "bit rot");
  fs::last_write_time(dst_ / "db", mtime);
  std::string rotten = ReadAll(dst_ / "db");
  data.insert(1000, "an insertion near the start");
  WriteFile(db.string(), data);
  auto link = OpenLink(kModeSync);
  ASSERT_TRUE(link.ok()) << link.error().ToString();
  auto d = (*link)->Sync({}, {{"", true}}, {true, false, nullptr, &links_});
  ASSERT_FALSE(d.ok()) << "the copy from a changed base was accepted";
  EXPECT_NE(d.error().message().find("not the ones the source recorded"), std::string::npos) << d.error().ToString();
  link->reset();
  EXPECT_EQ(ReadAll(dst_ / "db"), rotten) << "the refused file must leave the old version in place";
  SyncAll();
  ExpectSame();
}

TEST_F(ReplicateTest, ALargeFileThatChangedAtTheTargetIsRebuiltNotPatched) {
  fs::path db = src_ / "db";
  WriteFile(db.string(), Random(kPatchMinSize + 4096, 8));
  SyncAll();
  // Someone wrote to the target's copy: the source's record no longer
  // describes it, so patching would leave that write in place.
  Overwrite(dst_ / "db", 4096, "written at the target");
  ChangeLikeADatabase(db, 4, 5, 0);
  SyncAll();
  EXPECT_EQ(receiver_->stats().patches.load(), 0u);
  ExpectSame();
  // The record now describes the rebuilt version: the next change patches.
  ChangeLikeADatabase(db, 5, 5, 0);
  SyncAll();
  EXPECT_EQ(receiver_->stats().patches.load(), 1u);
  ExpectSame();
}

TEST_F(ReplicateTest, VerifyRepairsALargeFileByRebuildingIt) {
  fs::path db = src_ / "db";
  WriteFile(db.string(), Random(kPatchMinSize, 9));
  SyncAll();
  // A silent change at the target that kept size and mtime: only hashes see it.
  auto mtime = fs::last_write_time(dst_ / "db");
  Overwrite(dst_ / "db", 100, "bit rot");
  fs::last_write_time(dst_ / "db", mtime);
  auto d = SyncAll(true, true);
  ASSERT_EQ(d.size(), 1u) << Describe(d);
  EXPECT_EQ(receiver_->stats().patches.load(), 0u) << "a repair must not trust the record";
  ExpectSame();
}

// The receiver killed (or its disk full) at each of its file calls in turn
// while it updates a large file in place and rebuilds another from moved
// blocks: after it starts again (applying a sealed journal, dropping an
// unsealed one) each file is byte for byte the old version or the new one,
// never a mix, and the next session converges.
TEST_F(ReplicateTest, KilledOrDiskFullAtAnyFileCallOfAnInPlaceUpdateOrMovedBlocksTheFileIsOldOrNew) {
  fs::path db = src_ / "db", img = src_ / "img";
  WriteFile(db.string(), Random(kPatchMinSize + 3000, 10));
  std::string w1 = Random(kPatchMinSize + 5000, 11);
  WriteFile(img.string(), w1);
  WriteFile((src_ / "small").string(), "small, unchanged");
  SyncAll();
  std::string v1 = ReadAll(db);
  auto record = blocks_.Get("db");
  auto img_record = blocks_.Get("img");
  ASSERT_TRUE(record.has_value());
  ASSERT_TRUE(img_record.has_value());
  fs::path pristine = base_ / "pristine";
  fs::copy(dst_, pristine, fs::copy_options::recursive);
  for (const char* f : {"db", "img"}) fs::last_write_time(pristine / f, fs::last_write_time(dst_ / f));
  ChangeLikeADatabase(db, 12, 30, 70000);
  std::string v2 = ReadAll(db);
  std::string w2 = w1;
  w2.insert(w2.size() / 3, "an insertion a third of the way in");
  WriteFile(img.string(), w2);

  FaultEnv env;
  auto reset_target = [&] {
    StopReceiver();
    fs::remove_all(dst_);
    fs::copy(pristine, dst_, fs::copy_options::recursive);
    for (const char* f : {"db", "img"}) fs::last_write_time(dst_ / f, fs::last_write_time(pristine / f));
    blocks_.Put("db", *record);
    blocks_.Put("img", *img_record);
    StartReceiver(env);
  };
  reset_target();
  env.Disarm();
  SyncAll();
  uint64_t total = env.calls();
  ASSERT_EQ(receiver_->stats().patches.load(), 1u);
  ASSERT_EQ(receiver_->stats().moves.load(), 1u);
  ASSERT_GE(total, 8u);
  auto session = [&](FaultEnv::Fault, const Result<std::vector<Difference>>& d) {
    if (env.fired()) {
      EXPECT_FALSE(d.ok()) << "a session that failed at " << env.fired_at() << " succeeded";
    }
  };
  FailEachCall(env, total, reset_target, session, [&] {
    env.Disarm();
    StartReceiver(env);
    SyncAll(false);  // the receiver has recovered once it answers
    std::string now = ReadAll(dst_ / "db");
    EXPECT_TRUE(now == v1 || now == v2) << "the file is a mix of versions after recovery (" << now.size()
                                        << " bytes; old " << v1.size() << ", new " << v2.size() << ")";
    now = ReadAll(dst_ / "img");
    EXPECT_TRUE(now == w1 || now == w2) << "the moved-blocks file is neither version after recovery";
    SyncAll();
    ExpectSame();
    ExpectNoTempNames();
  });
}

// A new file of 8 MiB and more is written past the page cache by a thread of
// its own (DirectWriter); a repeated block in it makes the receiver read it
// back mid-file, and its tail is not whole blocks.
TEST_F(ReplicateTest, KilledOrDiskFullAtAnyCallWhileALargeNewFileIsWrittenItIsAbsentOrWhole) {
  WriteFile((src_ / "small").string(), "small, unchanged");
  SyncAll();
  fs::path pristine = base_ / "pristine";
  fs::copy(dst_, pristine, fs::copy_options::recursive);
  std::string block = Random(1 << 20, 51);
  std::string large = Random(5 << 20, 50) + block + block + Random(3 << 20, 52) + Random(5000, 53);
  fs::create_directories(src_ / "dir");
  WriteFile((src_ / "dir/large").string(), large);

  FaultEnv env;
  auto reset_target = [&] {
    StopReceiver();
    fs::remove_all(dst_);
    fs::copy(pristine, dst_, fs::copy_options::recursive);
    StartReceiver(env);
  };
  reset_target();
  env.Disarm();
  SyncAll();
  uint64_t total = env.calls();
  ASSERT_GT(receiver_->stats().bytes_copied.load(), 0u) << "the repeated block must go as a REPEAT";
  UniqueFd probe(::open((dst_ / "dir/large").c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  if (probe.valid()) {
    ASSERT_GE(receiver_->stats().bytes_direct.load(), 4u << 20) << "the file must go past the page cache";
  }
  ASSERT_GE(total, 6u);
  auto session = [&](FaultEnv::Fault fault, const Result<std::vector<Difference>>& d) {
    if (!env.fired()) return;
    ASSERT_FALSE(d.ok()) << "a session that failed at " << env.fired_at() << " succeeded";
    if (fault == FaultEnv::Fault::kDiskFull) {
      EXPECT_EQ(d.error().code(), Code::kResourceExhausted) << d.error().ToString();
    }
  };
  FailEachCall(env, total, reset_target, session, [&] {
    if (fs::exists(dst_ / "dir/large")) {
      EXPECT_TRUE(ReadAll(dst_ / "dir/large") == large) << "a partial file landed";
    }
    env.Disarm();
    StartReceiver(env);
    SyncAll();
    ExpectSame();
    ExpectNoTempNames();
  });
}

TEST(JournalTest, OnlyASealedWholeJournalTouchesItsFile) {
  fs::path dir = fs::temp_directory_path() / ("lifeboat-journal-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  WriteFile((dir / "f").string(), std::string(10000, 'a'));
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Meta meta{0640, ::getuid(), ::getgid(), 1700000000, 123};
  auto write = [&](bool seal) {
    auto w = JournalWriter::Create(Env::Default(), d.get(), ".lifeboat~j.journal", "f", 12000, meta);
    EXPECT_TRUE(w.ok());
    EXPECT_TRUE((*w)->Add(0, std::span(reinterpret_cast<const uint8_t*>("BBBB"), 4)).ok());
    EXPECT_TRUE((*w)->Add(11000, std::span(reinterpret_cast<const uint8_t*>("CCCC"), 4)).ok());
    if (seal) {
      EXPECT_TRUE((*w)->Seal().ok());
    }
  };
  write(false);  // an unsealed journal is removed when abandoned
  EXPECT_FALSE(fs::exists(dir / ".lifeboat~j.journal"));
  write(true);
  std::string sealed = ReadAll(dir / ".lifeboat~j.journal");
  // Cut short anywhere, or one byte flipped: refused, and the file untouched.
  for (size_t cut : {size_t{0}, size_t{10}, sealed.size() / 2, sealed.size() - 1}) {
    WriteFile((dir / ".lifeboat~j.journal").string(), sealed.substr(0, cut));
    auto s = ApplyJournal(Env::Default(), d.get(), ".lifeboat~j.journal");
    EXPECT_EQ(s.error().code(), Code::kDataLoss) << cut;
  }
  std::string flipped = sealed;
  flipped[flipped.size() / 2] ^= 1;
  WriteFile((dir / ".lifeboat~j.journal").string(), flipped);
  EXPECT_EQ(ApplyJournal(Env::Default(), d.get(), ".lifeboat~j.journal").error().code(), Code::kDataLoss);
  EXPECT_EQ(ReadAll(dir / "f"), std::string(10000, 'a'));

  WriteFile((dir / ".lifeboat~j.journal").string(), sealed);
  ASSERT_TRUE(ApplyJournal(Env::Default(), d.get(), ".lifeboat~j.journal").ok());
  std::string want = "BBBB" + std::string(9996, 'a') + std::string(1000, '\0') + "CCCC" + std::string(996, '\0');
  EXPECT_EQ(ReadAll(dir / "f"), want);
  struct stat st;
  ASSERT_EQ(::stat((dir / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1700000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123);
  EXPECT_FALSE(fs::exists(dir / ".lifeboat~j.journal"));
  fs::remove_all(dir);
}

// The pages of `path` in the page cache, one flag per 4 KiB.
std::vector<bool> Resident(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || st.st_size == 0) return {};
  size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return {};
  std::vector<unsigned char> v((size + 4095) / 4096);
  int rc = ::mincore(map, size, v.data());
  ::munmap(map, size);
  if (rc != 0) return {};
  std::vector<bool> out;
  for (unsigned char c : v) out.push_back((c & 1) != 0);
  return out;
}

TEST(DirectWriter, GathersWholeBlocksPastThePageCacheAndWritesTheRestThroughTheFile) {
  fs::path dir = fs::temp_directory_path() / ("lifeboat-direct-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd fd(::openat(d.get(), "f", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  const size_t size = 6 * DirectWriter::kChunk + 5000;
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  auto w = DirectWriter::Open(Env::Default(), d.get(), "f", fd.get(), "f");
  if (!w) {
    GTEST_SKIP() << dir << " is on a file system without O_DIRECT";
  }
  std::string want = Random(size, 9);
  auto put = [&](size_t off, size_t n) {
    return w->Write(reinterpret_cast<const uint8_t*>(want.data()) + off, n, off);
  };
  // Frames of 256 KiB gathered across chunk boundaries; a hole of one chunk
  // (chunk 3 stays unwritten); one frame at an odd offset and length, and
  // the file's unaligned tail, through the page cache.
  const size_t frame = 256 << 10;
  for (size_t off = 0; off < 3 * DirectWriter::kChunk; off += frame) ASSERT_TRUE(put(off, frame).ok());
  for (size_t off = 4 * DirectWriter::kChunk; off < 6 * DirectWriter::kChunk - frame; off += frame) {
    ASSERT_TRUE(put(off, frame).ok());
  }
  ASSERT_TRUE(put(6 * DirectWriter::kChunk - frame, 1000).ok());
  ASSERT_TRUE(put(6 * DirectWriter::kChunk - frame + 1000, frame - 1000).ok());
  ASSERT_TRUE(put(6 * DirectWriter::kChunk, 5000).ok());
  ASSERT_TRUE(w->Drain().ok());
  EXPECT_EQ(w->direct_bytes(), 5 * DirectWriter::kChunk - frame);
  w.reset();

  auto resident = Resident(dir / "f");
  ASSERT_EQ(resident.size(), (size + 4095) / 4096);
  const size_t per_chunk = DirectWriter::kChunk / 4096;
  size_t cached = 0;
  for (size_t i = 0; i < 3 * per_chunk; ++i) cached += resident[i];
  EXPECT_EQ(cached, 0u) << "pages written past the page cache";
  EXPECT_TRUE(resident.back()) << "the tail goes through the page cache";
  struct stat st;
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, size - DirectWriter::kChunk + 8192) << "the hole stays a hole";
  std::string expect = want;
  std::fill(expect.begin() + 3 * DirectWriter::kChunk, expect.begin() + 4 * DirectWriter::kChunk, '\0');
  EXPECT_TRUE(ReadAll(dir / "f") == expect);
  fs::remove_all(dir);
}

TEST(DirectWriter, AFailedWriteIsReportedByTheNextCallAndEndsTheFile) {
  fs::path dir = fs::temp_directory_path() / ("lifeboat-direct-fail-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd fd(::openat(d.get(), "f", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  std::string data = Random(2 * DirectWriter::kChunk, 10);
  auto bytes = [&](size_t off) { return reinterpret_cast<const uint8_t*>(data.data()) + off; };
  for (auto [fault, code] : {std::pair{FaultEnv::Fault::kDiskFull, Code::kResourceExhausted},
                             std::pair{FaultEnv::Fault::kIoError, Code::kDataLoss}}) {
    FaultEnv env;
    auto w = DirectWriter::Open(env, d.get(), "f", fd.get(), "f");
    if (!w) {
      GTEST_SKIP() << dir << " is on a file system without O_DIRECT";
    }
    env.Arm(fault, 1);  // the first write, on the writer's thread
    ASSERT_TRUE(w->Write(bytes(0), DirectWriter::kChunk, 0).ok()) << "queued: its outcome is not known yet";
    auto s = w->Drain();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), code) << s.error().ToString();
    EXPECT_NE(s.error().message().find("'f'"), std::string::npos) << s.error().ToString();
    env.Disarm();
    auto again = w->Write(bytes(DirectWriter::kChunk), DirectWriter::kChunk, DirectWriter::kChunk);
    if (again.ok()) again = w->Drain();
    EXPECT_FALSE(again.ok()) << "a file with a failed write takes no more";
  }
  fs::remove_all(dir);
}

// The sender reads a large file sent whole with a DirectReader: each piece
// at its offset with the file's bytes, holes skipped, the tail short, and
// nothing (size 0) past the end of a file that shrank meanwhile.
TEST(DirectReader, ReadsTheExtentsInPiecesPastThePageCacheUpToTheEnd) {
  fs::path dir = fs::temp_directory_path() / ("lifeboat-direct-read-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const size_t mib = 1 << 20, piece = 256 << 10;
  std::string data = Random(3 * mib + 5000, 60);
  std::fill(data.begin() + mib, data.begin() + 2 * mib, '\0');
  UniqueFd fd(::open((dir / "f").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_EQ(::pwrite(fd.get(), data.data(), mib, 0), static_cast<ssize_t>(mib));
  ASSERT_EQ(::pwrite(fd.get(), data.data() + 2 * mib, mib + 5000, 2 * mib), static_cast<ssize_t>(mib + 5000));
  ASSERT_EQ(::fsync(fd.get()), 0);
  auto extents = fstree::DataExtents(fd.get(), data.size());
  ASSERT_TRUE(extents.ok());
  ASSERT_EQ(extents->size(), 2u) << "the hole is a hole";
  auto reader = DirectReader::Open(fd.get(), *extents, piece, "f");
  if (!reader) {
    GTEST_SKIP() << dir << " is on a file system without O_DIRECT";
  }
  size_t pieces = 0;
  for (auto [off, len] : *extents) {
    for (uint64_t done = 0; done < len; done += piece) {
      auto p = reader->Next();
      ASSERT_TRUE(p.ok()) << p.error().ToString();
      size_t want = static_cast<size_t>(std::min<uint64_t>(piece, len - done));
      ASSERT_EQ(p->offset, off + done);
      ASSERT_EQ(p->size, want);
      ASSERT_EQ(std::string_view(reinterpret_cast<const char*>(p->bytes), p->size),
                std::string_view(data).substr(static_cast<size_t>(off + done), want))
          << "at " << off + done;
      ++pieces;
    }
  }
  EXPECT_EQ(pieces, 9u);  // 4 of the first MiB, 4 and the 5000-byte tail of the rest
  EXPECT_EQ(reader->direct_bytes(), 2 * mib + 5000) << "every byte past the page cache";

  // Shrunk after the extents were taken: the piece across the new end is
  // short, the ones past it are empty.
  reader = DirectReader::Open(fd.get(), *extents, piece, "f");
  ASSERT_TRUE(reader);
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(2 * mib + 100)), 0);
  std::vector<size_t> sizes;
  for (size_t i = 0; i < pieces; ++i) {
    auto p = reader->Next();
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    sizes.push_back(p->size);
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{piece, piece, piece, piece, 100, 0, 0, 0, 0}));

  // An extent off the 4 KiB grid is not read direct: the caller reads as before.
  EXPECT_FALSE(DirectReader::Open(fd.get(), {{512, 4096}}, piece, "f"));
  // Dropped with reads in flight: they finish before the buffers go.
  reader = DirectReader::Open(fd.get(), *extents, piece, "f");
  ASSERT_TRUE(reader && reader->Next().ok());
  reader.reset();
  fs::remove_all(dir);
}

TEST(BlocksTest, HashesWithGapsAreTheHashesOfZeros) {
  std::string data = Random(3 * kBlockSize + 100, 1);
  std::string holey = data;
  std::fill(holey.begin() + 1000, holey.begin() + 1000 + 2 * kBlockSize, '\0');
  auto bytes = [](const std::string& s, size_t from, size_t n) {
    return std::span(reinterpret_cast<const uint8_t*>(s.data()) + from, n);
  };
  BlockHasher whole(holey.size());
  whole.Add(0, bytes(holey, 0, holey.size()));
  BlockHasher gaps(holey.size());
  gaps.Add(0, bytes(holey, 0, 1000));
  gaps.Add(1000 + 2 * kBlockSize, bytes(holey, 1000 + 2 * kBlockSize, holey.size() - 1000 - 2 * kBlockSize));
  auto a = whole.Finish();
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(a, gaps.Finish());
  EXPECT_EQ(a[3], BlockHash(bytes(holey, 3 * kBlockSize, 100)));
}

// AddBlock takes the given hash for a whole block at its place (or the
// file's short last one) and hashes the bytes anywhere else: the given
// hashes below are wrong on purpose, to tell which way each block went.
TEST(BlocksTest, AddBlockTakesTheHashOnlyOfABlockAtItsPlace) {
  constexpr uint64_t kTaken = 0xfeed, kAlsoTaken = 0xbeef, kIgnored = 0xbad;
  std::string data = Random(4 * kBlockSize + 100, 2);
  std::fill(data.begin() + 2 * kBlockSize, data.begin() + 2 * kBlockSize + 10, '\0');  // a gap below
  auto bytes = [&](size_t from, size_t n) {
    return std::span(reinterpret_cast<const uint8_t*>(data.data()) + from, n);
  };
  BlockHasher plain(data.size());
  plain.Add(0, bytes(0, data.size()));
  auto want = plain.Finish();
  BlockHasher h(data.size());
  h.AddBlock(0, bytes(0, kBlockSize), want[0]);
  h.AddBlock(kBlockSize, bytes(kBlockSize, kBlockSize), kTaken);
  h.AddBlock(2 * kBlockSize + 10, bytes(2 * kBlockSize + 10, kBlockSize), kIgnored);  // off the grid, after a gap
  h.Add(3 * kBlockSize + 10, bytes(3 * kBlockSize + 10, kBlockSize - 10));
  h.AddBlock(4 * kBlockSize, bytes(4 * kBlockSize, 100), kAlsoTaken);  // the short last block
  want[1] = kTaken;
  want[4] = kAlsoTaken;
  EXPECT_EQ(h.Finish(), want);
  // A short block at its place but not the last: hashed with what follows.
  BlockHasher p2(2 * kBlockSize), h2(2 * kBlockSize);
  p2.Add(0, bytes(0, 2 * kBlockSize));
  h2.AddBlock(0, bytes(0, 50), kIgnored);
  h2.Add(50, bytes(50, 2 * kBlockSize - 50));
  EXPECT_EQ(h2.Finish(), p2.Finish());
}

TEST(BlocksTest, RecordsRoundTripAndADamagedOneIsRefused) {
  FileBlocks b{kBlockSize * 2 + 5, 1700000000, 42, {1, 2, 3}};
  std::string rec = EncodeBlocks("dir/db", b);
  auto back = DecodeBlocks(rec, "dir/db");
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(*back, b);
  EXPECT_EQ(DecodeBlocks(rec, "other").error().code(), Code::kDataLoss);
  for (size_t i = 0; i < rec.size(); i += 7) {
    std::string bad = rec;
    bad[i] ^= 0x10;
    EXPECT_FALSE(DecodeBlocks(bad, "dir/db").ok()) << i;
  }
  EXPECT_FALSE(DecodeBlocks(rec.substr(0, rec.size() - 1), "dir/db").ok());

  fs::path dir = fs::temp_directory_path() / ("lifeboat-blocks-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  BlockIndex index(dir.string());
  index.Put("a", b);
  index.Put("b", b);
  EXPECT_EQ(index.Get("a"), b);
  EXPECT_EQ(index.Prune({"b"}), 1u);
  EXPECT_FALSE(index.Get("a").has_value());
  EXPECT_EQ(index.Get("b"), b);
  fs::remove_all(dir);
}

// The runs RepeatFinder names: whole blocks at aligned offsets equal to
// earlier ones, never overlapping what they write, and only where the bytes
// at the earlier offset (read again) are equal, not just their hashes.
TEST(BlocksTest, RepeatsAreWholeEarlierBlocksWhoseBytesAreEqual) {
  // Units of the stride at which blocks are remembered (the shortest run named, too).
  constexpr uint64_t B = RepeatFinder::kStride;
  static_assert(RepeatFinder::kMinRun == B);
  std::string a = Random(B, 1), b = Random(B, 2), c = Random(B, 3);
  // Units: a b a b c c c c, then half a unit.
  std::string data = a + b + a + b + c + c + c + c + Random(B / 2, 4);
  fs::path p = fs::temp_directory_path() / ("lifeboat-repeat-" + std::to_string(::getpid()));
  WriteFile(p.string(), data);
  UniqueFd fd(::open(p.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  auto bytes = [&](size_t from, size_t n) {
    return std::span(reinterpret_cast<const uint8_t*>(data.data()) + from, n);
  };
  using Run = RepeatFinder::Run;
  {
    RepeatFinder f;
    auto runs = f.Scan(fd.get(), 0, bytes(0, data.size()));
    ASSERT_TRUE(runs.ok()) << runs.error().ToString();
    // "a b" again at 2B; c at 5B from 4B; "c c" at 6B from 4B (never from 5B: it would overlap).
    EXPECT_EQ(*runs, (std::vector<Run>{{2 * B, 0, 2 * B}, {5 * B, 4 * B, B}, {6 * B, 4 * B, 2 * B}}));
  }
  {
    // Read in parts, one not starting at a unit: "a" again at 2B is cut by
    // the end of a read to half a unit, too short; the next read finds its
    // rest only from "b", the next block remembered.
    RepeatFinder f;
    ASSERT_TRUE(f.Scan(fd.get(), 0, bytes(0, B / 2)).ok());
    auto first = f.Scan(fd.get(), B / 2, bytes(B / 2, 2 * B));
    ASSERT_TRUE(first.ok());
    EXPECT_TRUE(first->empty());
    auto rest = f.Scan(fd.get(), 2 * B + B / 2, bytes(2 * B + B / 2, data.size() - 2 * B - B / 2));
    ASSERT_TRUE(rest.ok());
    EXPECT_EQ(*rest, (std::vector<Run>{{3 * B, B, B}, {5 * B, 4 * B, B}, {6 * B, 4 * B, 2 * B}}));
  }
  {
    // The file changed at the earlier offset after it was scanned: the hash
    // still points there, but the bytes differ, so nothing repeats.
    RepeatFinder f;
    ASSERT_TRUE(f.Scan(fd.get(), 0, bytes(0, 2 * B)).ok());
    Overwrite(p, 0, Random(B, 9));
    auto runs = f.Scan(fd.get(), 2 * B, bytes(2 * B, 2 * B));
    ASSERT_TRUE(runs.ok());
    EXPECT_EQ(*runs, (std::vector<Run>{{3 * B, B, B}})) << "only b, whose earlier bytes are unchanged";
  }
  fs::remove(p);
}

// A new file made of copies of a few blocks (a disk image's repeated
// blocks, written zeros) travels as those blocks once and REPEATs; the copy
// is exact, and its record lets the next change go in place.
TEST_F(ReplicateTest, ANewFileOfRepeatedBlocksSendsEachBlockOnce) {
  std::string one = Random(1 << 20, 5), two = Random(1 << 20, 6);
  std::string data;
  for (int i = 0; i < 12; ++i) data += (i % 3 == 2 ? two : one);
  data += std::string(3 << 20, '\0') + Random(5000, 7);  // zeros written, not a hole; a short tail
  WriteFile((src_ / "image").string(), data);
  auto link = OpenLink(kModeSync);
  ASSERT_TRUE(link.ok());
  Progress p;
  auto d = (*link)->Sync({}, {{"", true}}, {true, false, &p, nullptr});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_LT((*link)->bytes_sent(), (3u << 20) + (200u << 10)) << "two blocks, the first zeros, the tail";
  EXPECT_LT(p.bytes_literal.load(), (3u << 20) + 10000u);
  EXPECT_EQ(p.bytes_done.load(), data.size());
  EXPECT_GE(receiver_->stats().bytes_copied.load(), data.size() - (3u << 20) - 10000u);
  link->reset();
  EXPECT_EQ(ReadAll(dst_ / "image"), data);
  ExpectSame();

  ChangeLikeADatabase(src_ / "image", 4, 10, 0);
  SyncAll();
  EXPECT_EQ(receiver_->stats().patches.load(), 1u) << "the record of the repeated version holds";
  EXPECT_EQ(ReadAll(dst_ / "image"), ReadAll(src_ / "image"));
  ExpectNoTempNames();
}

// A large file written as a temporary file over a few seconds and renamed
// over its old version (the way editors, rsync and many tools save): the
// stream held it back while it was written, then sent a delta against the
// old version, instead of sending its bytes whole (and a run on a slower
// machine sent 298 MB where rsync sent 25 MB).
TEST_F(ReplicateTest, ANewLargeFileBeingWrittenWaitsAndThenTravelsAsADelta) {
  std::string old = Random(8 << 20, 21);
  WriteFile((src_ / "big").string(), old);
  StreamConfig c;
  c.link = Config();
  c.target_region = "west";
  c.coalesce = std::chrono::milliseconds(100);
  auto stream = Stream::Create(c);
  ASSERT_TRUE(stream.ok()) << stream.error().ToString();
  (*stream)->Start();
  auto wait_in_sync = [&] {
    for (int i = 0; i < 1000 && !(*stream)->GetStatus().in_sync; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE((*stream)->GetStatus().in_sync);
  };
  wait_in_sync();
  uint64_t before = (*stream)->GetStatus().bytes_sent;

  std::string fresh = old;
  for (size_t off : {size_t{1} << 20, size_t{5} << 20}) fresh.replace(off, 10, "new bytes!");
  {
    std::ofstream tmp(src_ / "big.tmp", std::ios::binary);
    for (size_t off = 0; off < fresh.size(); off += 256 << 10) {
      tmp.write(fresh.data() + off, 256 << 10);
      tmp.flush();
      std::this_thread::sleep_for(std::chrono::milliseconds(40));  // 1.3 s of writing
    }
  }
  fs::rename(src_ / "big.tmp", src_ / "big");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  wait_in_sync();
  uint64_t sent = (*stream)->GetStatus().bytes_sent - before;
  EXPECT_LT(sent, 2u << 20) << "the file being written was sent as it was";
  (*stream)->Stop();
  EXPECT_EQ(ReadAll(dst_ / "big"), fresh);
  EXPECT_FALSE(fs::exists(dst_ / "big.tmp"));
}

// Status while a target cannot take a file: each retry starts a pass that
// counts its work as it lists, and CI caught "pending_files": 0 in that
// moment, while the file was as unsent as before.
TEST(StreamStatusTest, WhatALostSessionLeftStaysPendingWhileTheRetryCountsItsWork) {
  EXPECT_EQ(PendingCount(false, 0, 0, 0), 0u);
  EXPECT_EQ(PendingCount(false, 9, 9, 3), 3u);   // between passes: what the last left
  EXPECT_EQ(PendingCount(true, 0, 0, 3), 3u);    // a retry that has counted nothing yet
  EXPECT_EQ(PendingCount(true, 1, 0, 3), 3u);
  EXPECT_EQ(PendingCount(true, 5, 1, 3), 4u);    // counted more than was left
  EXPECT_EQ(PendingCount(true, 5, 4, 3), 1u);
  EXPECT_EQ(PendingCount(true, 5, 7, 3), 0u);    // done past its count (a file grew)
  EXPECT_EQ(PendingCount(true, 4, 0, 0), 4u);    // a first pass
}

}  // namespace
}  // namespace lifeboat::replicate
