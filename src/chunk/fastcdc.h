// Content-defined chunking (FastCDC: a gear rolling hash with normalized
// chunking, Xia et al., USENIX ATC 2016). Cut points depend only on the bytes
// near them, so an insertion or an overwrite in the middle of a file changes
// only the chunks around it; both replication (delta transfer) and backups
// (deduplication) name chunks by their hash.
//
// The gear table is fixed (generated from a constant seed): chunk boundaries
// are part of the wire protocol and of the repository format, so changing the
// table or the cut rule is a format change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "core/result.h"

namespace lifeboat::chunk {

struct ChunkParams {
  uint32_t min_size = 2 * 1024;
  uint32_t avg_size = 8 * 1024;  // a power of two
  uint32_t max_size = 64 * 1024;

  // min = avg/4, max = avg*8. `avg` is rounded up to a power of two within
  // [256 B, 4 MiB].
  static ChunkParams ForAverage(uint32_t avg);
  // The parameters replication uses for a file of `size` bytes: an average
  // near sqrt(size)/2 (rsync sizes its blocks near sqrt(size); content-defined
  // chunks vary in size, and an edit lands in a large one more often), between
  // 2 KiB and 64 KiB, so
  // that the chunk list of a large file stays small and a small edit resends
  // little.
  static ChunkParams ForFileSize(uint64_t size);
  bool Valid() const;
};

// Returns the length of the first chunk of `data`. When `eof` is false and
// `data` holds fewer than max_size bytes, the cut may lie beyond the buffer:
// then it returns 0 (feed more bytes). At eof it always returns > 0 for
// non-empty data.
size_t FindCut(std::span<const uint8_t> data, const ChunkParams& params, bool eof);

// Reads `length` bytes of `fd` from `offset` (pread, so the file position is
// untouched) and calls `fn(chunk_offset, bytes)` for each chunk in order.
// Stops at the first error `fn` returns. A file shorter than expected ends
// the range early (it changed while being read); the caller sees fewer bytes.
using ChunkFn = std::function<Status(uint64_t offset, std::span<const uint8_t> bytes)>;
Status ChunkRange(int fd, uint64_t offset, uint64_t length, const ChunkParams& params, const ChunkFn& fn);

}  // namespace lifeboat::chunk
