#include "backup/backup.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/fault_env.h"
#include "fstree/tree.h"

namespace lifeboat::backup {
namespace {

namespace fs = std::filesystem;

std::string Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

void Write(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("lifeboat-backup-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    src_ = base_ / "src";
    fs::create_directories(src_);
    auto b = storage::NewFilesystem((base_ / "repo").string());
    // The cheapest key derivation: the tests open the repository hundreds of times.
    repo::ScryptParams cheap{1 << 10, 1, 1};
    ASSERT_TRUE(repo::Repository::Init(*b, true, "pw", chunk::ChunkParams::ForAverage(64 << 10), cheap).ok());
    repo_ = Reopen();
  }
  void TearDown() override { fs::remove_all(base_); }
  std::unique_ptr<repo::Repository> Reopen() {
    auto r = repo::Repository::Open(storage::NewFilesystem((base_ / "repo").string()), "pw");
    EXPECT_TRUE(r.ok());
    return std::move(*r);
  }
  BackupResult Backup() {
    BackupOptions o;
    o.path = src_.string();
    o.source = "path:" + src_.string();
    auto r = CreateBackup(*repo_, o);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? *r : BackupResult{};
  }
  RestoreResult RestoreTo(const std::string& id, const fs::path& to, std::vector<std::string> include = {}) {
    auto snap = repo_->FindSnapshot(id);
    EXPECT_TRUE(snap.ok());
    RestoreOptions o;
    o.to = to.string();
    o.include = std::move(include);
    auto r = Restore(*repo_, *snap, o);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? *r : RestoreResult{};
  }
  fs::path base_, src_;
  std::unique_ptr<repo::Repository> repo_;
};

TEST_F(BackupTest, RoundTripEveryKind) {
  Write(src_ / "a/b/file.txt", "hello");
  Write(src_ / "empty", "");
  Write(src_ / "big.bin", Random(3 << 20, 1));
  fs::create_directories(src_ / "emptydir");
  fs::create_symlink("a/b/file.txt", src_ / "rel-link");
  fs::create_symlink("/nowhere/at/all", src_ / "dangling");
  fs::create_hard_link(src_ / "big.bin", src_ / "a/hard");
  {
    std::ofstream f(src_ / "sparse", std::ios::binary);
    f.seekp(32 << 20);
    f << "end";
  }
  ::chmod((src_ / "a/b/file.txt").c_str(), 04751);
  struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 123456789}};
  ::utimensat(AT_FDCWD, (src_ / "a/b").c_str(), ts, 0);
  auto r = Backup();
  EXPECT_EQ(r.snapshot.stats.files, 5u);
  EXPECT_TRUE(r.errors.empty());
  auto res = RestoreTo(r.snapshot.id, base_ / "out");
  EXPECT_TRUE(res.failed.empty()) << res.failed[0].path << ": " << res.failed[0].reason;
  EXPECT_EQ(res.hardlinks, 1u);
  EXPECT_EQ(res.symlinks, 2u);
  fs::path out = base_ / "out";
  EXPECT_EQ(Read(out / "a/b/file.txt"), "hello");
  EXPECT_EQ(Read(out / "big.bin"), Read(src_ / "big.bin"));
  EXPECT_EQ(Read(out / "sparse"), Read(src_ / "sparse"));
  EXPECT_TRUE(fs::is_directory(out / "emptydir"));
  EXPECT_EQ(fs::read_symlink(out / "dangling"), "/nowhere/at/all");
  struct stat a, b, h, sp, d;
  ::stat((out / "a/b/file.txt").c_str(), &a);
  EXPECT_EQ(a.st_mode & 07777, 04751u);
  ::stat((out / "big.bin").c_str(), &b);
  ::stat((out / "a/hard").c_str(), &h);
  EXPECT_EQ(b.st_ino, h.st_ino);
  ::stat((out / "sparse").c_str(), &sp);
  EXPECT_LT(sp.st_blocks * 512, 1 << 20) << "holes stay holes";
  ::stat((out / "a/b").c_str(), &d);
  EXPECT_EQ(d.st_mtim.tv_sec, 1000000000);
  EXPECT_EQ(d.st_mtim.tv_nsec, 123456789);
  for (auto& e : fs::recursive_directory_iterator(out)) {
    EXPECT_EQ(e.path().filename().string().find(".lifeboat~"), std::string::npos) << e.path();
  }
}

