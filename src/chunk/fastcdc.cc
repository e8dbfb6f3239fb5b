#include "chunk/fastcdc.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace lifeboat::chunk {
namespace {

// splitmix64 from a fixed seed: 256 well-mixed 64-bit values.
constexpr std::array<uint64_t, 256> MakeGear() {
  std::array<uint64_t, 256> g{};
  uint64_t x = 0x6c696665626f6174ULL;  // "lifeboat"
  for (auto& v : g) {
    x += 0x9e3779b97f4a7c15ULL;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    v = z ^ (z >> 31);
  }
  return g;
}
constexpr std::array<uint64_t, 256> kGear = MakeGear();

// A mask of `bits` ones in the high half of the word: the gear hash shifts
// left, so its high bits depend on the most recent 64 bytes.
constexpr uint64_t Mask(int bits) { return bits <= 0 ? 0 : (~uint64_t{0}) << (64 - bits); }

}  // namespace

ChunkParams ChunkParams::ForAverage(uint32_t avg) {
  avg = std::clamp<uint32_t>(avg, 256, 4u << 20);
  avg = std::bit_ceil(avg);
  return {avg / 4, avg, avg * 8};
}

ChunkParams ChunkParams::ForFileSize(uint64_t size) {
  uint64_t root = 1;
  while (root * root < size) root <<= 1;
  return ForAverage(static_cast<uint32_t>(std::clamp<uint64_t>(root / 2, 2048, 64 * 1024)));
}

bool ChunkParams::Valid() const {
  return min_size >= 64 && std::has_single_bit(avg_size) && min_size < avg_size && avg_size < max_size &&
         max_size <= (32u << 20);
}

size_t FindCut(std::span<const uint8_t> data, const ChunkParams& p, bool eof) {
  size_t n = data.size();
  if (n <= p.min_size) return eof ? n : 0;
  int bits = std::countr_zero(p.avg_size);
  const uint64_t mask_small = Mask(bits + 2);  // harder to match before the average
  const uint64_t mask_large = Mask(bits - 2);  // easier after it
  size_t normal = std::min<size_t>(p.avg_size, n);
  size_t end = std::min<size_t>(p.max_size, n);
  uint64_t h = 0;
  size_t i = p.min_size;
  for (; i < normal; ++i) {
    h = (h << 1) + kGear[data[i]];
    if ((h & mask_small) == 0) return i + 1;
  }
  for (; i < end; ++i) {
    h = (h << 1) + kGear[data[i]];
    if ((h & mask_large) == 0) return i + 1;
  }
  if (end == p.max_size) return end;
  return eof ? n : 0;
}

Status ChunkRange(int fd, uint64_t offset, uint64_t length, const ChunkParams& params, const ChunkFn& fn) {
  // One buffer per thread, reused and never zeroed: most files are small,
  // and clearing 4 MiB for each of them cost more than chunking them.
  const size_t cap = static_cast<size_t>(
      std::min<uint64_t>(std::max<size_t>(size_t{4} << 20, size_t{params.max_size} * 2), std::max<uint64_t>(length, 1)));
  thread_local std::unique_ptr<uint8_t[]> storage;
  thread_local size_t storage_size = 0;
  if (storage_size < cap) {
    storage.reset(new uint8_t[cap]);
    storage_size = cap;
  }
  struct {
    uint8_t* p;
    uint8_t* data() { return p; }
  } buf{storage.get()};
  size_t have = 0, start = 0;  // bytes [start, have) of buf are pending
  uint64_t file_pos = offset, chunk_pos = offset, end = offset + length;
  bool eof = length == 0;
  while (true) {
    if (!eof && have - start < params.max_size) {
      if (start > 0) {
        std::memmove(buf.data(), buf.data() + start, have - start);
        have -= start;
        start = 0;
      }
      while (have < cap && file_pos < end) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(cap - have, end - file_pos));
        ssize_t r = ::pread(fd, buf.data() + have, want, static_cast<off_t>(file_pos));
        if (r < 0) {
          if (errno == EINTR) continue;
          return ErrnoError(errno, "read");
        }
        if (r == 0) {
          end = file_pos;  // shorter than expected
          break;
        }
        have += static_cast<size_t>(r);
        file_pos += static_cast<uint64_t>(r);
      }
      eof = file_pos >= end;
    }
    if (start == have) return Ok();
    size_t cut = FindCut({buf.data() + start, have - start}, params, eof);
    if (cut == 0) return Internal("chunker: no cut in a full buffer");
    LB_RETURN_IF_ERROR(fn(chunk_pos, {buf.data() + start, cut}));
    chunk_pos += cut;
    start += cut;
  }
}

}  // namespace lifeboat::chunk
