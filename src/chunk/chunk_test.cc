#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "chunk/fastcdc.h"
#include "chunk/hash.h"

namespace lifeboat::chunk {
namespace {

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

std::vector<std::pair<uint64_t, Digest>> Chunks(const std::vector<uint8_t>& data, const ChunkParams& p) {
  char path[] = "/tmp/lifeboat-chunk-XXXXXX";
  int fd = mkstemp(path);
  unlink(path);
  EXPECT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  std::vector<std::pair<uint64_t, Digest>> out;
  EXPECT_TRUE(ChunkRange(fd, 0, data.size(), p, [&](uint64_t off, std::span<const uint8_t> b) {
                out.emplace_back(off, Sha256(b));
                return Ok();
              }).ok());
  close(fd);
  return out;
}

TEST(Hash, KnownVectors) {
  std::string abc = "abc";
  EXPECT_EQ(Hex(Sha256({reinterpret_cast<const uint8_t*>(abc.data()), abc.size()})),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Xxh128({})), "99aa06d3014798d86001c324468d497f");
  Hasher h;
  h.UpdateZeros(100000);
  std::vector<uint8_t> zeros(100000);
  EXPECT_EQ(h.Finish(), Sha256(zeros));
}

TEST(FastCdc, SizesStayWithinBoundsAndCoverTheInput) {
  auto p = ChunkParams::ForAverage(8192);
  EXPECT_TRUE(p.Valid());
  auto data = RandomBytes(3 << 20, 1);
  auto chunks = Chunks(data, p);
  ASSERT_GT(chunks.size(), 100u);
  uint64_t expect = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].first, expect);
    uint64_t next = i + 1 < chunks.size() ? chunks[i + 1].first : data.size();
    uint64_t size = next - chunks[i].first;
    EXPECT_LE(size, p.max_size);
    if (i + 1 < chunks.size()) {
      EXPECT_GE(size, p.min_size);
    }
    expect = next;
  }
  // Normalized chunking keeps the mean near the target.
  double mean = static_cast<double>(data.size()) / static_cast<double>(chunks.size());
  EXPECT_GT(mean, 0.6 * p.avg_size);
  EXPECT_LT(mean, 1.6 * p.avg_size);
}

TEST(FastCdc, AnInsertionChangesOnlyNearbyChunks) {
  auto p = ChunkParams::ForAverage(8192);
  auto data = RandomBytes(4 << 20, 2);
  auto before = Chunks(data, p);
  auto edited = data;
  auto insert = RandomBytes(100, 3);
  edited.insert(edited.begin() + (2 << 20), insert.begin(), insert.end());
  auto after = Chunks(edited, p);
  std::set<Digest> old;
  for (auto& c : before) old.insert(c.second);
  size_t fresh = 0;
  for (auto& c : after) fresh += old.count(c.second) == 0;
  EXPECT_GE(fresh, 1u);
  EXPECT_LE(fresh, 3u);
}

TEST(FastCdc, CutsDoNotDependOnReadBoundaries) {
  // The same content at a different offset within the read buffer (a prefix
  // of max_size + 1 bytes pushes every later read) yields the same chunks
  // after the first boundary resynchronizes.
  auto p = ChunkParams::ForAverage(4096);
  auto data = RandomBytes(9 << 20, 4);
  auto a = Chunks(data, p);
  std::vector<uint8_t> shifted(data.begin() + 12345, data.end());
  auto b = Chunks(shifted, p);
  std::set<Digest> sa;
  for (auto& c : a) sa.insert(c.second);
  size_t same = 0;
  for (auto& c : b) same += sa.count(c.second);
  EXPECT_GE(same + 2, b.size());
}

TEST(FastCdc, ZeroesAndTinyInputs) {
  auto p = ChunkParams::ForAverage(8192);
  std::vector<uint8_t> zeros(1 << 20);
  auto chunks = Chunks(zeros, p);
  // A run of zeroes hashes to a constant: every chunk is max_size.
  EXPECT_EQ(chunks.size(), (1u << 20) / p.max_size);
  EXPECT_EQ(Chunks({}, p).size(), 0u);
  EXPECT_EQ(Chunks({1, 2, 3}, p).size(), 1u);
  EXPECT_EQ(FindCut(std::vector<uint8_t>(100, 1), p, false), 0u);
}

TEST(FastCdc, ParamsForFileSize) {
  EXPECT_EQ(ChunkParams::ForFileSize(0).avg_size, 2048u);
  EXPECT_EQ(ChunkParams::ForFileSize(100 << 20).avg_size, 8192u);
  EXPECT_EQ(ChunkParams::ForFileSize(uint64_t{100} << 30).avg_size, 65536u);
  EXPECT_EQ(ChunkParams::ForAverage(5000).avg_size, 8192u);
  EXPECT_FALSE((ChunkParams{100, 300, 1000}).Valid());
}

}  // namespace
}  // namespace lifeboat::chunk