TEST_F(BackupTest, DedupUnchangedAndInsertion) {
  std::string big = Random(8 << 20, 2);
  Write(src_ / "big", big);
  for (int i = 0; i < 50; ++i) Write(src_ / ("s/f" + std::to_string(i)), Random(3000, 100 + i));
  auto first = Backup();
  EXPECT_GT(first.snapshot.stats.stored_bytes, 8u << 20);
  repo_ = Reopen();
  auto second = Backup();
  EXPECT_EQ(second.snapshot.stats.files_unchanged, 51u);
  EXPECT_EQ(second.snapshot.stats.new_bytes, 0u);
  EXPECT_LT(second.snapshot.stats.stored_bytes, 4096u) << "only a tree or two";
  EXPECT_EQ(second.snapshot.parent, first.snapshot.id);
  Write(src_ / "big", big.substr(0, 4 << 20) + "inserted bytes" + big.substr(4 << 20));
  repo_ = Reopen();
  auto third = Backup();
  EXPECT_EQ(third.snapshot.stats.files_changed, 1u);
  EXPECT_LT(third.snapshot.stats.new_bytes, 3u * 512 * 1024) << "about one chunk (64 KiB average, at most 512 KiB)";
  auto res = RestoreTo(third.snapshot.id, base_ / "out");
  EXPECT_EQ(Read(base_ / "out/big").size(), big.size() + 14);
}

TEST_F(BackupTest, DamagedPackAffectsOnlyItsFiles) {
  for (int i = 0; i < 20; ++i) Write(src_ / ("f" + std::to_string(i)), Random(20000, i));
  auto first = Backup();
  // A second backup puts one more file into a pack of its own.
  Write(src_ / "late", Random(12000, 99));  // below the 16 KiB minimum: one chunk
  repo_ = Reopen();
  auto second = Backup();
  // Damage the pack that holds the first chunk of "late" (found through the index).
  ASSERT_TRUE(repo_->LoadIndex().ok());
  repo::Id root;
  ASSERT_TRUE(repo::ParseHex(second.snapshot.tree, root));
  auto tree = repo_->LoadTree(root);
  ASSERT_TRUE(tree.ok());
  auto late = std::find_if(tree->nodes.begin(), tree->nodes.end(), [](const repo::Node& n) { return n.name == "late"; });
  ASSERT_NE(late, tree->nodes.end());
  auto where = repo_->Find(late->content.at(0));
  ASSERT_TRUE(where.has_value());
  fs::path newest = base_ / "repo" / repo::PackName(where->pack);
  for (const auto& c : late->content) ASSERT_EQ(repo_->Find(c)->pack, where->pack) << "all of late is in one pack";
  {
    // Flip the byte: writing a fixed 'X' changed nothing when the ciphertext
    // (random each run) already held one there, 1 run in 256.
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(where->entry.offset + 100);
    char byte = 0;
    f.get(byte);
    f.seekp(where->entry.offset + 100);
    f.put(static_cast<char>(~byte));
  }
  repo_ = Reopen();
  auto check = repo_->Check(true);
  ASSERT_TRUE(check.ok());
  ASSERT_FALSE(check->errors.empty());
  auto res = RestoreTo(second.snapshot.id, base_ / "out");
  ASSERT_EQ(res.failed.size(), 1u);
  EXPECT_EQ(res.failed[0].path, "late");
  EXPECT_NE(res.failed[0].reason.find("authentication failed"), std::string::npos) << res.failed[0].reason;
  EXPECT_EQ(res.files, 20u);
  EXPECT_FALSE(fs::exists(base_ / "out/late"));
}

