// Memory for direct I/O (O_DIRECT): buffers aligned to the disk's blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace lifeboat::replicate {

struct FreeAligned {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBytes = std::unique_ptr<uint8_t, FreeAligned>;

// `n` bytes at an address that is a multiple of `align` (a power of two that
// divides `n`); null when out of memory.
inline AlignedBytes AllocAligned(size_t align, size_t n) {
  return AlignedBytes(static_cast<uint8_t*>(std::aligned_alloc(align, n)));
}

}  // namespace lifeboat::replicate
