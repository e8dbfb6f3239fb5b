#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "repo/repository.h"

namespace lifeboat::repo {
namespace {

namespace fs = std::filesystem;

std::string Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(CryptoTest, SealOpenAndTamper) {
  Keys k = NewKeys(true);
  std::string sealed = Seal(k, "aad", "secret message");
  EXPECT_EQ(sealed.size(), 14 + kSealOverhead);
  EXPECT_EQ(sealed.find("secret"), std::string::npos);
  EXPECT_EQ(*Open(k, "aad", sealed), "secret message");
  EXPECT_EQ(Open(k, "other", sealed).error().code(), Code::kDataLoss);
  sealed[15] ^= 1;
  EXPECT_EQ(Open(k, "aad", sealed).error().code(), Code::kDataLoss);
  EXPECT_EQ(Open(k, "aad", "short").error().code(), Code::kDataLoss);
  Keys other = NewKeys(true);
  EXPECT_FALSE(Open(other, "aad", Seal(k, "aad", "x")).ok());
}

TEST(CryptoTest, BlobIdIsKeyed) {
  Keys a = NewKeys(true), b = NewKeys(true);
  EXPECT_EQ(BlobId(a, "data"), BlobId(a, "data"));
  EXPECT_NE(BlobId(a, "data"), BlobId(b, "data"));
}

TEST(CryptoTest, ScryptKnownAnswer) {
  // RFC 7914 section 12, the second test vector (first 32 bytes).
  std::string salt = "NaCl";
  auto k = DeriveKey("password", {reinterpret_cast<const uint8_t*>(salt.data()), salt.size()}, {1024, 8, 16});
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(HexOf(*k), "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162");
  EXPECT_FALSE(DeriveKey("p", {}, {1000, 8, 1}).ok());
}

TEST(FormatTest, TreeRoundTripAndRefusals) {
  Tree t;
  Node f;
  f.name = "a file";
  f.size = 3;
  f.content = {Id{1}, Id{2}};
  Node d;
  d.name = "dir";
  d.type = NodeType::kDir;
  d.subtree = Id{9};
  Node l;
  l.name = "link";
  l.type = NodeType::kSymlink;
  l.link = "../x";
  t.nodes = {f, d, l};
  auto back = DecodeTree(EncodeTree(t));
  ASSERT_TRUE(back.ok()) << back.error().message();
  ASSERT_EQ(back->nodes.size(), 3u);
  EXPECT_EQ(back->nodes[0].content.size(), 2u);
  EXPECT_EQ(back->nodes[1].subtree, Id{9});
  EXPECT_EQ(back->nodes[2].link, "../x");

  for (const std::string& bad : std::vector<std::string>{"..", ".", "a/b", std::string("a\0b", 3)}) {
    Tree x;
    Node n;
    n.name = bad;
    x.nodes = {n};
    EXPECT_FALSE(DecodeTree(EncodeTree(x)).ok()) << bad;
  }
  Tree dup;
  dup.nodes = {f, f};
  EXPECT_FALSE(DecodeTree(EncodeTree(dup)).ok());
  std::string enc = EncodeTree(t);
  for (size_t cut = 0; cut < enc.size(); ++cut) EXPECT_FALSE(DecodeTree(enc.substr(0, cut)).ok()) << cut;
}

TEST(FormatTest, PackHeaderOffsetsMustCoverData) {
  std::vector<PackEntry> e(2);
  e[0].length = 10;
  e[0].raw_length = 5;
  e[1].length = 20;
  auto ok = DecodePackHeader(EncodePackHeader(e), 30);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[1].offset, 10u);
  EXPECT_FALSE(DecodePackHeader(EncodePackHeader(e), 29).ok());
  EXPECT_FALSE(DecodePackHeader(EncodePackHeader(e), 31).ok());
}

TEST(FormatTest, IntegersMustBeIntegersInRange) {
  // A float out of an integer's range was converted (undefined behaviour,
  // found by fuzz_repo under UBSan); floats and out-of-range numbers refuse.
  const std::string tree(64, 'a');
  auto snap = [&](const std::string& time) {
    return Snapshot::FromJson(R"({"time_ns": )" + time + R"(, "host": "h", "source": "s", "tree": ")" + tree +
                              R"(", "stats": {}})");
  };
  ASSERT_TRUE(snap("1700000000000000000").ok());
  EXPECT_EQ(snap("1700000000000000000")->time_ns, 1700000000000000000);
  EXPECT_FALSE(snap("11111111111111111111111.1").ok());
  EXPECT_FALSE(snap("1.5").ok());
  EXPECT_FALSE(snap("18446744073709551615").ok());  // above int64
  EXPECT_NE(snap("1e22").error().message().find("'time_ns' is not an integer in range"), std::string::npos);
  auto cfg = Config::FromJson(R"({"version": 1, "id": "x", "encryption": "none", "mac_key": "00",
                                  "chunker": {"min": 4294967296, "avg": 2, "max": 3}})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.error().message().find("'min'"), std::string::npos) << cfg.error().message();
  auto lock = LockInfo::FromJson(R"({"exclusive": true, "host": "h", "pid": -1e300, "time_ns": 1})");
  EXPECT_FALSE(lock.ok());
}