TEST_F(BackupTest, IncludeAndRefusesSymlinkInTarget) {
  Write(src_ / "keep/a.txt", "a");
  Write(src_ / "keep/b.log", "b");
  Write(src_ / "other/c.txt", "c");
  auto r = Backup();
  auto res = RestoreTo(r.snapshot.id, base_ / "out", {"keep/*.txt"});
  EXPECT_EQ(res.files, 1u);
  EXPECT_TRUE(fs::exists(base_ / "out/keep/a.txt"));
  EXPECT_FALSE(fs::exists(base_ / "out/keep/b.log"));
  EXPECT_FALSE(fs::exists(base_ / "out/other"));
  // A symlink planted in the target is never followed.
  fs::create_directories(base_ / "elsewhere");
  fs::create_directories(base_ / "out2");
  fs::create_symlink(base_ / "elsewhere", base_ / "out2/other");
  auto res2 = RestoreTo(r.snapshot.id, base_ / "out2");
  ASSERT_EQ(res2.failed.size(), 2u);  // the directory and its file, once each
  EXPECT_TRUE(fs::is_empty(base_ / "elsewhere"));
}

// The sequence the agent's retention runs: back up, lose half the files, back
// up again, delete the older backup, prune. Prune repacks the half-used packs;
// the remaining backup must still restore completely (it restored 0 files once:
// the repacked blobs stayed indexed at the deleted pack).
class PruneTest : public BackupTest {
 protected:
  // Returns the id of the backup that remains.
  std::string MakeHalfGarbage(int files = 200, size_t file_size = 50000) {
    files_ = files;
    for (int i = 0; i < files; ++i) Write(src_ / ("f" + std::to_string(i)), Random(file_size, 1000 + i));
    auto first = Backup();
    for (int i = 0; i < files; i += 2) fs::remove(src_ / ("f" + std::to_string(i)));
    repo_ = Reopen();
    auto second = Backup();
    EXPECT_TRUE(repo_->DeleteSnapshot(first.snapshot.id).ok());
    return second.snapshot.id;
  }
  void ExpectCleanAndRestorable(const std::string& id, const std::string& out) {
    repo_ = Reopen();
    auto check = repo_->Check(true);
    ASSERT_TRUE(check.ok()) << check.error().message();
    EXPECT_TRUE(check->errors.empty()) << check->errors.size() << " errors, first: " << check->errors[0];
    auto res = RestoreTo(id, base_ / out);
    EXPECT_TRUE(res.failed.empty()) << res.failed[0].path << ": " << res.failed[0].reason;
    EXPECT_EQ(res.files, static_cast<uint64_t>(files_ / 2));
    for (int i = 1; i < files_; i += 2) {
      std::string name = "f" + std::to_string(i);
      ASSERT_TRUE(Read(base_ / out / name) == Read(src_ / name)) << name << " differs";
    }
  }
  int files_ = 0;
};

TEST_F(PruneTest, RepackKeepsEveryKeptBackupRestorable) {
  std::string kept = MakeHalfGarbage();
  repo_ = Reopen();
  auto pr = repo_->Prune(0.2);
  ASSERT_TRUE(pr.ok()) << pr.error().message();
  EXPECT_GT(pr->packs_repacked, 0u) << "the test must exercise repacking";
  EXPECT_GT(pr->bytes_freed, 0u);
  // The same process goes on using its view of the index (the agent backs up
  // again after retention without reopening).
  auto again = Backup();
  EXPECT_EQ(again.snapshot.stats.new_bytes, 0u);
  auto res = RestoreTo(again.snapshot.id, base_ / "same-process");
  EXPECT_EQ(res.files, 100u);
  EXPECT_TRUE(res.failed.empty());
  ExpectCleanAndRestorable(kept, "out");
  // A second prune finds nothing more to do and breaks nothing.
  auto pr2 = repo_->Prune(0.2);
  ASSERT_TRUE(pr2.ok());
  EXPECT_EQ(pr2->packs_repacked, 0u);
  ExpectCleanAndRestorable(kept, "out2");
}

TEST_F(PruneTest, KilledAtAnyFileCallOfPruneLosesNothing) {
  std::string kept = MakeHalfGarbage(60, 4000);  // small: the loop checks and restores twice per call
  fs::path pristine = base_ / "pristine";
  fs::copy(base_ / "repo", pristine, fs::copy_options::recursive);
  FaultEnv env;
  auto open = [&] {
    auto r = repo::Repository::Open(storage::NewFilesystem((base_ / "repo").string(), env), "pw");
    EXPECT_TRUE(r.ok());
    return std::move(*r);
  };
  // Count the file calls of a whole prune, then die at each of them in turn.
  {
    auto r = open();
    env.Arm(FaultEnv::Fault::kNone, 0);
    ASSERT_TRUE(r->Prune(0.2).ok());
  }
  uint64_t total = env.calls();
  ASSERT_GE(total, 20u) << "new pack, new index, old index and old packs deleted, each with its syncs";
  // A prune's count of file calls varies a little from run to run: its
  // lock's refresher thread rewrites the lock on a timer, so a slow counting
  // run (a loaded machine) counts more calls. A prune that ends before its
  // nth call is not killed, must succeed, and leaves the same clean
  // repository.
  uint64_t killed = 0;
  for (uint64_t n = 1; n <= total; ++n) {
    fs::remove_all(base_ / "repo");
    fs::copy(pristine, base_ / "repo", fs::copy_options::recursive);
    {
      auto r = open();
      env.Arm(FaultEnv::Fault::kCrash, n);
      bool ok = r->Prune(0.2).ok();
      if (env.fired()) {
        ++killed;
        EXPECT_FALSE(ok) << "a prune that died at " << env.fired_at() << " said it succeeded";
      } else {
        EXPECT_TRUE(ok) << "a prune that made fewer than " << n << " file calls and was never killed failed";
      }
    }
    SCOPED_TRACE("killed at " + env.fired_at());
    env.Disarm();
    ExpectCleanAndRestorable(kept, "out");
    // A prune after the crash finishes the job.
    auto pr = repo_->Prune(0.2);
    ASSERT_TRUE(pr.ok()) << pr.error().message();
    ExpectCleanAndRestorable(kept, "after");
    fs::remove_all(base_ / "out");
    fs::remove_all(base_ / "after");
  }
  EXPECT_GE(killed, total * 3 / 4) << "most of the " << total << " file calls were never reached";
}

// A disk that fills up at any moment of a backup: the backup fails with
// "disk full" and leaves the repository as clean as before, every earlier
// backup restorable; with room again, the next backup completes.
TEST_F(BackupTest, AFullDiskAtAnyFileCallOfABackupBreaksNothing) {
  for (int i = 0; i < 6; ++i) Write(src_ / ("d/f" + std::to_string(i)), Random(40000, 10 + i));
  auto first = Backup();
  for (int i = 0; i < 6; i += 2) Write(src_ / ("d/f" + std::to_string(i)), Random(40000, 20 + i));
  Write(src_ / "new", Random(100000, 30));
  fs::path pristine = base_ / "pristine";
  fs::copy(base_ / "repo", pristine, fs::copy_options::recursive);
  FaultEnv env;
  BackupOptions o;
  o.path = src_.string();
  o.source = "path:" + src_.string();
  auto backup_with = [&](uint64_t full_at) {
    auto r = repo::Repository::Open(storage::NewFilesystem((base_ / "repo").string(), env), "pw");
    EXPECT_TRUE(r.ok());
    env.Arm(full_at == 0 ? FaultEnv::Fault::kNone : FaultEnv::Fault::kDiskFull, full_at);
    return CreateBackup(**r, o);
  };
  ASSERT_TRUE(backup_with(0).ok());
  uint64_t total = env.calls();
  ASSERT_GE(total, 10u);
  for (uint64_t n = 1; n <= total; ++n) {
    fs::remove_all(base_ / "repo");
    fs::copy(pristine, base_ / "repo", fs::copy_options::recursive);
    auto r = backup_with(n);
    SCOPED_TRACE("disk full from call " + std::to_string(n) + ", first refused: " + env.fired_at());
    if (env.fired()) {
      ASSERT_FALSE(r.ok()) << "a backup that could not write said it succeeded";
      EXPECT_EQ(r.error().code(), Code::kResourceExhausted) << r.error().message();
    } else {
      EXPECT_TRUE(r.ok()) << "nothing after call " << n << " needed room: " << r.error().message();
    }
    env.Disarm();
    repo_ = Reopen();
    auto check = repo_->Check(true);
    ASSERT_TRUE(check.ok()) << check.error().message();
    EXPECT_TRUE(check->errors.empty()) << check->errors[0];
    auto res = RestoreTo(first.snapshot.id, base_ / "out");
    EXPECT_TRUE(res.failed.empty());
    EXPECT_EQ(res.files, 6u);
    fs::remove_all(base_ / "out");
    auto again = Backup();
    auto res2 = RestoreTo(again.snapshot.id, base_ / "out");
    EXPECT_EQ(res2.files, 7u);
    EXPECT_EQ(Read(base_ / "out/new"), Read(src_ / "new"));
    fs::remove_all(base_ / "out");
  }
}