TEST(FormatTest, CompressSkipsIncompressible) {
  EXPECT_FALSE(Compress(Random(100000, 1), 1).has_value());
  std::string text(100000, 'a');
  auto z = Compress(text, 1);
  ASSERT_TRUE(z.has_value());
  EXPECT_LT(z->size(), 1000u);
  EXPECT_EQ(*Decompress(*z, 100000), text);
  EXPECT_FALSE(Decompress(*z, 99999).ok());
}

class RepoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("lifeboat-repo-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::unique_ptr<Repository> OpenRepo(const std::string& pw = "pw") {
    auto r = Repository::Open(storage::NewFilesystem(root_.string()), pw);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? std::move(*r) : nullptr;
  }
  fs::path root_;
};

TEST_F(RepoTest, InitOpenWrongPasswordAndTwice) {
  auto b = storage::NewFilesystem(root_.string());
  ASSERT_TRUE(Repository::Init(*b, true, "pw", chunk::ChunkParams::ForAverage(64 << 10)).ok());
  EXPECT_EQ(Repository::Init(*b, true, "pw", {}).error().code(), Code::kFailedPrecondition);
  auto wrong = Repository::Open(storage::NewFilesystem(root_.string()), "nope");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), Code::kPermissionDenied);
  auto none = Repository::Open(storage::NewFilesystem(root_.string()), "");
  EXPECT_EQ(none.error().code(), Code::kFailedPrecondition);
  auto missing = Repository::Open(storage::NewFilesystem((root_ / "nothing").string()), "pw");
  EXPECT_NE(missing.error().message().find("repo init"), std::string::npos);
  EXPECT_EQ(OpenRepo()->config().chunker.avg_size, 64u << 10);
}

TEST_F(RepoTest, BlobsPacksIndexAndAdoption) {
  auto b = storage::NewFilesystem(root_.string());
  ASSERT_TRUE(Repository::Init(*b, true, "pw", chunk::ChunkParams::ForAverage(64 << 10)).ok());
  auto repo = OpenRepo();
  Packer p;
  std::vector<std::pair<Id, std::string>> blobs;
  for (int i = 0; i < 40; ++i) {
    std::string d = i % 2 ? Random(1 << 20, i) : std::string(1 << 20, static_cast<char>('a' + i));
    Id id = BlobId(repo->keys(), d);
    ASSERT_TRUE(repo->Claim(id));
    EXPECT_FALSE(repo->Claim(id));
    ASSERT_TRUE(repo->AddBlob(p, BlobType::kData, id, d).ok());
    blobs.push_back({id, d});
  }
  ASSERT_TRUE(repo->FlushPacker(p).ok());
  // Not yet in an index file: a new process adopts the packs.
  auto again = OpenRepo();
  ASSERT_TRUE(again->LoadIndex().ok());
  EXPECT_EQ(again->blob_count(), 0u);
  EXPECT_EQ(*again->AdoptUnindexedPacks(), 2u + 0u * 1) << "40 MiB of blobs (half compressible) make 2 packs";
  auto third = OpenRepo();
  ASSERT_TRUE(third->LoadIndex().ok());
  EXPECT_EQ(third->blob_count(), 40u);
  for (const auto& [id, d] : blobs) EXPECT_EQ(*third->LoadBlob(id), d);
  auto rep = third->Check(true);
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->errors.empty()) << rep->errors[0];
}

TEST_F(RepoTest, UnencryptedRepositoryStoresPlainBlobsButChecksIds) {
  auto b = storage::NewFilesystem(root_.string());
  ASSERT_TRUE(Repository::Init(*b, false, "", chunk::ChunkParams::ForAverage(64 << 10)).ok());
  auto repo = OpenRepo("");
  Packer p;
  std::string d = "plain text that is visible " + Random(100, 3);
  Id id = BlobId(repo->keys(), d);
  ASSERT_TRUE(repo->AddBlob(p, BlobType::kData, id, d, 0).ok());
  ASSERT_TRUE(repo->FlushPacker(p).ok());
  ASSERT_TRUE(repo->FlushIndex().ok());
  EXPECT_EQ(*repo->LoadBlob(id), d);
}

TEST_F(RepoTest, LocksConflictAndStaleLocksAreRemoved) {
  auto b = storage::NewFilesystem(root_.string());
  ASSERT_TRUE(Repository::Init(*b, true, "pw", {}).ok());
  auto a = OpenRepo(), c = OpenRepo();
  {
    auto s1 = a->AcquireLock(false, "backup");
    ASSERT_TRUE(s1.ok());
    auto s2 = c->AcquireLock(false, "backup");
    EXPECT_TRUE(s2.ok());
    auto x = c->AcquireLock(true, "prune");
    ASSERT_FALSE(x.ok());
    EXPECT_NE(x.error().message().find("locked by backup"), std::string::npos) << x.error().message();
  }
  EXPECT_TRUE(b->List("locks")->empty());
  {
    auto x = a->AcquireLock(true, "prune");
    ASSERT_TRUE(x.ok());
    EXPECT_FALSE(c->AcquireLock(false, "backup").ok());
  }
  // A lock that has not been refreshed for longer than stale_after is ignored and removed.
  auto held = a->AcquireLock(true, "prune");
  ASSERT_TRUE(held.ok());
  LockOptions quick;
  quick.stale_after = std::chrono::seconds(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto taken = c->AcquireLock(true, "prune", quick);
  EXPECT_TRUE(taken.ok()) << taken.error().message();
}

}  // namespace
}  // namespace lifeboat::repo