// A restore killed at any file call: no final name ever shows a partial
// file, and the next restore removes the temporary files and completes.
TEST_F(BackupTest, RestoreKilledAtAnyFileCallLeavesNoPartialFileAndResumes) {
  Write(src_ / "a/small", "hello");
  Write(src_ / "a/b/big", Random(1 << 20, 3));
  Write(src_ / "c", Random(70000, 4));
  fs::create_symlink("a/small", src_ / "link");
  fs::create_hard_link(src_ / "c", src_ / "a/hard");
  auto r = Backup();
  auto snap = repo_->FindSnapshot(r.snapshot.id);
  ASSERT_TRUE(snap.ok());
  FaultEnv env;
  RestoreOptions o;
  o.workers = 1;  // one thread: the nth call is the same call in every run
  o.env = &env;
  o.to = (base_ / "count").string();
  ASSERT_TRUE(Restore(*repo_, *snap, o).ok());
  uint64_t total = env.calls();
  ASSERT_GE(total, 20u);
  fs::path out = base_ / "out";
  o.to = out.string();
  for (uint64_t n = 1; n <= total; ++n) {
    fs::remove_all(out);
    env.Arm(FaultEnv::Fault::kCrash, n);
    auto crashed = Restore(*repo_, *snap, o);
    SCOPED_TRACE("killed at " + env.fired_at());
    EXPECT_TRUE(!crashed.ok() || !crashed->failed.empty()) << "a restore that died reported success";
    uint64_t temps = 0;
    for (auto& e : fs::recursive_directory_iterator(out)) {
      std::string name = e.path().filename().string();
      if (fstree::IsTempName(name)) {
        ++temps;
      } else if (fs::is_regular_file(fs::symlink_status(e.path()))) {
        std::string rel = fs::relative(e.path(), out).string();
        EXPECT_EQ(Read(e.path()), Read(src_ / rel)) << rel << " is at its final name but incomplete";
      }
    }
    env.Disarm();
    auto res = Restore(*repo_, *snap, o);
    ASSERT_TRUE(res.ok()) << res.error().message();
    EXPECT_TRUE(res->failed.empty()) << res->failed[0].path << ": " << res->failed[0].reason;
    EXPECT_EQ(res->leftovers_removed, temps);
    for (const char* p : {"a/small", "a/b/big", "c", "a/hard"}) EXPECT_EQ(Read(out / p), Read(src_ / p)) << p;
    EXPECT_EQ(fs::read_symlink(out / "link"), "a/small");
  }
}

// A restore asked to stop (an agent shutting down during a failover's
// restore) stops at the next file, puts what it wrote in place whole, says
// Cancelled, and a second restore completes it.
TEST_F(BackupTest, AStoppedRestoreLeavesWholeFilesAndSaysSo) {
  for (int i = 0; i < 30; ++i) Write(src_ / ("f" + std::to_string(i)), Random(20000, i));
  auto r = Backup();
  auto snap = repo_->FindSnapshot(r.snapshot.id);
  ASSERT_TRUE(snap.ok());
  // Asks to stop at the fifth file created.
  struct StopAfter : Env {
    std::atomic<bool> cancel{false};
    int creates = 0;
    int Before(FileOp op, size_t*) override {
      if (op == FileOp::kCreate && ++creates == 5) cancel = true;
      return 0;
    }
  } env;
  RestoreOptions o;
  o.workers = 1;
  o.env = &env;
  o.cancel = &env.cancel;
  o.to = (base_ / "out").string();
  auto stopped = Restore(*repo_, *snap, o);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().code(), Code::kCancelled) << stopped.error().message();
  int placed = 0;
  for (auto& e : fs::directory_iterator(base_ / "out")) {
    std::string name = e.path().filename().string();
    EXPECT_FALSE(fstree::IsTempName(name)) << name << " left behind";
    EXPECT_EQ(Read(e.path()), Read(src_ / name)) << name << " is in place but incomplete";
    ++placed;
  }
  EXPECT_GE(placed, 1);
  EXPECT_LT(placed, 30) << "the restore did not stop";
  o.cancel = nullptr;
  auto done = Restore(*repo_, *snap, o);
  ASSERT_TRUE(done.ok()) << done.error().message();
  for (int i = 0; i < 30; ++i) EXPECT_EQ(Read(base_ / "out" / ("f" + std::to_string(i))), Read(src_ / ("f" + std::to_string(i))));
}

// A symlink planted where the backup has a directory: restore refused to write
// files through it, but its last pass (directory metadata) chmodded and
// touched the directory outside the target through the link.
TEST_F(BackupTest, RestoreNeverChangesADirectoryOutsideTheTarget) {
  Write(src_ / "etc/passwd", "x");
  ::chmod((src_ / "etc").c_str(), 0777);
  struct timespec src_ts[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  ::utimensat(AT_FDCWD, (src_ / "etc").c_str(), src_ts, 0);
  auto r = Backup();
  fs::path outside = base_ / "outside";
  fs::create_directories(outside);
  ::chmod(outside.c_str(), 0700);
  struct timespec ts[2] = {{0, UTIME_OMIT}, {1500000000, 42}};
  ::utimensat(AT_FDCWD, outside.c_str(), ts, 0);
  fs::create_directories(base_ / "out");
  fs::create_symlink(outside, base_ / "out/etc");
  auto res = RestoreTo(r.snapshot.id, base_ / "out");
  EXPECT_FALSE(res.failed.empty());
  struct stat st;
  ASSERT_EQ(::stat(outside.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u) << "mode changed through the symlink";
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000) << "mtime changed through the symlink";
  EXPECT_EQ(st.st_mtim.tv_nsec, 42);
  EXPECT_TRUE(fs::is_empty(outside));
  EXPECT_TRUE(fs::is_symlink(base_ / "out/etc")) << "the planted link itself is left for the operator";
}

// Temporary files of killed writers were never cleaned: in the repository
// (data/xx/.lifeboat~put-*) and in a restore target.
TEST_F(BackupTest, PruneAndRestoreRemoveWhatKilledWritersLeft) {
  Write(src_ / "a/f", "data");
  auto r = Backup();
  Write(base_ / "repo/data/00/.lifeboat~put-123-1", "half a pack");
  Write(base_ / "repo/index/.lifeboat~put-123-2", "half an index");
  auto pr = repo_->Prune(0.2);
  ASSERT_TRUE(pr.ok()) << pr.error().message();
  EXPECT_EQ(pr->leftovers_removed, 2u);
  EXPECT_FALSE(fs::exists(base_ / "repo/data/00/.lifeboat~put-123-1"));
  Write(base_ / "out/a/.lifeboat~f.restore", "half a file");
  fs::create_directories(base_ / "elsewhere");
  Write(base_ / "elsewhere/.lifeboat~keep", "not the target's");
  fs::create_symlink(base_ / "elsewhere", base_ / "out/link");
  auto res = RestoreTo(r.snapshot.id, base_ / "out");
  EXPECT_EQ(res.leftovers_removed, 1u);
  EXPECT_FALSE(fs::exists(base_ / "out/a/.lifeboat~f.restore"));
  EXPECT_TRUE(fs::exists(base_ / "elsewhere/.lifeboat~keep")) << "symlinks are never followed";
  EXPECT_EQ(Read(base_ / "out/a/f"), "data");
}

// A lost index made every backup unrestorable, and check advised that prune
// would delete the packs that held the only copy.
TEST_F(BackupTest, RepairRebuildsALostIndex) {
  for (int i = 0; i < 30; ++i) Write(src_ / ("f" + std::to_string(i)), Random(40000, 500 + i));
  auto r = Backup();
  for (const auto& e : fs::directory_iterator(base_ / "repo/index")) fs::remove(e.path());
  repo_ = Reopen();
  auto check = repo_->Check(false);
  ASSERT_TRUE(check.ok());
  ASSERT_FALSE(check->errors.empty());
  EXPECT_NE(check->errors.back().find("repo repair"), std::string::npos) << check->errors.back();
  auto pr = repo_->Prune(0.2);
  ASSERT_FALSE(pr.ok()) << "prune must refuse: it would delete the only copy";
  auto rep = repo_->Repair();
  ASSERT_TRUE(rep.ok()) << rep.error().message();
  EXPECT_GE(rep->packs_indexed, 1u);
  EXPECT_TRUE(rep->still_missing.empty());
  EXPECT_TRUE(rep->unreadable_packs.empty());
  repo_ = Reopen();
  auto again = repo_->Check(true);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->errors.empty()) << again->errors[0];
  auto res = RestoreTo(r.snapshot.id, base_ / "out");
  EXPECT_EQ(res.files, 30u);
  EXPECT_TRUE(res.failed.empty());
}

TEST(IncludeTest, Globs) {
  EXPECT_TRUE(IncludeMatches({}, "x"));
  EXPECT_TRUE(IncludeMatches({"a"}, "a/b/c"));
  EXPECT_TRUE(IncludeMatches({"/a/"}, "a/b"));
  EXPECT_TRUE(IncludeMatches({"*/b"}, "a/b/c"));
  EXPECT_FALSE(IncludeMatches({"*.txt"}, "a/b.txt")) << "* does not cross /";
  EXPECT_FALSE(IncludeMatches({"b"}, "a/b"));
}

repo::Snapshot At(const std::string& id, int64_t days_ago, uint64_t errors = 0) {
  repo::Snapshot s;
  s.id = id;
  auto now = std::chrono::system_clock::from_time_t(1700000000);
  s.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>((now - std::chrono::hours(24 * days_ago)).time_since_epoch()).count();
  s.stats.errors = errors;
  return s;
}

TEST(RetentionTest, TtlKeepsNewestAndNewestGood) {
  auto now = std::chrono::system_clock::from_time_t(1700000000);
  std::vector<repo::Snapshot> s = {At("old", 40), At("good", 35), At("bad", 31, 3)};
  auto del = SelectForDeletion(s, std::chrono::hours(24 * 30), {}, now);
  EXPECT_EQ(del, std::vector<std::string>{"old"});  // all expired; "bad" is newest, "good" the newest good one
  EXPECT_TRUE(SelectForDeletion({At("only", 100)}, std::chrono::hours(1), {}, now).empty());
}

TEST(RetentionTest, KeepRules) {
  auto now = std::chrono::system_clock::from_time_t(1700000000);
  std::vector<repo::Snapshot> s;
  for (int d = 0; d < 20; ++d) s.push_back(At("d" + std::to_string(d), d));
  plan::Keep k;
  k.last = 2;
  k.weekly = 2;
  auto del = SelectForDeletion(s, std::chrono::hours(24 * 365), k, now);
  // kept: d0, d1 (last 2) and the newest of the two newest ISO weeks with a backup.
  EXPECT_EQ(del.size(), 20u - 3u) << "d0 and d1 are also in the newest week";
}

TEST(LocationTest, S3NeedsCredentials) {
  plan::Location l;
  l.name = "dr";
  l.type = plan::LocationType::kS3;
  l.endpoint = "http://127.0.0.1:1";
  l.bucket = "b";
  ::unsetenv("AWS_ACCESS_KEY_ID");
  auto b = OpenBackend(l);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(b.error().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
}

}  // namespace
}  // namespace lifeboat::backup
